"""More samples or more angles? A GEE logistic model of per-photo correctness.

Every test photo of every cell and seed is one observation: was it classified right?
The model is ``logit P(correct) = β₀ + β_s·log2(n_samples) + β_a·log2(n_angles)
(+ variant)``, fitted by generalised estimating equations (statsmodels ``GEE``,
Binomial family) with the photos of one physical test sample as one group and an
exchangeable working correlation inside it; standard errors are the robust (sandwich)
ones, which stay valid when that working correlation is wrong. ``β_s`` and ``β_a`` are
what one doubling of samples, or of angles, adds to the log-odds of a correct photo: both
double the training photos, so their difference says which doubling pays more.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf
from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

MORE_SAMPLES = "more samples pay more than more angles"
MORE_ANGLES = "more angles pay more"
NO_CLEAR_DIFFERENCE = "no clear difference"
NOT_ESTIMABLE = "not estimable"
MODEL = (
    "GEE, Binomial (logit), exchangeable within each physical test sample, robust "
    "standard errors: correct ~ log2(n_samples) + log2(n_angles)"
)
_SAMPLES, _ANGLES = "log2_samples", "log2_angles"


def _photo_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per test photo of every record: correctness, grid coordinates, group."""
    frames = [
        pd.DataFrame(
            {
                "correct": np.asarray(record["correct"], dtype=float),
                _SAMPLES: np.log2(record["n_samples"]),
                _ANGLES: np.log2(record["n_angles"]),
                "variant": str(record["variant"]),
                "test_sample": pd.Series(record["sample_id"], dtype=object).astype(str),
            }
        )
        for record in records
    ]
    return pd.concat(frames, ignore_index=True)


def _not_estimable(reason: str, **extra: Any) -> dict[str, Any]:
    return {
        "status": NOT_ESTIMABLE,
        "verdict": f"{NOT_ESTIMABLE}: {reason}",
        "message": reason,
    } | extra


def _degenerate(frame: pd.DataFrame) -> str | None:
    """Why the grid cannot separate the two slopes, if it cannot."""
    reasons = []
    if frame[_SAMPLES].nunique() < 2:
        reasons.append("the grid has one sample size")
    if frame[_ANGLES].nunique() < 2:
        reasons.append("the grid has one angle count")
    return " and ".join(reasons) or None


def _verdict(low: float, high: float) -> str:
    return MORE_SAMPLES if low > 0 else MORE_ANGLES if high < 0 else NO_CLEAR_DIFFERENCE


def _fit(frame: pd.DataFrame, *, with_variant: bool, confidence: float) -> dict[str, Any]:
    """The GEE on ``frame`` and its slopes, their difference and the verdict."""
    reason = _degenerate(frame)
    if reason is not None:
        return _not_estimable(reason, warnings=[])
    formula = f"correct ~ {_SAMPLES} + {_ANGLES}" + (" + C(variant)" if with_variant else "")
    model = smf.gee(
        formula,
        groups="test_sample",
        data=frame,
        family=sm.families.Binomial(),
        cov_struct=sm.cov_struct.Exchangeable(),
    )
    alpha = 1 - confidence
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = model.fit()
            intervals = result.conf_int(alpha=alpha)
            contrast = result.t_test(f"{_SAMPLES} - {_ANGLES} = 0")  # robust covariance
            low, high = (float(v) for v in np.asarray(contrast.conf_int(alpha=alpha)).ravel())
        except (np.linalg.LinAlgError, ValueError) as error:
            return _not_estimable(f"the GEE fit failed: {error}", warnings=[])
    messages = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    estimates = [result.params[_SAMPLES], result.params[_ANGLES], low, high]
    if any(issubclass(w.category, PerfectSeparationWarning) for w in caught):
        # Some cell's photos are all right (or all wrong): the slopes run off to infinity.
        return _not_estimable(
            "perfect separation (some cells are all right or all wrong)", warnings=messages
        )
    if not np.isfinite(estimates).all() or not np.isfinite(intervals.to_numpy()).all():
        return _not_estimable("the fit gave no finite estimates", warnings=messages)
    return {
        "status": "ok",
        "samples_slope": float(result.params[_SAMPLES]),
        "samples_ci": [float(v) for v in intervals.loc[_SAMPLES]],
        "angles_slope": float(result.params[_ANGLES]),
        "angles_ci": [float(v) for v in intervals.loc[_ANGLES]],
        "difference": float(np.asarray(contrast.effect).ravel()[0]),
        "difference_ci": [low, high],
        "verdict": _verdict(low, high),
        "message": f"{len(frame)} photo results in {frame['test_sample'].nunique()} test samples",
        "within_sample_correlation": float(np.ravel(result.cov_struct.dep_params)[0]),
        "warnings": messages,
    }


def samples_vs_angles(records: Sequence[Mapping[str, Any]], *, confidence: float) -> dict[str, Any]:
    """Does doubling the physical samples pay more than doubling the photos of each?

    Args:
        records: Cell records from ``summarise_cell`` (``variant, n_samples, n_angles``
            and per test photo ``sample_id`` and ``correct``).
        confidence: Level of the intervals.

    Returns:
        ``model`` (what was fitted), ``confidence``, ``all_variants`` (one model over
        every record, with the variant as a categorical term when there are several)
        and ``variants`` (one model per variant, only when there are several). Each
        model: ``status`` ("ok" or "not estimable"), ``samples_slope``,
        ``angles_slope`` (log-odds of a correct photo per doubling) with ``*_ci``,
        ``difference`` (samples − angles) with ``difference_ci``, ``verdict`` (more
        samples pay more than more angles / more angles pay more / no clear
        difference / not estimable: why), ``message`` and the ``warnings`` the fit
        raised (perfect separation, convergence).

    Raises:
        ValueError: Without records.
    """
    if not records:
        raise ValueError("No ablation records for the samples-vs-angles model.")
    frame = _photo_frame(records)
    variants = sorted(frame["variant"].unique())
    several = len(variants) > 1
    return {
        "model": MODEL + (" + variant" if several else ""),
        "confidence": confidence,
        "all_variants": _fit(frame, with_variant=several, confidence=confidence),
        "variants": {
            variant: _fit(
                frame[frame["variant"] == variant], with_variant=False, confidence=confidence
            )
            for variant in (variants if several else [])
        },
    }
