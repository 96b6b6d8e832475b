"""Evaluation of trained classifiers: metrics, statistical tests, figures and Markdown.

Pure functions: nothing here opens a file, logs to MLflow or prints. Import from the
modules: ``metrics``, ``stats``, ``figures``, ``markdown``.
"""
