"""The current ``kedro run``'s parameters, for the grid runner's task processes.

Kedro hands a runner the pipeline and the catalog but not the run's ``--params``,
``--env`` or ``--conf-source``; the hooks get them (the configuration folder through the
context). ``RunParamsHook`` keeps them for the duration of the run so that every cell
process runs with the same ones.
"""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl

_CURRENT: dict[str, Any] = {}
_CONF_SOURCE: list[str] = []  # the context's, set before the run starts


def current_run_params() -> dict[str, Any]:
    """The ``run_params`` of the ``kedro run`` in progress in this process (or ``{}``)."""
    return dict(_CURRENT)


class RunParamsHook:
    """Remembers the ``run_params`` of the run in progress (``current_run_params``), and
    its configuration folder as ``conf_source``."""

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        _CONF_SOURCE.clear()
        _CONF_SOURCE.append(str(context.config_loader.conf_source))

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        _CURRENT.clear()
        _CURRENT.update(run_params)
        if _CONF_SOURCE:
            _CURRENT["conf_source"] = _CONF_SOURCE[-1]

    @hook_impl
    def after_pipeline_run(self) -> None:
        _forget()

    @hook_impl
    def on_pipeline_error(self) -> None:
        _forget()


def _forget() -> None:
    _CURRENT.clear()
    _CONF_SOURCE.clear()
