"""``data_size_ablation.cluster``: where the ablation's cells run with
``kedro run --pipeline=data_size_ablation --runner=transfer_study.grid.DaskGridRunner``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import NonNegativeInt, PositiveInt, Settings


class ClusterSettings(Settings):
    """``data_size_ablation.cluster``: the Dask cluster of the grid runner."""

    workers: PositiveInt = Field(
        description="worker processes of a local cluster (one cell process each at a time)"
    )
    scheduler: str | None = Field(
        description="address of an existing scheduler (tcp://host:8786); null = local cluster"
    )
    cells_per_task: PositiveInt | Literal["auto"] = Field(
        description="cells one `kedro run` process trains (its start-up is paid once); "
        "auto: about three tasks per worker"
    )
    retries: NonNegativeInt = Field(
        description="times a task whose worker died (kill -9, out of memory) is run again"
    )
    dashboard: bool = Field(description="serve the Dask dashboard and print its address")
