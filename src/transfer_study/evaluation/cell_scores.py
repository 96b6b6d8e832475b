"""The ablation's cells scored seed by seed on the same test photos, with bootstrap replicates.

What the recommendation's tests and the extrapolation share: for each variant, the
headline metric of every cell and seed on the whole test split, and its two-level
bootstrap replicates (seeds and physical test samples resampled, the same draws for every
cell), so that any difference between two cells stays paired on seeds and test photos.
Pure functions of the records of ``summarise_cell``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .learning_curve import two_level_bootstrap_replicates

METRICS = ("accuracy", "balanced_accuracy")
RERUN = (
    "Records written before this version lack it: move data/07_model_output/ablation/ "
    "aside and run 'kedro run --pipeline=data_size_ablation --only-missing-outputs'; the "
    "trained checkpoints are kept, so only the cells' evaluations and summaries run again."
)


@dataclass(frozen=True)
class CellScores:
    """One variant's cells, each scored by every seed, and the bootstrap replicates.

    Attributes:
        variant: The variant.
        metric: ``"accuracy"`` or ``"balanced_accuracy"``.
        cells: One row per cell (``n_samples``, ``n_angles``), sorted.
        seeds: The seeds, the same for every cell, sorted.
        n_images: ``(n_cells, n_seeds)`` training photos each cell and seed used.
        point: ``(n_cells, n_seeds)`` the metric on the whole test split.
        replicates: ``(n_resamples, n_cells, n_seeds)`` the metric on each replicate's
            drawn test samples.
        seed_draws: ``(n_resamples, n_seeds)`` how often each replicate drew each seed.
    """

    variant: str
    metric: str
    cells: pd.DataFrame
    seeds: tuple[int, ...]
    n_images: np.ndarray
    point: np.ndarray
    replicates: np.ndarray
    seed_draws: np.ndarray

    @property
    def means(self) -> np.ndarray:
        """``(n_cells,)`` each cell's metric, mean over seeds."""
        return self.point.mean(axis=1)

    def replicate_means(self) -> np.ndarray:
        """``(n_resamples, n_cells)`` each replicate's mean over its drawn seeds."""
        weighted = self.replicates * self.seed_draws[:, None, :]
        return weighted.sum(axis=2) / len(self.seeds)


def headline_metric_of(records: Sequence[Mapping[str, Any]]) -> str:
    """The metric the cells were trained and chosen on (``metric`` of their records).

    Records without it (written before the key existed) count as ``"accuracy"``.

    Raises:
        ValueError: If the records name different or unknown metrics.
    """
    names = {str(record.get("metric", "accuracy")) for record in records}
    if len(names) != 1 or not names <= set(METRICS):
        raise ValueError(
            f"The ablation's records name metrics {sorted(names)}; expected one of {METRICS}."
        )
    return names.pop()


