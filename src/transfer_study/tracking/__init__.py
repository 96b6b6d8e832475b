"""Experiment tracking: the MLflow child run per training, and trained models logged to it."""
