"""Readable parameter errors: the key path, the bad value, what is allowed, and where.

Pydantic reports a location inside the model (``("lr",)``); users think in the dotted
keys of their YAML (``finetune.lr``) and need the file to open. ``problems_from`` turns a
``ValidationError`` into ``Problem``s with the full key path; ``parameter_message`` lists
them, each with the file a ``locate`` function names.
"""

from __future__ import annotations

import difflib
import json
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from transfer_study.errors import UserError

# A key path: block, keys and list positions, e.g. ("demo_data", "view", "scale", 1).
KeyPath = tuple[str | int, ...]
Locate = Callable[[KeyPath], str]
_NO_VALUE = object()
_MAX_VALUE_LENGTH = 120
_MAX_CLOSE_MATCHES = 3


class ParameterError(UserError, ValueError):
    """The run's parameters are invalid, or cannot be used as given (e.g. a value that
    shapes the pipeline changed with ``--params``); the message lists every problem."""


@dataclass(frozen=True)
class Problem:
    """One invalid, unknown or missing parameter.

    Attributes:
        path: Where: the block, then keys and list positions.
        message: What is wrong or allowed, e.g. ``Input should be less than 1``.
        value: The bad value (``_NO_VALUE`` for a missing key).
        hint: What the key means (its field description) or what to do.
    """

    path: KeyPath
    message: str
    value: Any = field(default=_NO_VALUE)
    hint: str = ""


def dotted(path: KeyPath) -> str:
    """``("demo_data", "view", "scale", 1)`` → ``demo_data.view.scale[1]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def problems_from(error: ValidationError, model: type[BaseModel], block: str) -> list[Problem]:
    """The problems of a ``ValidationError`` raised by ``model`` for parameter ``block``.

    Args:
        error: The validation error.
        model: The model that raised it (names the allowed keys of an unknown one).
        block: The top-level parameter key the model validated.

    Returns:
        One ``Problem`` per error, with the full key path.
    """
    problems = []
    for detail in error.errors(include_url=False):
        location = tuple(detail["loc"])
        path = (block, *location)
        if detail["type"] == "extra_forbidden":
            message, hint = _unknown_key(model, location), ""
        elif detail["type"] == "missing":
            problems.append(Problem(path, "missing", hint=_description(model, location)))
            continue
        else:
            # Pydantic prefixes a validator's own message with "Value error, ".
            message = detail["msg"].removeprefix("Value error, ")
            hint = _description(model, location)
        problems.append(Problem(path, message, detail.get("input"), hint))
    return problems


def parameter_message(problems: Sequence[Problem], locate: Locate | None = None) -> str:
    """One message for every problem: key path, value, what is allowed, and where.

    Args:
        problems: The problems, in the order to list them.
        locate: Names where a key path is defined (a YAML file, or ``--params``).

    Returns:
        The message.
    """
    lines = [f"{len(problems)} invalid parameter(s); nothing has run:"]
    for problem in problems:
        where = f" ({locate(problem.path)})" if locate else ""
        value = "" if problem.value is _NO_VALUE else f" = {_show(problem.value)}"
        hint = f" [{problem.hint}]" if problem.hint else ""
        lines.append(f"  - {dotted(problem.path)}{value}{where}: {problem.message}{hint}")
    return "\n".join(lines)


def parse_settings(model: type[BaseModel], raw: Any, *, block: str) -> Any:
    """Validates one parameter block, raising a readable ``ParameterError``.

    Args:
        model: The block's model.
        raw: The block as the configuration gives it.
        block: Its top-level key, named in the message.

    Returns:
        The model instance.

    Raises:
        ParameterError: Listing every problem with its key path.
    """
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise ParameterError(parameter_message(problems_from(error, model, block))) from None


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, default=str)
    except ValueError:  # a circular structure
        text = repr(value)
    return text if len(text) <= _MAX_VALUE_LENGTH else text[: _MAX_VALUE_LENGTH - 1] + "…"


def _unknown_key(model: type[BaseModel], location: KeyPath) -> str:
    owner = _model_at(model, location[:-1])
    if owner is None:
        return "unknown key"
    allowed = sorted(owner.model_fields)
    close = difflib.get_close_matches(str(location[-1]), allowed, n=_MAX_CLOSE_MATCHES)
    suggestion = f"did you mean {' or '.join(close)}? " if close else ""
    return f"unknown key; {suggestion}allowed: {', '.join(allowed)}"


def _description(model: type[BaseModel], location: KeyPath) -> str:
    keys = list(location)
    while keys and isinstance(keys[-1], int):  # a list position: describe the list
        keys.pop()
    owner = _model_at(model, keys[:-1]) if keys else None
    info = owner.model_fields.get(str(keys[-1])) if owner else None
    return (info.description or "") if info else ""


def _model_at(model: type[BaseModel], location: Sequence[str | int]) -> type[BaseModel] | None:
    """The model that holds the keys found at ``location``, or ``None``."""
    current: Any = model
    skip = 0  # list positions and mapping keys to step over before the next field name
    for part in location:
        if skip:
            skip -= 1
        elif _is_model(current) and part in current.model_fields:
            current, skip = _unwrap(current.model_fields[part].annotation)
        else:
            return None
    return current if _is_model(current) and not skip else None


def _unwrap(annotation: Any) -> tuple[Any, int]:
    """The model in ``Model | None``, ``list[Model]``, ``dict[str, Model]``…, and how many
    positions or keys lie between the field and it."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        unwrapped = [_unwrap(argument) for argument in get_args(annotation)]
        return next((found for found in unwrapped if _is_model(found[0])), (annotation, 0))
    if origin in (list, tuple, dict) or origin is Mapping:
        inner, depth = _unwrap(get_args(annotation)[-1])
        return (inner, depth + 1) if _is_model(inner) else (annotation, 0)
    return annotation, 0


def _is_model(candidate: Any) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, BaseModel)
