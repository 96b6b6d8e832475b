"""The training blocks: ``training_defaults``, one block per variant, and ``evaluation``.

``training_defaults`` holds what the variants share; a variant's block (``scratch``,
``frozen``, ``finetune``) states only what differs. Both are ``VariantOverrides``; the
``TrainingSettings`` of a variant is the defaults updated with its block
(:func:`resolve_training_settings`), complete and checked as a whole.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, Strict, model_validator

from .base import (
    Device,
    NonNegativeFloat,
    NonNegativeInt,
    OpenFraction,
    PartialSettings,
    PositiveFloat,
    PositiveInt,
    Seed,
    Settings,
    TtaMode,
    VariantName,
    partial_model,
)

_BelowOne = Annotated[float, Strict(), Field(ge=0, lt=1)]
_Scale = Annotated[float, Strict(), Field(gt=0, lt=1)]


class Augmentation(Settings):
    """A ``torchvision.transforms.v2`` class by name, with its arguments."""

    # The arguments are the torchvision class's own; it checks them when it is built.
    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(min_length=1, description="a torchvision.transforms.v2 class name")


class HeadSettings(Settings):
    """The new classification head on the backbone's pooled features."""

    type: Literal["linear", "mlp"] = Field(description="linear, or mlp with a hidden layer")
    # Optional as in build_head: a head without dropout need not say so.
    dropout: _BelowOne = Field(default=0.0, description="dropout before the output layer")
    hidden_units: PositiveInt | None = Field(default=None, description="mlp only: hidden width")

    @model_validator(mode="after")
    def _hidden_units_only_for_mlp(self) -> HeadSettings:
        if self.type == "mlp" and self.hidden_units is None:
            raise ValueError("an mlp head needs hidden_units, e.g. {type: mlp, hidden_units: 256}")
        if self.type == "linear" and self.hidden_units is not None:
            raise ValueError("a linear head has no hidden_units; use type: mlp")
        return self


class LrSearchSettings(Settings):
    """How ``lr: auto`` is chosen: a range test, or candidates compared on validation."""

    method: Literal["auto", "range_test", "candidates"] = Field(
        default="auto",
        description="range_test, candidates (each trained, best validation loss), or "
        "auto: candidates for a head on cached features, the range test otherwise",
    )
    min_lr: PositiveFloat = Field(description="first learning rate tried")
    max_lr: PositiveFloat = Field(description="last learning rate tried")
    steps: Annotated[int, Strict(), Field(ge=5)] = Field(
        description="range test: optimizer steps tried"
    )
    per_decade: PositiveInt = Field(
        default=2, description="candidates: learning rates per factor of ten"
    )
    candidate_steps: PositiveInt | None = Field(
        default=None,
        description="candidates: optimizer steps each trains; null = each to convergence",
    )

    def resolved_method(self, *, on_cached_features: bool) -> str:
        """``auto``: candidates where training is cheap (a head on cached features)."""
        if self.method != "auto":
            return self.method
        return "candidates" if on_cached_features else "range_test"

    @model_validator(mode="after")
    def _increasing(self) -> LrSearchSettings:
        if self.max_lr <= self.min_lr:
            raise ValueError("max_lr must be greater than min_lr")
        return self


