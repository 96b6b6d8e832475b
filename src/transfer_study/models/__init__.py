"""Backbones and their weights, pretrained preprocessing, image transforms and checkpoints."""
