"""Stop in seconds, with what to do, when the MLflow tracking server does not answer.

Left alone, MLflow retries a request to a dead server for about four minutes, then
kedro-mlflow fails with a long ``MlflowException``. ``TrackingServerCheckHook`` runs
before kedro-mlflow's hook first contacts the server: it bounds MLflow's retries for the
whole run and, for an ``http(s)`` tracking URI, asks the server's ``/health`` with a
short timeout. A server that does not answer stops the run with a ``TrackingServerError``
(a user error: one message, no traceback) naming the URI and the two ways out.
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from urllib.parse import urlsplit

import mlflow
import requests
from kedro.config import AbstractConfigLoader, MissingConfigException
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from mlflow.environment_variables import (
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
    MLFLOW_HTTP_REQUEST_MAX_RETRIES,
    MLFLOW_HTTP_REQUEST_TIMEOUT,
    MLFLOW_TRACKING_URI,
)

from transfer_study.errors import UserError

logger = logging.getLogger(__name__)

HEALTH_TIMEOUT_S = 5.0
# MLflow's defaults (7 retries, backoff factor 2, 120 s per try) wait ~4 minutes on a
# dead server: they suit a rate-limited hosted service, not a run whose server died.
# These give up within a minute: 3 retries 0, 2 and 4 s apart (plus MLflow's ≤ 1 s
# jitter each), every try ≤ 10 s against a server that hangs. Set only where unset.
RETRY_DEFAULTS = {
    MLFLOW_HTTP_REQUEST_MAX_RETRIES.name: "3",
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.name: "1",
    MLFLOW_HTTP_REQUEST_TIMEOUT.name: "10",
}
# kedro-mlflow's own patterns for mlflow.yml: it adds them in its hook, after this one.
MLFLOW_CONFIG_PATTERNS = ["mlflow*", "mlflow*/**", "**/mlflow*"]
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class TrackingServerError(UserError, ConnectionError):
    """The MLflow tracking server does not answer; the message says what to do."""


def bound_http_retries(environ: MutableMapping[str, str]) -> None:
    """Sets ``RETRY_DEFAULTS`` in ``environ`` where the user has not set them."""
    for name, value in RETRY_DEFAULTS.items():
        environ.setdefault(name, value)


def configured_tracking_uri(loader: AbstractConfigLoader) -> str | None:
    """The tracking URI kedro-mlflow will use: mlflow.yml's ``server.mlflow_tracking_uri``,
    else ``MLFLOW_TRACKING_URI``."""
    patterns = getattr(loader, "config_patterns", None)
    if isinstance(patterns, MutableMapping):
        patterns.setdefault("mlflow", MLFLOW_CONFIG_PATTERNS)
    try:
        server = (loader["mlflow"] or {}).get("server") or {}
    except MissingConfigException:
        server = {}
    return server.get("mlflow_tracking_uri") or MLFLOW_TRACKING_URI.get()


def is_http(uri: str) -> bool:
    """Whether ``uri`` names a tracking server (rather than a database or folder)."""
    return urlsplit(uri).scheme in ("http", "https")


def unanswered(uri: str, timeout: float = HEALTH_TIMEOUT_S) -> str | None:
    """Why the server at ``uri`` did not answer, or ``None`` if it did.

    Any HTTP answer counts, an error status included: the question is whether something
    listens, and MLflow reports a wrong server or missing credentials itself.

    Args:
        uri: The ``http(s)`` tracking URI.
        timeout: Seconds to wait for the connection and for the answer.

    Returns:
        ``None``, or a few words: nothing listens, or no answer within ``timeout``.
    """
    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=timeout)
    except requests.exceptions.SSLError:
        return None  # it answered; MLflow's own TLS settings decide what comes next
    except requests.exceptions.Timeout:
        return f"no answer within {timeout:g} s"
    except requests.exceptions.ConnectionError:
        return "nothing accepts connections there"
    return None


def unreachable_message(uri: str, reason: str, *, from_environment: bool) -> str:
    """What is wrong, where the URI comes from, and the two ways out."""
    parts = urlsplit(uri)
    source = "MLFLOW_TRACKING_URI" if from_environment else "server.mlflow_tracking_uri"
    if parts.hostname in _LOCAL_HOSTS and parts.port:
        start = (
            f"start it (`mlflow server --host {parts.hostname} --port {parts.port} "
            "--backend-store-uri sqlite:///mlflow.db` in another terminal)"
        )
    else:
        start = "start it, or check the address"
    fallback = (
        "unset MLFLOW_TRACKING_URI"
        if from_environment
        else "set server.mlflow_tracking_uri back to sqlite:///mlflow.db in conf/local/mlflow.yml"
    )
    return (
        f"The MLflow tracking server {uri} ({source}) does not answer: {reason}; nothing "
        f"has run. Either {start}, or {fallback} to record the runs in the project's "
        "mlflow.db."
    )


class TrackingServerCheckHook:
    """Bounds MLflow's retries and stops a run whose tracking server does not answer."""

    @hook_impl(tryfirst=True)  # before kedro-mlflow's hook first contacts the server
    def after_context_created(self, context: KedroContext) -> None:
        """Raises ``TrackingServerError`` if an ``http(s)`` tracking URI does not answer."""
        bound_http_retries(os.environ)
        uri = configured_tracking_uri(context.config_loader)
        # An orchestrator's active run decides the server instead (kedro-mlflow follows it).
        if not uri or not is_http(uri) or mlflow.active_run():
            return
        reason = unanswered(uri)
        if reason:
            from_environment = os.environ.get(MLFLOW_TRACKING_URI.name) == uri
            raise TrackingServerError(
                unreachable_message(uri, reason, from_environment=from_environment)
            )
        logger.info("The MLflow tracking server %s answers.", uri)
