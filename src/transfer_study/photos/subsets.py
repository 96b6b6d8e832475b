"""Nested, stratified training subsets of a split table, for the data-size ablation.

A cell trains on ``n_samples`` physical training samples with ``n_angles`` photos each.
Subsets are nested: for one seed, a smaller cell's photos are a subset of a larger
cell's, so the learning curve measures more data rather than different data.

* Samples: every class's training samples are put in a seeded order that depends only
  on ``(seed, class)``. The classes are interleaved into one sequence: first one sample
  of each class (every class is represented), then the sample whose class is furthest
  below its proportional share (Webster's divisor method, ``(rank + 0.5) / class_size``).
  A cell takes the first ``n_samples`` of that sequence, so the per-class counts grow
  monotonically with ``n`` and stay within two samples of proportional (the guaranteed
  first sample can exceed a small class's share).
* Angles: an angle is one photo of the sample. Its photos, ordered by ``angle`` label in
  natural order (``a2 < a10``, ``030-120 < 045-000``) then ``path`` (photos without an
  angle after labelled ones, in file order), are put in a
  seeded order that depends only on ``(seed, sample_id)``; a cell takes the first
  ``n_angles``.

Training rows left out are not dropped but relabelled ``split = "unused"``: the table
keeps every photo, so the decoded-image and feature caches (keyed by all photos of the
split) are found, while ``split == "train"`` selects exactly the subset.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np
import pandas as pd

from transfer_study.config import AblationGrid, AblationSettings
from transfer_study.photos.angles import angle_rank
from transfer_study.photos.errors import SplitError

logger = logging.getLogger(__name__)

UNUSED_SPLIT = "unused"
TRAIN_SPLIT = "train"
# Domains of the seeded orders, so the class, sample and tie-break streams never coincide.
_CLASS_STREAM, _SAMPLE_STREAM, _TIE_STREAM = 0, 1, 2


@dataclass(frozen=True)
class _Cell:
    n_samples: int
    n_angles: int
    seed: int
    clamp: bool

    def __str__(self) -> str:
        return f"n_samples={self.n_samples}, n_angles={self.n_angles}, seed={self.seed}"


def _positive_int(cell: Mapping[str, Any], key: str, minimum: int) -> int:
    value = cell.get(key)
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        # str(), not repr(): a NumPy integer shows as 5, not np.int64(5).
        shown = ", ".join(f"{name}={item}" for name, item in cell.items())
        raise ValueError(f"Ablation cell ({shown}): '{key}' must be an integer ≥ {minimum}.")
    return int(value)


def _parse_cell(cell: Mapping[str, Any]) -> _Cell:
    return _Cell(
        n_samples=_positive_int(cell, "n_samples", 1),
        n_angles=_positive_int(cell, "n_angles", 1),
        seed=_positive_int(cell, "seed", 0),
        clamp=bool(cell.get("clamp", False)),
    )


def _digest(value: object) -> int:
    """A stable 64-bit integer for any id (Python's ``hash`` changes between runs)."""
    return int.from_bytes(hashlib.sha256(str(value).encode()).digest()[:8], "big")


def _rng(seed: int, stream: int, key: object = "") -> np.random.Generator:
    return np.random.default_rng([seed, stream, _digest(key)])


def _training_photos(split: pd.DataFrame) -> pd.DataFrame:
    missing = {"path", "label", "sample_id", "angle", "split"} - set(split.columns)
    if missing:
        raise ValueError(f"The split table is missing columns {sorted(missing)}.")
    train = split[split["split"] == TRAIN_SPLIT]
    if train.empty:
        raise ValueError("The split table has no training photos.")
    if train["sample_id"].isna().any():
        raise ValueError("Some training photos have no sample_id.")
    # Canonical order: labelled angles first in natural order, then file order; the
    # seeded permutation below is applied to this order.
    ranked = train.assign(_angle_rank=angle_rank(train["angle"]))
    ordered = ranked.sort_values(
        ["sample_id", "_angle_rank", "path"], na_position="last", kind="stable"
    )
    return ordered.drop(columns="_angle_rank")


def _sample_sequence(train: pd.DataFrame, seed: int) -> pd.DataFrame:
    """One row per training sample, in the seed's nested, stratified order."""
    samples = train.groupby("sample_id", sort=True)["label"].first().reset_index()
    classes = sorted(samples["label"].unique(), key=str)
    tie_rank = dict(zip(classes, _rng(seed, _TIE_STREAM).permutation(len(classes)), strict=True))
    parts = []
    for label in classes:
        ids = sorted(samples.loc[samples["label"] == label, "sample_id"], key=str)
        order = _rng(seed, _CLASS_STREAM, label).permutation(len(ids))
        rank = np.arange(len(ids))
        parts.append(
            pd.DataFrame(
                {
                    "sample_id": [ids[i] for i in order],
                    "label": label,
                    "floor": rank > 0,  # every class's first sample comes first
                    "quota": (rank + 0.5) / len(ids),
                    "tie": tie_rank[label],
                }
            )
        )
    ordered = pd.concat(parts).sort_values(["floor", "quota", "tie"], kind="stable")
    return ordered[["sample_id", "label"]].reset_index(drop=True)


def _angle_order(train: pd.DataFrame, seed: int) -> np.ndarray:
    """Each training photo's position in its sample's seeded order of photos."""
    order = np.empty(len(train), dtype=int)
    for sample_id, positions in train.groupby("sample_id", sort=False).indices.items():
        # positions are in canonical order; argsort turns the permutation into ranks.
        order[positions] = np.argsort(
            _rng(seed, _SAMPLE_STREAM, sample_id).permutation(positions.size)
        )
    return order


def _ranked_training_photos(split: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Training photos with ``sample_order``, ``angle_order`` and ``sample_angles``."""
    train = _training_photos(split)
    sequence = _sample_sequence(train, seed)
    order = pd.Series(sequence.index, index=sequence["sample_id"])
    return train.assign(
        sample_order=train["sample_id"].map(order),
        angle_order=_angle_order(train, seed),
        sample_angles=train.groupby("sample_id")["path"].transform("size"),
    )


def _cell_problems(ranked: pd.DataFrame, cell: _Cell) -> tuple[list[str], list[str]]:
    """What makes the cell impossible: ``(hard errors, clampable shortfalls)``."""
    n_total = int(ranked["sample_id"].nunique())
    n_classes = int(ranked["label"].nunique())
    errors, shortfalls = [], []
    if cell.n_samples < n_classes:
        errors.append(
            f"n_samples={cell.n_samples} is below the {n_classes} classes (each class needs "
            "at least one training sample)"
        )
    if cell.n_samples > n_total:
        shortfalls.append(
            f"n_samples={cell.n_samples} but the training split has {n_total} physical samples"
        )
    chosen = ranked[ranked["sample_order"] < cell.n_samples].drop_duplicates("sample_id")
    short = chosen[chosen["sample_angles"] < cell.n_angles]
    if not short.empty:
        shortfalls.append(
            f"n_angles={cell.n_angles} but {len(short)} of the {len(chosen)} chosen samples "
            f"have fewer photos (fewest: {int(short['sample_angles'].min())})"
        )
    return errors, shortfalls


def _availability(ranked: pd.DataFrame) -> str:
    per_sample = ranked.drop_duplicates("sample_id")
    stats = per_sample.groupby("label", sort=True)["sample_angles"].agg(
        samples="size", fewest="min", median="median", most="max"
    )
    lines = [
        f"  {row.Index}: {row.samples} training samples, angles per sample "
        f"min {row.fewest} / median {row.median:g} / max {row.most}"
        for row in stats.itertuples()
    ]
    return "\n".join(["Training split per class:", *lines])


def _impossible_message(ranked: pd.DataFrame, problems: Mapping[_Cell, list[str]]) -> str:
    n_total = int(ranked["sample_id"].nunique())
    fewest = int(ranked["sample_angles"].min())
    n_classes = int(ranked["label"].nunique())
    cells = [f"  - ({cell}): " + "; ".join(reasons) + "." for cell, reasons in problems.items()]
    return "\n".join(
        [
            f"{len(problems)} data-size ablation cell(s) cannot be built from this split:",
            *cells,
            _availability(ranked),
            f"Use {n_classes} ≤ n_samples ≤ {n_total}, and n_angles ≤ {fewest} (every "
            "training sample has that many photos, so it works for any seed); or photograph "
            "more samples or angles; or set clamp: true to train on what exists.",
        ]
    )


def _problems(ranked: pd.DataFrame, cells: Iterable[_Cell]) -> dict[_Cell, list[str]]:
    """The impossible cells with their reasons; warns about the cells that get clamped."""
    problems = {}
    for cell in cells:
        errors, shortfalls = _cell_problems(ranked, cell)
        if errors or (shortfalls and not cell.clamp):
            problems[cell] = errors + shortfalls
        elif shortfalls:
            logger.warning(
                "Ablation cell (%s) is clamped to the data that exist: %s.",
                cell,
                "; ".join(shortfalls),
            )
    return problems


def training_subset(split: pd.DataFrame, cell: Mapping[str, Any]) -> pd.DataFrame:
    """Reduces the training split to one cell's nested, stratified subset.

    Args:
        split: The split table (``path,label,sample_id,angle,split`` and any others).
        cell: ``n_samples``, ``n_angles``, ``seed`` and optionally ``clamp`` (default
            ``False``: fail rather than use what exists when the cell asks for more).

    Returns:
        The split table with the same rows and columns (index reset); training photos
        outside the subset have ``split == UNUSED_SPLIT``.

    Raises:
        ValueError: If the cell is malformed; ``SplitError`` (a ``ValueError``) if it is
            impossible, with what exists per class.
    """
    parsed = _parse_cell(cell)
    table = split.reset_index(drop=True)
    ranked = _ranked_training_photos(table, parsed.seed)
    problems = _problems(ranked, [parsed])
    if problems:
        raise SplitError(_impossible_message(ranked, problems))
    keep = (ranked["sample_order"] < parsed.n_samples) & (ranked["angle_order"] < parsed.n_angles)
    unused = ranked.index[~keep]
    subset = table.copy()
    subset.loc[unused, "split"] = UNUSED_SPLIT
    logger.info(
        "Ablation cell (%s): %d training photos of %d samples.",
        parsed,
        int(keep.sum()),
        int(ranked.loc[keep, "sample_id"].nunique()),
    )
    return subset


def grid_cells(grid: AblationGrid) -> list[dict[str, Any]]:
    """Expands a grid into its cells (variants left out: they share subsets).

    Args:
        grid: The axes ``n_samples``, ``n_angles``, ``seeds`` and ``clamp``.

    Returns:
        One ``{"n_samples", "n_angles", "seed", "clamp"}`` dict per combination.
    """
    return [
        {"n_samples": n, "n_angles": k, "seed": s, "clamp": grid.clamp}
        for n, k, s in product(grid.n_samples, grid.n_angles, grid.seeds)
    ]


def validate_grid(split: pd.DataFrame, grid: AblationGrid) -> None:
    """Checks every cell of the grid before any training, and reports all problems at once.

    Args:
        split: The split table.
        grid: The grid (its model guarantees at least one cell).

    Raises:
        SplitError: (a ``ValueError``) Listing every impossible cell, what exists per
            class and what to change (the same message as :func:`training_subset`).
    """
    cells = [_parse_cell(cell) for cell in grid_cells(grid)]
    by_seed: dict[int, list[_Cell]] = {}
    for cell in cells:
        by_seed.setdefault(cell.seed, []).append(cell)
    problems: dict[_Cell, list[str]] = {}
    for seed, seed_cells in sorted(by_seed.items()):
        ranked = _ranked_training_photos(split, seed)
        problems.update(_problems(ranked, seed_cells))
    if problems:
        raise SplitError(_impossible_message(ranked, problems))


def grid_signature(grid: AblationSettings) -> list[tuple]:
    """The grid's ``(variant, n_samples, n_angles, seed, clamp)`` cells, sorted."""
    cells = grid_cells(grid)
    return sorted(
        (variant, c["n_samples"], c["n_angles"], c["seed"], c["clamp"])
        for variant in grid.variants
        for c in cells
    )
