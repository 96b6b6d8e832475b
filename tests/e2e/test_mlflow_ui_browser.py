"""A default `kedro run` leaves one MLflow run per variant, and the MLflow UI shows them."""

from __future__ import annotations

import json
import os
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.browser import (
    Server,
    chromium_driver,
    find_chromium,
    free_port,
    screenshot_path,
    serve,
    wait_until_still,
)
from tests.helpers.kedro_project import tiny_study
from tests.helpers.parameters import shipped_study_variants

pytestmark = [pytest.mark.slow, pytest.mark.browser]

EXPERIMENT = "transfer_study"  # conf/base/mlflow.yml, tracking.experiment.name
PARENT_RUN = "__default__"  # kedro-mlflow names its run after the pipeline
VARIANTS = shipped_study_variants()  # what a plain `kedro run` trains
PAGE_TIMEOUT = 60  # seconds for the runs table to render on 2 busy cores
# The run-name cell of MLflow 3's runs table (an ag-grid) links each run to its page.
RUN_NAME_CELL = '.ag-cell[col-id="attributes.`Run Name`"]'
RUN_LINK = 'a[href*="/runs/"]'
# Runs-table columns for the screenshot: the comparison's headline numbers.
COLUMNS = [
    "tags.`variant`",
    "metrics.`test_accuracy`",
    "metrics.`test_balanced_accuracy`",
    "metrics.`test_macro_f1`",
    "metrics.`seconds`",
]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project copy in which the demo data and then the default pipeline have run."""
    find_chromium()  # fail or skip before the slow pipeline run
    return tiny_study(tmp_path_factory.mktemp("mlflow") / "project")


@pytest.fixture(scope="module")
def mlflow_ui(project: Path) -> Iterator[Server]:
    """`mlflow ui` on the project's store, on a free port of 127.0.0.1."""
    port = free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    command = [
        str(mlflow),
        "ui",
        "--backend-store-uri",
        f"sqlite:///{project / 'mlflow.db'}",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        # The background job runner serves GenAI judges only; it adds ~7 processes.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    with serve(
        command,
        f"http://127.0.0.1:{port}/health",
        cwd=project,
        log=project / "mlflow_ui.log",
        env=env,
    ) as server:
        yield server


def _api(server: Server, endpoint: str, body: dict[str, Any] | None = None) -> dict:
    """GETs (or POSTs ``body`` to) MLflow's REST API as the UI does."""
    base = server.url.removesuffix("health")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{base}ajax-api/2.0/mlflow/{endpoint}",
        data=data,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def experiment_id(mlflow_ui: Server) -> str:
    query = urllib.parse.urlencode({"experiment_name": EXPERIMENT})
    return _api(mlflow_ui, f"experiments/get-by-name?{query}")["experiment"]["experiment_id"]


def test_api_has_one_child_run_per_variant_under_the_parent_run(
    mlflow_ui: Server, experiment_id: str
):
    runs = _api(mlflow_ui, "runs/search", {"experiment_ids": [experiment_id], "max_results": 100})
    tags = {
        run["info"]["run_id"]: {tag["key"]: tag["value"] for tag in run["data"].get("tags", [])}
        for run in runs["runs"]
    }
    metrics = {
        run["info"]["run_id"]: {metric["key"] for metric in run["data"].get("metrics", [])}
        for run in runs["runs"]
    }
    names = {run["info"]["run_id"]: run["info"]["run_name"] for run in runs["runs"]}
    (parent,) = [run_id for run_id, name in names.items() if name == PARENT_RUN]
    children = {
        names[run_id]: run_id
        for run_id, run_tags in tags.items()
        if run_tags.get("mlflow.parentRunId") == parent
    }
    assert sorted(children) == sorted(VARIANTS)
    for variant, run_id in children.items():
        assert tags[run_id]["variant"] == variant
        assert {"test_accuracy", "test_macro_f1"} <= metrics[run_id], variant


def test_runs_table_lists_the_variant_runs_under_the_parent_run(
    mlflow_ui: Server, experiment_id: str, tmp_path: Path
):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # The UI's own settings, stored before its scripts run (the profile is fresh): the
    # "Model training" view, the assistant panel closed, the headline metric columns.
    page_state = {"selectedColumns": ["attributes.`Source`", *COLUMNS]}
    settings = {
        "mlflow.workflowType_v1": json.dumps("machine_learning"),
        "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true",
        "mlflow.assistant.panelOpen_v1": "false",
        f'MLflowLocalStorage-1.1-ExperimentPage-["{experiment_id}"]-ReactComponentState': (
            json.dumps(page_state)
        ),
    }
    store_settings = "".join(
        f"if (localStorage.getItem({json.dumps(key)}) === null)"
        f" localStorage.setItem({json.dumps(key)}, {json.dumps(value)});"
        for key, value in settings.items()
    )

    def listed_runs(driver) -> list[str]:
        """Names of the runs the table shows, top to bottom.

        ag-grid positions its rows with CSS, so the DOM order is not the order on screen.
        """
        links = driver.find_elements(By.CSS_SELECTOR, f"{RUN_NAME_CELL} {RUN_LINK}")
        shown = [(link.location["y"], link.text) for link in links if link.is_displayed()]
        return [name for _, name in sorted(shown)]

    with chromium_driver() as driver:
        wait = WebDriverWait(
            driver, PAGE_TIMEOUT, ignored_exceptions=(StaleElementReferenceException,)
        )
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": store_settings})
        driver.get(f"{mlflow_ui.url.removesuffix('health')}#/experiments/{experiment_id}/runs")

        wait.until(
            lambda d: {PARENT_RUN, "demo_data"} <= set(listed_runs(d)),
            message=f"The runs table did not list {PARENT_RUN} and demo_data",
        )
        # Nested runs start collapsed under their parent...
        assert not set(VARIANTS) & set(listed_runs(driver))

        # ...until its expander (the button in its run-name cell) is clicked.
        def parent_expander(driver):
            for cell in driver.find_elements(By.CSS_SELECTOR, RUN_NAME_CELL):
                links = cell.find_elements(By.CSS_SELECTOR, RUN_LINK)
                if links and links[0].text == PARENT_RUN:
                    buttons = cell.find_elements(By.CSS_SELECTOR, "button")
                    return buttons[0] if buttons else False
            return False

        wait.until(parent_expander, message=f"{PARENT_RUN} has no expander").click()
        wait.until(
            lambda d: set(VARIANTS) <= set(listed_runs(d)),
            message=f"Expanding {PARENT_RUN} did not show {VARIANTS}",
        )
        shown = listed_runs(driver)
        # Children are listed right below their parent.
        position = shown.index(PARENT_RUN)
        assert sorted(shown[position + 1 : position + 1 + len(VARIANTS)]) == sorted(VARIANTS)

        wait_until_still(lambda: driver.find_element(By.TAG_NAME, "body").text)
        driver.save_screenshot(str(screenshot_path("mlflow_runs.png", tmp_path)))
