"""The base class of every parameter model and the value types they share.

Numbers are strict: YAML (and ``--params``, which Kedro parses as YAML) already gives
ints and floats, so a ``true`` where a count belongs is a mistake to report, not a 1.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, create_model

Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]  # strict floats still take ints (0 for 0.0)
PositiveInt = Annotated[int, Strict(), Field(ge=1)]
NonNegativeInt = Annotated[int, Strict(), Field(ge=0)]
PositiveFloat = Annotated[float, Strict(), Field(gt=0)]
NonNegativeFloat = Annotated[float, Strict(), Field(ge=0)]
OpenFraction = Annotated[float, Strict(), Field(gt=0, lt=1)]  # strictly between 0 and 1
Seed = Annotated[int, Strict(), Field(ge=0, lt=2**63)]

Device = Literal["auto", "cpu", "cuda", "mps"]
# Test-time augmentation: the views whose softmax is averaged (transfer_study.models.tta).
TtaMode = Literal["none", "flip", "flip+crops"]
VariantName = Literal["scratch", "frozen", "finetune_top", "finetune"]


class Settings(BaseModel):
    """A validated, immutable parameter block: unknown keys are errors, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __str__(self) -> str:
        # kedro-mlflow logs `params:` inputs with str(value): compact JSON reads well there.
        return self.model_dump_json()


class PartialSettings(Settings):
    """A block that sets only some fields of a complete model; unset fields are ``None``."""

    def __str__(self) -> str:
        return self.model_dump_json(exclude_unset=True)

    def set_values(self) -> dict[str, Any]:
        """The fields the configuration set (an explicit ``null`` included), as plain data."""
        return self.model_dump(exclude_unset=True)


def partial_model(
    model: type[Settings], name: str, *, exclude: set[str], doc: str
) -> type[PartialSettings]:
    """The same fields as ``model`` (types, bounds and descriptions), each optional.

    Derived rather than written out so that a bound is stated once, on the complete model.

    Args:
        model: The complete model.
        name: The new model's class name.
        exclude: Fields the partial model does not have.
        doc: Its docstring.

    Returns:
        A ``PartialSettings`` subclass whose fields default to ``None`` (not set).
    """
    fields: dict[str, Any] = {
        field: (
            _with_metadata(info.annotation, info.metadata) | None,
            Field(default=None, description=info.description),
        )
        for field, info in model.model_fields.items()
        if field not in exclude
    }
    partial = create_model(name, __base__=PartialSettings, __module__=model.__module__, **fields)
    partial.__doc__ = doc
    return partial


def _with_metadata(annotation: Any, metadata: list[Any]) -> Any:
    """``annotation`` with the bounds pydantic moved out of its ``Annotated`` form."""
    return Annotated[(annotation, *metadata)] if metadata else annotation
