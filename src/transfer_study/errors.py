"""Errors caused by the user's data, parameters or setup, told apart from bugs.

A ``UserError`` says the code did what it should and the input cannot be used; its
message says what is wrong, where, and what to do. ``kedro run`` (``transfer_study.cli``)
shows that message alone and keeps the traceback for the log file. Any other exception
is a bug and keeps its traceback on the console.

``UserError`` is a marker mixed into each error class (``class DataLayoutError(UserError,
ValueError)``), so callers still catch the built-in type they know.
"""

from __future__ import annotations

from collections.abc import Sequence


class UserError(Exception):
    """The run's data, parameters or setup cannot be used; the message says what to do."""


def find_user_error(error: BaseException) -> UserError | None:
    """The user error behind ``error``: itself, or one it was explicitly raised from.

    Kedro's catalog re-raises a dataset's error as ``DatasetError("<name>: …") from
    error``; following ``__cause__`` finds ours underneath. ``__context__`` (an error
    raised while handling another) is not followed: that is a bug in the handler.

    Args:
        error: The exception that stopped the run.

    Returns:
        The first ``UserError`` along the chain of causes, or ``None`` for a bug.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, UserError):
            return current
        seen.add(id(current))
        current = current.__cause__
    return None


def user_error_report(error: UserError, log_files: Sequence[str] = ()) -> str:
    """The block shown for a user error: its message, then where the traceback went.

    Args:
        error: The user error.
        log_files: The files that hold the traceback.

    Returns:
        The text, without a trailing newline.
    """
    where = f": the traceback is in {', '.join(log_files)}" if log_files else ""
    return f"Error: {error}\n(A problem with the data, parameters or setup, not a bug{where}.)"
