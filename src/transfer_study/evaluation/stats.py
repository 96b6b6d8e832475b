"""Paired statistical tests between classifiers scored on the same test photos."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations

import numpy as np
import pandas as pd
from statsmodels.stats.contingency_tables import mcnemar as _statsmodels_mcnemar
from statsmodels.stats.multitest import multipletests

from .metrics import _as_correct

_PAIRWISE_COLUMNS = [
    "variant_a",
    "variant_b",
    "accuracy_a",
    "accuracy_b",
    "n_a_only_correct",
    "n_b_only_correct",
    "statistic",
    "p_value",
    "method",
    "p_value_holm",
]


def mcnemar_test(
    correct_a: np.ndarray, correct_b: np.ndarray, *, exact_below: int = 25
) -> dict[str, float | int | str]:
    """McNemar's test of two classifiers on the same test photos (paired).

    Args:
        correct_a: Per-photo correctness of classifier A.
        correct_b: Per-photo correctness of classifier B, same photos in the same order.
        exact_below: Use the exact binomial test when fewer discordant photos than this,
            otherwise chi-square with continuity correction.

    Returns:
        ``n01`` (A wrong, B right), ``n10`` (A right, B wrong), ``statistic``,
        ``p_value`` (two-sided) and ``method`` (``"exact"`` or ``"chi2"``).

    Raises:
        ValueError: If the arrays are not 1-D booleans of equal length.
    """
    a = _as_correct(correct_a, "correct_a")
    b = _as_correct(correct_b, "correct_b")
    if a.shape != b.shape:
        raise ValueError(
            f"correct_a and correct_b must score the same photos: lengths {a.size} != {b.size}."
        )
    n01 = int(np.sum(~a & b))
    n10 = int(np.sum(a & ~b))
    exact = n01 + n10 < exact_below
    # statsmodels reads only the off-diagonal cells.
    table = [[int(np.sum(a & b)), n10], [n01, int(np.sum(~a & ~b))]]
    result = _statsmodels_mcnemar(table, exact=exact, correction=True)
    return {
        "n01": n01,
        "n10": n10,
        "statistic": float(result.statistic),
        "p_value": float(result.pvalue),
        "method": "exact" if exact else "chi2",
    }


def pairwise_mcnemar(
    correct_by_variant: Mapping[str, np.ndarray], *, exact_below: int = 25
) -> pd.DataFrame:
    """McNemar's test for every unordered pair of variants, Holm-corrected across pairs.

    Args:
        correct_by_variant: Per-photo correctness of each variant, same photos in the
            same order; pairs follow the mapping's order.
        exact_below: Passed to :func:`mcnemar_test`.

    Returns:
        One row per pair with ``variant_a, variant_b, accuracy_a, accuracy_b,
        n_a_only_correct, n_b_only_correct, statistic, p_value, method, p_value_holm``.
        Empty (with these columns) for fewer than two variants.

    Raises:
        ValueError: If the variants scored different numbers of photos.
    """
    correct = {name: _as_correct(values, name) for name, values in correct_by_variant.items()}
    if len({v.size for v in correct.values()}) > 1:
        sizes = {name: v.size for name, v in correct.items()}
        raise ValueError(f"All variants must score the same test photos; sizes: {sizes}.")
    rows = []
    for name_a, name_b in combinations(correct, 2):
        test = mcnemar_test(correct[name_a], correct[name_b], exact_below=exact_below)
        rows.append(
            {
                "variant_a": name_a,
                "variant_b": name_b,
                "accuracy_a": float(correct[name_a].mean()),
                "accuracy_b": float(correct[name_b].mean()),
                "n_a_only_correct": test["n10"],
                "n_b_only_correct": test["n01"],
                "statistic": test["statistic"],
                "p_value": test["p_value"],
                "method": test["method"],
            }
        )
    table = pd.DataFrame(rows, columns=_PAIRWISE_COLUMNS[:-1])
    table["p_value_holm"] = (
        multipletests(table["p_value"], method="holm")[1] if rows else pd.Series(dtype=float)
    )
    return table
