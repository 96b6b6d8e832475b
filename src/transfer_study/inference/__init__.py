"""Classifying image files with a trained checkpoint: the predictor, and the MLflow pyfunc model."""
