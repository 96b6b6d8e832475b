"""transfer-study: scratch vs frozen vs fine-tuned transfer learning on your own photos."""

__version__ = "0.1.0"