def _test_photos(
    records: Sequence[Mapping[str, Any]], metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster code and class code of every test photo, checked alike in every record."""
    ids, labels = list(records[0]["sample_id"]), records[0].get("label")
    if any(list(r["sample_id"]) != ids for r in records):
        raise ValueError(
            "Ablation records were evaluated on different test photos; every cell must use "
            "the same test split."
        )
    if metric == "accuracy":
        return pd.factorize(pd.Series(ids, dtype=object))[0], np.zeros(len(ids), dtype=int)
    if labels is None or any(list(r.get("label", [])) != list(labels) for r in records):
        raise ValueError(
            "The headline metric is balanced accuracy but the records lack the test photos' "
            f"labels. {RERUN}"
        )
    return (
        pd.factorize(pd.Series(ids, dtype=object))[0],
        pd.factorize(pd.Series(labels, dtype=object))[0],
    )


def _per_sample(values: np.ndarray, clusters: np.ndarray, n_clusters: int) -> np.ndarray:
    """Sums of ``values`` (rows × photos) over each test sample's photos: rows × samples."""
    # One bincount over (row, sample) codes: no photos × samples matrix on large test sets.
    codes = np.arange(values.shape[0])[:, None] * n_clusters + clusters[None, :]
    length = values.shape[0] * n_clusters
    sums = np.bincount(codes.ravel(), weights=values.ravel(), minlength=length)
    return sums.reshape(-1, n_clusters)


def _hits(
    correct: np.ndarray, clusters: np.ndarray, classes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Correct photos per class, cell, seed and test sample; photos per class and sample."""
    n_clusters, n_classes = int(clusters.max()) + 1, int(classes.max()) + 1
    rows = correct.reshape(-1, correct.shape[-1])  # (cell, seed) × photo
    hits, sizes = [], []
    for k in range(n_classes):
        in_class = (classes == k).astype(float)
        hits.append(_per_sample(rows * in_class, clusters, n_clusters))
        sizes.append(_per_sample(in_class[None, :], clusters, n_clusters)[0])
    return np.stack(hits).reshape(n_classes, *correct.shape[:-1], n_clusters), np.stack(sizes)


def _point(hits: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The metric of every cell and seed on the whole test split."""
    recall = hits.sum(axis=-1) / sizes.sum(axis=-1)[:, None, None]  # class × cell × seed
    return recall.mean(axis=0)


def _variant_scores(
    variant: str,
    frame: pd.DataFrame,
    records: Sequence[Mapping[str, Any]],
    metric: str,
    **bootstrap: Any,
) -> CellScores:
    seeds = sorted(set(frame["seed"]))
    cells = (
        frame[["n_samples", "n_angles"]].drop_duplicates().sort_values(["n_samples", "n_angles"])
    )
    cells = cells.reset_index(drop=True)
    grid = frame.set_index(["n_samples", "n_angles", "seed"]).sort_index()
    for n, k in cells.itertuples(index=False):
        found = sorted(grid.loc[(n, k)].index)
        if found != seeds:  # differences are paired seed by seed
            raise ValueError(
                f"Cell {variant} {n}×{k} has seeds {found}, other cells have {seeds}; every cell "
                "needs the same seeds."
            )
    order = [
        int(grid.loc[(n, k, s), "position"])
        for n, k in cells.itertuples(index=False)
        for s in seeds
    ]
    chosen = [records[i] for i in order]
    clusters, classes = _test_photos(chosen, metric)
    correct = np.asarray([r["correct"] for r in chosen], dtype=float)
    correct = correct.reshape(len(cells), len(seeds), -1)
    hits, sizes = _hits(correct, clusters, classes)
    replicates, seed_draws = two_level_bootstrap_replicates(hits, sizes, **bootstrap)
    n_images = np.asarray([r["n_images"] for r in chosen], dtype=float).reshape(
        len(cells), len(seeds)
    )
    return CellScores(
        variant=variant,
        metric=metric,
        cells=cells,
        seeds=tuple(int(s) for s in seeds),
        n_images=n_images,
        point=_point(hits, sizes),
        replicates=replicates,
        seed_draws=seed_draws,
    )


def score_cells(
    records: Sequence[Mapping[str, Any]], *, n_resamples: int, seed: int
) -> dict[str, CellScores]:
    """Every variant's cells scored seed by seed, with shared two-level bootstrap draws.

    Args:
        records: Cell records from ``summarise_cell`` (``variant, n_samples, n_angles,
            seed, n_images``, per test photo ``sample_id``, ``correct`` and, for balanced
            accuracy, ``label``; ``metric`` names the headline metric).
        n_resamples: Bootstrap replicates.
        seed: Seed of the bootstrap.

    Returns:
        ``{variant: CellScores}``, variants sorted.

    Raises:
        ValueError: Without records, if cells of a variant have different seeds, if
            records were tested on different photos, or if balanced accuracy is the
            headline metric and the records lack labels.
    """
    if not records:
        raise ValueError("No ablation records to score.")
    metric = headline_metric_of(records)
    frame = pd.DataFrame(
        {key: [r[key] for r in records] for key in ("variant", "n_samples", "n_angles", "seed")}
    ).assign(position=range(len(records)))
    if frame.duplicated(["variant", "n_samples", "n_angles", "seed"]).any():
        raise ValueError("Two ablation records describe the same cell and seed.")
    bootstrap = {"n_resamples": n_resamples, "seed": seed}
    return {
        str(variant): _variant_scores(str(variant), group, records, metric, **bootstrap)
        for variant, group in frame.groupby("variant", sort=True)
    }
