"""Evaluation of trained classifiers: metrics, the variants' paired differences, the
data-size ablation's learning curves and recommendation, figures and Markdown.

Pure functions: nothing here opens a file, logs to MLflow or prints. Import from the
modules: ``metrics``, ``pairs``, ``learning_curve``, ``cell_scores``, ``noninferiority``,
``angles_model``, ``extrapolation``, ``recommendation``, ``figures``, ``markdown``.
"""
