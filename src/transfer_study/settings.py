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

from transfer_study.config_check import ParameterCheckHook  # noqa: E402
from transfer_study.tracking.hooks import ChildRunHook  # noqa: E402
from transfer_study.tracking.server_check import TrackingServerCheckHook  # noqa: E402

# ParameterCheckHook checks every parameter block before any node runs, naming the YAML
# file of a bad key; then TrackingServerCheckHook stops a run whose MLflow server does not
# answer (both are `tryfirst`, and pluggy calls the last registered first). kedro-mlflow
# (an installed plugin) opens one run per `kedro run`; ChildRunHook adds a nested run per
# training. See docs/architecture.md, "Tracking".
HOOKS = (TrackingServerCheckHook(), ParameterCheckHook(), ChildRunHook())
