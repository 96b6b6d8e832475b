"""Project settings. See https://docs.kedro.org/en/stable/kedro_project_setup/settings.html."""

from kedro.config import OmegaConfigLoader
from omegaconf.resolvers import oc

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # Kedro allows environment variables only in credentials by default; mlflow.yml reads
    # MLFLOW_TRACKING_URI so a tracking server can be chosen without editing files.
    "custom_resolvers": {"oc.env": oc.env},
    # An environment (conf/full) overrides single parameters, not whole blocks.
    "merge_strategy": {"parameters": "soft"},
}

import os  # noqa: E402

from transfer_study.config_check import ParameterCheckHook  # noqa: E402
from transfer_study.grid.run_params import RunParamsHook  # noqa: E402
from transfer_study.tracking.hooks import GRID_PARENT_ENV, ChildRunHook  # noqa: E402
from transfer_study.tracking.server_check import TrackingServerCheckHook  # noqa: E402

# ParameterCheckHook checks every parameter block before any node runs, naming the YAML
# file of a bad key; then TrackingServerCheckHook stops a run whose MLflow server does not
# answer (both are `tryfirst`, and pluggy calls the last registered first). kedro-mlflow
# (an installed plugin) opens one run per `kedro run`; ChildRunHook adds a nested run per
# training. See docs/architecture.md, "Tracking".
# RunParamsHook keeps the run's --params and --env for the grid runner's cell processes.
HOOKS = (TrackingServerCheckHook(), ParameterCheckHook(), ChildRunHook(), RunParamsHook())
# A cell process of the grid runner (transfer_study.grid) nests its runs under the grid's
# run, which the driver's kedro-mlflow opened and closes: kedro-mlflow stays out of it.
_IN_A_GRID_CELL = bool(os.environ.get(GRID_PARENT_ENV))
DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow", "kedro-mlflow") if _IN_A_GRID_CELL else ()
