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
}
