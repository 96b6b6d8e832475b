"""Backbones, their pretrained preprocessing, and image transforms."""