class TrainingSettings(Settings):
    """Everything one training of a variant needs, after defaults and overrides."""

    name: VariantName = Field(description="the variant")
    weights: str = Field(min_length=1, description="none, imagenet, or a weights file path")
    lr: PositiveFloat | Literal["auto"] = Field(
        description="learning rate of the head; auto = chosen as lr_search says"
    )
    lr_search: LrSearchSettings = Field(description="how lr: auto is chosen")
    max_images: PositiveInt = Field(description="cap: training images seen")
    min_steps: PositiveInt = Field(description="optimizer steps before early stopping may stop")
    val_every_steps: PositiveInt = Field(description="validate every epoch or this many steps")
    patience: PositiveInt | None = Field(
        description="validations without a better metric before stopping; null = never"
    )
    class_weights: bool | Literal["auto"] = Field(
        description="class-weighted loss; auto = when the largest class has 2x the smallest"
    )
    augmentations: list[Augmentation] = Field(description="applied in order when training")
    augmented_views: NonNegativeInt = Field(
        description="frozen and finetune_top: augmented views cached per photo"
    )
    # A default, so that settings written before partial fine-tuning existed stay valid.
    trainable_stages: PositiveInt | None = Field(
        default=None,
        description="finetune_top only: the backbone's last stages that train on the "
        "cached output of the others",
    )
    # A default, so that settings written before progressive resizing existed stay valid.
    progressive_scales: list[_Scale] = Field(
        default_factory=list,
        description="scratch and finetune: fractions of the input size trained at first, "
        "each to convergence, before the input size itself; [] = the input size only",
    )
    progressive_patience: PositiveInt | None = Field(
        default=1,
        description="progressive resizing: validations without a better metric before a "
        "smaller side hands over to the next; null = the variant's patience",
    )
    embedding_batch_size: PositiveInt = Field(description="frozen only: embedding batch size")
    head: HeadSettings = Field(description="the classification head")
    optimizer: Literal["sgd", "adam", "adamw"] = Field(description="the optimiser")
    momentum: _BelowOne = Field(description="sgd only: momentum")
    weight_decay: NonNegativeFloat = Field(description="weight decay")
    scheduler: Literal["none", "plateau", "step", "cosine", "onecycle"] = Field(
        description="lr schedule"
    )
    plateau_patience: PositiveInt = Field(
        description="plateau only: validations without improvement before the lr decays"
    )
    step_size: PositiveInt = Field(description="step only: epochs between decays")
    gamma: Annotated[float, Strict(), Field(gt=0, le=1)] = Field(
        description="step and plateau: decay factor"
    )
    label_smoothing: _BelowOne = Field(description="cross-entropy label smoothing")
    batch_size: PositiveInt = Field(description="training batch size")
    head_warmup_steps: NonNegativeInt = Field(
        description="steps training only the head before the backbone unfreezes"
    )
    lr_warmup_steps: NonNegativeInt = Field(
        description="steps over which every learning rate rises linearly to its value"
    )
    head_init: Literal["random", "probe"] = Field(
        description="fine-tune's head: random, or probe (first trained on cached features)"
    )
    batchnorm: Literal["train", "fixed"] = Field(
        description="a training backbone's BatchNorm: train (update statistics) or fixed"
    )
    backbone_lr_multiplier: NonNegativeFloat = Field(description="backbone lr = lr x this")
    seed: Seed = Field(description="seeds torch, NumPy, Python and the loaders")
    seeds: PositiveInt | Literal["auto"] = Field(
        description="trainings per variant (seed, seed + 1, ...); auto = 1 on a CPU, 3 on a GPU"
    )
    device: Device = Field(description="auto (CUDA > MPS > CPU), cpu, cuda or mps")
    channels_last: bool | Literal["auto"] = Field(
        description="channels-last memory format; auto = on, except on a CPU where a "
        "measured training pass is 1.2x faster without it"
    )
    # A default, so that settings written before CPU tuning existed stay valid.
    cpu_precision: Literal["auto", "float32", "bfloat16"] = Field(
        default="auto",
        description="a CPU's training precision; auto = bfloat16 autocast where the CPU "
        "computes it natively (AMX, AVX-512 BF16) and a measured pass is 1.2x faster",
    )
    amp: bool = Field(description="float16 mixed precision on CUDA")
    compile: bool | Literal["auto"] = Field(description="torch.compile; auto = on CUDA only")
    num_workers: NonNegativeInt | Literal["auto"] = Field(description="DataLoader workers")

    @model_validator(mode="after")
    def _stages_for_partial_fine_tuning(self) -> TrainingSettings:
        partial = self.name == "finetune_top"
        if partial and self.trainable_stages is None:
            raise ValueError("finetune_top needs trainable_stages, e.g. trainable_stages: 2")
        if not partial and self.trainable_stages is not None:
            raise ValueError(
                f"trainable_stages applies to finetune_top only; {self.name} trains "
                + ("only its head" if self.name == "frozen" else "every stage")
            )
        return self

    @model_validator(mode="after")
    def _progressive_scales_for_images(self) -> TrainingSettings:
        if not self.progressive_scales:
            return self
        if self.name not in ("scratch", "finetune"):
            raise ValueError(
                f"progressive_scales applies to scratch and finetune only; {self.name} "
                "trains on cached outputs of the full-size photos"
            )
        if self.progressive_scales != sorted(set(self.progressive_scales)):
            raise ValueError("progressive_scales must increase, e.g. [0.5] or [0.5, 0.75]")
        return self

    def augmentation_specs(self) -> list[dict[str, Any]]:
        """The augmentations as ``{"name": ..., <argument>: ...}`` dicts for the transforms."""
        return [augmentation.model_dump() for augmentation in self.augmentations]


VariantOverrides = partial_model(
    TrainingSettings,
    "VariantOverrides",
    # The variant is the block's key, not a setting.
    exclude={"name"},
    doc="``training_defaults`` or a variant's block: any ``TrainingSettings`` field but "
    "``name``, each optional. A ``head`` or ``augmentations`` given here replaces the "
    "default one whole.",
)


def resolve_training_settings(
    variant: VariantName, defaults: PartialSettings, overrides: PartialSettings
) -> TrainingSettings:
    """The complete settings of ``variant``: the defaults updated with its block.

    Args:
        variant: The variant's name (its block's key).
        defaults: ``training_defaults``.
        overrides: The variant's block.

    Returns:
        The variant's settings.

    Raises:
        pydantic.ValidationError: If a field is missing from both blocks or the
            combination is invalid.
    """
    values = {**defaults.set_values(), **overrides.set_values(), "name": variant}
    return TrainingSettings.model_validate(values)


def with_overrides(
    settings: TrainingSettings, overrides: PartialSettings | None = None, **values: Any
) -> TrainingSettings:
    """``settings`` with the fields ``overrides`` sets and ``values`` replaced, re-checked."""
    update = overrides.set_values() if overrides is not None else {}
    return TrainingSettings.model_validate({**settings.model_dump(), **update, **values})


class EvaluationSettings(Settings):
    """``evaluation``: how each variant's checkpoint is tested."""

    confidence: OpenFraction = Field(description="level of the accuracy intervals")
    bootstrap_resamples: PositiveInt = Field(description="bootstrap resamples")
    bootstrap_seed: Seed = Field(description="seed of the bootstrap and the permutation test")
    permutation_resamples: PositiveInt = Field(
        description="random sign flips of the variants' paired test (exact when fewer suffice)"
    )
    batch_size: PositiveInt = Field(description="batch size of the test predictions")
    top_k: list[PositiveInt] = Field(description="top-k accuracies when classes exceed k")
    device: Device = Field(description="auto (CUDA > MPS > CPU), cpu, cuda or mps")
    # A default, so that settings written before TTA existed stay valid.
    tta: TtaMode = Field(
        default="none",
        description="test-time augmentation of the test predictions: none, flip, or "
        "flip+crops (as inference.tta)",
    )
