"""Screenshot of the MLflow UI with a grid run and its cells, for docs/images/mlflow_grid.png.

    python scripts/screenshot_grid_runs.py --project /path/to/project   # after a grid run

Serves `mlflow ui` on 127.0.0.1 over the project's `mlflow.db` (its own process group,
stopped afterwards), expands the newest data_size_ablation run in headless Chromium and
saves the page. Needs chromium and chromium-driver (see docs/user_guide.md).
"""

from __future__ import annotations

import argparse
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

RUN_NAME_CELL = "[col-id='run_name']"
RUN_LINK = "a"
TIMEOUT_S = 120


def _grid_run(store: str) -> tuple[str, str]:
    client = mlflow.MlflowClient(store)
    experiment = client.get_experiment_by_name("transfer_study")
    (run,) = client.search_runs(
        [experiment.experiment_id],
        "tags.pipeline = 'data_size_ablation' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return experiment.experiment_id, run.info.run_name


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
        driver.get(f"{url}/#/experiments/{experiment_id}/runs")

        def expander(driver):
            for cell in driver.find_elements(By.CSS_SELECTOR, RUN_NAME_CELL):
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
