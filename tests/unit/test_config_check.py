"""The start-of-run check: which file (or --params) defines a key, and the hook itself."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from kedro.config import OmegaConfigLoader

from transfer_study.config.errors import ParameterError
from transfer_study.config_check import ParameterCheckHook, ParameterSources

REPO_CONF = Path(__file__).parents[2] / "conf"


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    """A copy of the project's conf/base with an empty conf/local."""
    shutil.copytree(REPO_CONF / "base", tmp_path / "conf" / "base")
    (tmp_path / "conf" / "local").mkdir()
    return tmp_path / "conf"


def _loader(conf: Path, runtime_params: dict | None = None) -> OmegaConfigLoader:
    return OmegaConfigLoader(
        conf_source=str(conf),
        base_env="base",
        default_run_env="local",
        runtime_params=runtime_params,
        merge_strategy={"parameters": "soft"},
    )


def _write(path: Path, content: dict) -> None:
    path.write_text(yaml.safe_dump(content))


def test_keys_are_found_in_their_file_and_the_run_environment_wins(conf: Path):
    _write(conf / "local" / "parameters.yml", {"split": {"seed": 1}})
    sources = ParameterSources.from_loader(_loader(conf))
    assert sources.describe(("finetune", "lr")) == "conf/base/parameters_training.yml"
    assert sources.describe(("split", "seed")) == "conf/local/parameters.yml"
    assert sources.describe(("split", "val_fraction")) == (
        "conf/base/parameters_data_processing.yml"
    )
    # A missing key is named at the file of its block.
    assert sources.describe(("frozen", "momentum")) == "conf/base/parameters_training.yml"
    assert sources.describe(("nowhere",)) == "in no parameters file"


def test_keys_given_with_params_say_so(conf: Path):
    sources = ParameterSources.from_loader(
        _loader(conf, {"finetune": {"lrr": 0.1}, "split": {"val_fraction": 0.5}})
    )
    assert sources.describe(("finetune", "lrr")) == "from --params"
    # A check of the whole block mixes the file's values and --params.
    assert sources.describe(("split",)) == (
        "conf/base/parameters_data_processing.yml, from --params"
    )


def _context(loader: OmegaConfigLoader) -> SimpleNamespace:
    return SimpleNamespace(config_loader=loader)


def test_the_hook_names_key_value_allowed_and_file(conf: Path):
    _write(conf / "local" / "parameters.yml", {"finetune": {"lrr": 0.001}})
    loader = _loader(conf, {"split": {"val_fraction": 1.5}})
    with pytest.raises(ParameterError) as raised:
        ParameterCheckHook().after_context_created(_context(loader))
    message = str(raised.value)
    assert "  - split.val_fraction = 1.5 (from --params): Input should be less than 1" in message
    assert (
        "  - finetune.lrr = 0.001 (conf/local/parameters.yml): unknown key; did you mean lr?"
        in message
    )


def test_the_hook_accepts_the_shipped_parameters(conf: Path):
    ParameterCheckHook().after_context_created(_context(_loader(conf)))
