"""The data-size ablation: one namespaced training per (variant, samples, angles, seed).

A cell is the study's variant template (``pipelines.variant_template``) plus a node that
picks the cell's nested training subset and one that condenses its result, under the
namespace ``ablation.<variant>.n<samples>_a<angles>_s<seed>``. ``kedro viz`` shows the
cells grouped by variant; ``--namespaces=<cell>`` runs one; a cell whose result file
exists is skipped by ``--only-missing-outputs``.

The grid shapes the pipeline, so it is read from the configuration files when the pipeline
is built (``pipelines.configured``); the first node checks that the parameters of the run
describe the same grid.
"""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Node, Pipeline

from transfer_study.config import AblationSettings, parse_settings
from transfer_study.photos.subsets import grid_cells
from transfer_study.pipelines.configured import configured_parameters
from transfer_study.pipelines.variant_template import (
    INTERMEDIATE,
    PROBE_INPUTS,
    PROBED_VARIANTS,
    VARIANTS,
    bound,
    needs_features,
    probe_node,
    training_node_and_data,
    variant_template,
)

from .nodes import (
    cell_training_parameters,
    check_ablation_grid,
    report_ablation,
    select_training_subset,
    summarise_cell,
)

PARAMETERS_KEY = "data_size_ablation"


def cell_name(variant: str, cell: dict[str, Any]) -> str:
    """``frozen`` + ``{n_samples: 30, n_angles: 2, seed: 0}`` → ``frozen.n30_a2_s0``."""
    return f"{variant}.n{cell['n_samples']}_a{cell['n_angles']}_s{cell['seed']}"


def configured_grid() -> dict[str, Any]:
    """The ablation's parameters as the configuration files give them."""
    return configured_parameters()[PARAMETERS_KEY]


def _cell_pipeline(variant: str, cell: dict[str, Any]) -> Pipeline:
    _, data = training_node_and_data(variant)
    cell_nodes = Pipeline(
        [
            Node(
                func=bound(select_training_subset, "select_training_subset", cell=cell),
                inputs="study_split",
                outputs="split",
                name="select_training_subset_node",
            ),
            Node(
                func=bound(cell_training_parameters, "cell_training_parameters", cell=cell),
                inputs=["training_settings", "params:ablation"],
                outputs="cell_training_settings",
                name="cell_training_parameters_node",
            ),
            Node(
                func=bound(summarise_cell, "summarise_cell", cell={**cell, "variant": variant}),
                inputs={
                    "training_summary": "training_summary",
                    "test_metrics": "test_metrics",
                    "test_predictions": "test_predictions",
                    "subset": "split",
                },
                outputs="result",
                name="summarise_cell_node",
            ),
        ]
    )
    probed = variant in PROBED_VARIANTS
    probe = Pipeline([probe_node("cell_training_settings")] if probed else [])
    return Pipeline(
        cell_nodes + probe + variant_template(variant, training_settings="cell_training_settings"),
        namespace=f"ablation.{cell_name(variant, cell)}",
        inputs={
            "study_split": "ablation_split",
            # The study's resolved settings and chosen learning rate: no search per cell.
            "training_settings": f"{variant}.training_settings",
            "learning_rate": f"{variant}.learning_rate",
            **{shared: shared for shared in ("decoded_images", "preprocessing")},
            # The study's caches; a partial fine-tune's is in its namespace (its settings').
            data: f"{variant}.{data}" if VARIANTS[variant] == INTERMEDIATE else data,
            **({"backbone_features": "backbone_features"} if needs_features(variant) else {}),
            **(PROBE_INPUTS if probed else {}),
        },
        parameters={
            **{shared: shared for shared in ("params:model", "params:evaluation")},
            "params:ablation": f"params:{PARAMETERS_KEY}",
        },
    )


def create_pipeline(**kwargs) -> Pipeline:
    """Creates the ablation: the grid check, the cells and the report.

    ``pipeline_registry.py`` runs it after data processing and the shared embedding.

    Returns:
        The pipeline.
    """
    # Validated here: the model refuses unknown variants and impossible axes.
    grid = parse_settings(AblationSettings, configured_grid(), block=PARAMETERS_KEY)
    cells = [(variant, cell) for variant in grid.variants for cell in grid_cells(grid)]
    check = Node(
        func=bound(check_ablation_grid, "check_ablation_grid", pipeline_grid=grid),
        inputs=["split", f"params:{PARAMETERS_KEY}"],
        outputs="ablation_split",
        name="check_ablation_grid_node",
    )
    report = Node(
        func=report_ablation,
        inputs=[
            f"params:{PARAMETERS_KEY}",
            "grouping",
            *(f"ablation.{cell_name(variant, cell)}.result" for variant, cell in cells),
        ],
        outputs=[
            "ablation_per_seed",
            "ablation_learning_curve",
            "ablation_recommendation",
            "ablation_report",
            "ablation_learning_curve_plot",
            "ablation_heatmap",
        ],
        name="report_ablation_node",
    )
    return (
        Pipeline([check])
        + sum((_cell_pipeline(variant, cell) for variant, cell in cells), Pipeline([]))
        + Pipeline([report])
    )
