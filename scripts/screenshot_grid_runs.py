"""Screenshot of the MLflow UI with a grid run and its cells, for docs/images/mlflow_grid.png.

    python scripts/screenshot_grid_runs.py --project /path/to/project   # after a grid run

Serves `mlflow ui` on 127.0.0.1 over the project's `mlflow.db` (its own process group,
stopped afterwards), expands the newest data_size_ablation run in headless Chromium and
saves the page. Needs chromium and chromium-driver (see docs/user_guide.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import mlflow
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.helpers.browser import (  # noqa: E402
    chromium_driver,
    free_port,
    serve,
    wait_until_still,
)

RUN_NAME_CELL = '.ag-cell[col-id="attributes.`Run Name`"]'
RUN_LINK = 'a[href*="/runs/"]'
# The UI's own settings, stored before its scripts run (the profile is fresh): the "Model
# training" view and the assistant panel closed (as tests/e2e/test_mlflow_ui_browser.py).
SETTINGS = {
    "mlflow.workflowType_v1": json.dumps("machine_learning"),
    "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true",
    "mlflow.assistant.panelOpen_v1": "false",
}
TIMEOUT_S = 120


def _grid_run(store: str) -> tuple[str, str]:
    client = mlflow.MlflowClient(store)
    experiment = client.get_experiment_by_name("transfer_study")
    runs = client.search_runs(
        [experiment.experiment_id],
        "tags.pipeline = 'data_size_ablation' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
    )
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    return experiment.experiment_id, parents[0].info.run_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs/images/mlflow_grid.png")
    args = parser.parse_args()
    store = f"sqlite:///{(args.project / 'mlflow.db').resolve()}"
    experiment_id, parent = _grid_run(store)
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    log = args.project / "mlflow_ui.log"
    with serve(command, f"{url}/health", cwd=args.project, log=log), chromium_driver() as driver:
        wait = WebDriverWait(
            driver, TIMEOUT_S, ignored_exceptions=(StaleElementReferenceException,)
        )
        store_settings = "".join(
            f"localStorage.setItem({json.dumps(key)}, {json.dumps(value)});"
            for key, value in SETTINGS.items()
        )
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": store_settings})
        driver.get(f"{url}/#/experiments/{experiment_id}/runs")

        def expander(driver):
            # The newest run of that name is the topmost (the table is newest first).
            cells = sorted(
                driver.find_elements(By.CSS_SELECTOR, RUN_NAME_CELL), key=lambda c: c.location["y"]
            )
            for cell in cells:
                links = cell.find_elements(By.CSS_SELECTOR, RUN_LINK)
                if links and links[0].text == parent:
                    buttons = cell.find_elements(By.CSS_SELECTOR, "button")
                    return buttons[0] if buttons else False
            return False

        wait.until(expander, message=f"{parent} is not listed with an expander").click()
        wait.until(lambda d: "ablation." in d.find_element(By.TAG_NAME, "body").text)
        wait_until_still(lambda: driver.find_element(By.TAG_NAME, "body").text)
        driver.save_screenshot(str(args.out))
    print(args.out)


if __name__ == "__main__":
    main()
