"""``kedro run`` that reports a user error as one message instead of a traceback.

Kedro lets a project's ``cli.py`` override its commands. ``run`` here is Kedro's own
command (the same options, the same session) with one addition: an exception caused by
the data, parameters or setup (``transfer_study.errors.UserError``, also when Kedro has
wrapped it) is shown as its message and exits 1. Every failure's traceback goes to the
log files that ``conf/logging.yml`` gives this module's logger (``info.log``), and any
other exception is a bug that keeps its traceback on the console too.
"""

from __future__ import annotations

import json
import logging
import os
from typing import IO, Any

import click
from kedro.framework.cli.project import run as kedro_run

from transfer_study.errors import UserError, find_user_error, user_error_report
from transfer_study.grid.tasks import RUNTIME_PARAMS_ENV

logger = logging.getLogger(__name__)


class UserErrorExit(click.ClickException):
    """Ends the command with a user error's report on stderr and exit code 1."""

    def __init__(self, error: UserError, log_files: list[str]) -> None:
        super().__init__(str(error))
        self.report = user_error_report(error, log_files)

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(self.report, file=file, err=True)


@click.group(name="transfer_study")
def cli() -> None:
    """The project's commands: Kedro's, with a ``run`` that reports user errors readably."""


@cli.command(name="run", params=kedro_run.params, help=kedro_run.help)
@click.pass_context
def run(ctx: click.Context, **options: Any) -> Any:
    """Kedro's ``run``; a user error ends it with its message and no traceback.

    A cell process of the grid runner gets the driver's ``--params`` as JSON in
    ``TRANSFER_STUDY_RUNTIME_PARAMS`` (a value with commas cannot travel in ``--params``).
    """
    inherited = os.environ.get(RUNTIME_PARAMS_ENV)
    if inherited:
        options["params"] = _merged(json.loads(inherited), options.get("params") or {})
    try:
        return ctx.invoke(kedro_run.callback, **options)
    except Exception as error:
        logger.error("The run stopped: %s", error, exc_info=error)
        user_error = find_user_error(error)
        if user_error is None:
            raise
        raise UserErrorExit(user_error, log_files(logger)) from error


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in, key by key at every level."""
    merged = dict(base)
    for key, value in override.items():
        both_dicts = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merged(merged[key], value) if both_dicts else value
    return merged


def log_files(source: logging.Logger) -> list[str]:
    """The files that ``source``'s records are written to, relative to the working
    directory when inside it."""
    files: list[str] = []
    current: logging.Logger | None = source
    while current is not None:
        files += [h.baseFilename for h in current.handlers if isinstance(h, logging.FileHandler)]
        current = current.parent if current.propagate else None
    return [_shown(path) for path in dict.fromkeys(files)]


def _shown(path: str) -> str:
    relative = os.path.relpath(path)
    return path if relative.startswith(os.pardir) else relative
