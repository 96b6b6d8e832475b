"""``registry``: where the study's chosen model is registered in MLflow, and when it
becomes the champion."""

from __future__ import annotations

from pydantic import Field

from .base import Settings

# MLflow accepts most names, but a model URI (models:/<name>@champion) breaks on '/',
# ':' and '@', and spaces need quoting in every shell example.
REGISTRY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class RegistrySettings(Settings):
    """``registry``: the registered model's name and the champion rule."""

    enabled: bool = Field(description="register the chosen model after the study")
    name: str | None = Field(
        pattern=REGISTRY_NAME_PATTERN,
        max_length=200,
        description="registered model name; null = transfer-study-<backbone>",
    )
    promote_across_splits: bool = Field(
        description=(
            "move the champion alias to a model whose split differs from the champion's "
            "(validation metrics on different splits are not comparable)"
        ),
    )
