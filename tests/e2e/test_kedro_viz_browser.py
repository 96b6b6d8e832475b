"""`kedro viz` serves the project's pipelines, and a real browser draws them."""

from __future__ import annotations

import json
import os
import re
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.helpers.browser import (
    REPO_ROOT,
    Server,
    chromium_driver,
    find_chromium,
    free_port,
    screenshot_path,
    serve,
    wait_until_still,
)
from tests.helpers.kedro_project import make_project
from tests.helpers.parameters import shipped_study_variants

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PIPELINES_DIR = REPO_ROOT / "src" / "transfer_study" / "pipelines"
VARIANTS = shipped_study_variants()  # what a plain `kedro run` trains
PAGE_TIMEOUT = 60  # seconds for the flowchart to render on 2 busy cores
# kedro-viz's settings, stored before its scripts read them (the profile is fresh): no
# feature tour over the graph, no minimap over the bottom layer's name.
VIZ_SETTINGS = {"showFeatureHints": False, "visible": {"miniMap": False}}
STORE_VIZ_SETTINGS = (
    "if (!localStorage.getItem('KedroViz'))"
    f" localStorage.setItem('KedroViz', JSON.stringify({json.dumps(VIZ_SETTINGS)}));"
)


@pytest.fixture(scope="module")
def viz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`kedro viz run` on a copy of the project, on a free port of 127.0.0.1."""
    find_chromium()  # fail or skip before the slow server start
    project = make_project(tmp_path_factory.mktemp("viz") / "project")
    port = free_port()
    kedro = Path(sys.executable).parent / "kedro"
    command = [str(kedro), "viz", "run", "--no-browser", "--host", "127.0.0.1", "--port", str(port)]
    with serve(
        command,
        f"http://127.0.0.1:{port}/api/main",
        cwd=project,
        log=project / "kedro_viz.log",
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"},
    ) as server:
        yield server


@pytest.fixture(scope="module")
def graph(viz: Server) -> dict:
    with urllib.request.urlopen(viz.url, timeout=30) as response:
        return json.load(response)


def _catalog_layers() -> dict[str, str | None]:
    """Entry (or factory pattern) of ``conf/base/catalog*.yml`` → its kedro-viz layer."""
    layers = {}
    for catalog_file in sorted((REPO_ROOT / "conf" / "base").glob("catalog*.yml")):
        for name, entry in (yaml.safe_load(catalog_file.read_text()) or {}).items():
            if not name.startswith("_"):  # `_name:` keys are YAML anchors, not datasets
                metadata = (entry or {}).get("metadata") or {}
                layers[name] = metadata.get("kedro-viz", {}).get("layer")
    return layers


def _layer_of(dataset: str, catalog: dict[str, str | None]) -> str | None:
    """The layer Kedro's catalog gives ``dataset``: its own entry, else the most specific
    matching pattern (most literal characters first, as Kedro ranks them)."""
    if dataset in catalog:
        return catalog[dataset]
    patterns = sorted(
        (name for name in catalog if "{" in name),
        key=lambda name: (-len(re.sub(r"\{[^}]*\}", "", name)), name.count("{"), name),
    )
    for name in patterns:
        if re.fullmatch(re.sub(r"\\\{[^}]*\\\}", ".+", re.escape(name)), dataset):
            return catalog[name]
    return None  # no entry: a MemoryDataset, drawn without a layer


def test_api_lists_every_registered_pipeline(graph: dict):
    listed = {pipeline["id"] for pipeline in graph["pipelines"]}
    folders = {p.name for p in PIPELINES_DIR.iterdir() if (p / "pipeline.py").exists()}
    assert {"__default__", "data_processing", "demo_data", "training", "reporting"} <= listed
    assert listed == {"__default__", *folders}
    assert graph["selected_pipeline"] == "__default__"


def test_api_graph_has_the_variant_namespaces_and_their_nodes(graph: dict):
    names = {(node["type"], node["name"]) for node in graph["nodes"]}
    assert {("modularPipeline", variant) for variant in VARIANTS} <= names
    assert {("task", "split_by_sample_node"), ("task", "compare_variants_node")} <= names
    for variant in VARIANTS:
        assert ("data", f"{variant}.model") in names
        assert ("data", f"{variant}.test_metrics") in names


def test_api_datasets_carry_the_catalog_layers(graph: dict):
    catalog = _catalog_layers()
    assert {"raw", "intermediate", "feature", "model_input", "models", "reporting"} <= set(
        graph["layers"]
    )
    assert set(graph["layers"]) <= set(catalog.values()) - {None}
    datasets = [node for node in graph["nodes"] if node["type"] == "data"]
    assert datasets
    for dataset in datasets:
        assert dataset["layer"] == _layer_of(dataset["name"], catalog), dataset["name"]


def test_flowchart_shows_the_pipeline_in_chromium(viz: Server, graph: dict, tmp_path: Path):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # What the default view draws: the top level, namespaces collapsed, parameters hidden.
    by_id = {node["id"]: node for node in graph["nodes"]}
    expected = {
        by_id[child["id"]]["name"]
        for child in graph["modular_pipelines"]["__root__"]["children"]
        if child["type"] in ("task", "modularPipeline")
    }
    assert {*VARIANTS, "split_by_sample_node"} <= expected

    with chromium_driver() as driver:
        driver.execute_cdp_cmd(
            "Page.addScriptToEvaluateOnNewDocument", {"source": STORE_VIZ_SETTINGS}
        )
        driver.get(viz.url.removesuffix("api/main"))

        # kedro-viz draws every node as <g class="pipeline-node" data-node-type=...> holding
        # its label in <text class="pipeline-node__text">.
        def drawn_labels(driver) -> set[str]:
            return {
                label.text
                for label in driver.find_elements(
                    By.CSS_SELECTOR,
                    "g.pipeline-node:is([data-node-type=task], [data-node-type=modularPipeline])"
                    " text.pipeline-node__text",
                )
            }

        # React redraws the graph while it loads: a label may go stale between find and read.
        WebDriverWait(
            driver, PAGE_TIMEOUT, ignored_exceptions=(StaleElementReferenceException,)
        ).until(
            lambda d: expected <= drawn_labels(d),
            message=f"kedro viz did not draw {sorted(expected)}",
        )
        assert drawn_labels(driver) == expected

        # Layout and zoom-to-fit are animated: wait until they stop moving.
        wait_until_still(
            lambda: driver.find_element(By.ID, "zoom-wrapper").get_attribute("transform")
        )
        # Every label lies in the part of the window that the sidebar and toolbar leave free.
        left = max(
            panel.rect["x"] + panel.rect["width"]
            for panel in driver.find_elements(By.CSS_SELECTOR, ".pipeline-sidebar, nav")
        )
        width, height = driver.execute_script("return [window.innerWidth, window.innerHeight]")
        # Zoom-to-fit fits the nodes' boxes: the rightmost label may end a few pixels past
        # its box (measured: 2 px with the four variants), still readable.
        slack = 8
        for label in driver.find_elements(By.CSS_SELECTOR, "g.pipeline-node text"):
            box = label.rect
            assert label.is_displayed(), label.text
            assert box["width"] > 0 and box["height"] > 0, label.text
            assert left <= box["x"] and box["x"] + box["width"] <= width + slack, (label.text, box)
            assert box["y"] >= 0 and box["y"] + box["height"] <= height, (label.text, box)

        # Layer names are drawn as a list beside the graph.
        layer_names = {
            name.text
            for name in driver.find_elements(By.CSS_SELECTOR, "li.pipeline-layer-name")
            if name.is_displayed()
        }
        assert {"raw", "model_input", "reporting"} <= layer_names <= set(graph["layers"])

        # Offline, kedro-viz cannot ask PyPI for its latest version and shows an
        # "is here!" banner; dismiss it so that it does not hide the graph.
        for button in driver.find_elements(By.CSS_SELECTOR, ".update-reminder-unexpanded button"):
            if button.text == "Dismiss":
                button.click()
        driver.save_screenshot(str(screenshot_path("kedro_viz.png", tmp_path)))
