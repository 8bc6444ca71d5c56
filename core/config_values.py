"""One TOML value made into the type its config field declares, or refused.

TOML has fewer types than the config's dataclasses: lists become tuples, integers are
accepted where a float is wanted (never a bool), ``Literal`` fields take one of their
values, and an optional field is switched off with ``0`` or ``""`` (TOML has no null).
A refused value raises :class:`ValueProblem`; :mod:`core.config` adds the file to it.
"""

from __future__ import annotations

import math
import types
from typing import Any, Literal, Union, get_args, get_origin


class ValueProblem(ValueError):
    """A value that does not fit its field: the full key, what was expected, what was found."""

    def __init__(self, key: str, expected: str, got: object) -> None:
        super().__init__(f"{key}: expected {expected}, got {got!r}")
        self.key = key
        self.expected = expected
        self.got = got


def coerce_value(raw: Any, hint: Any, key: str) -> Any:
    """``raw`` as the type ``hint`` names (``key`` is for the message); raises
    :class:`ValueProblem`."""
    origin = get_origin(hint)
    args = get_args(hint)
    if origin in (Union, types.UnionType):
        if raw is None or raw == "" or (not isinstance(raw, bool) and raw == 0):
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce_value(raw, inner[0], key)
    if origin is Literal:
        if raw not in args:
            raise ValueProblem(key, "one of " + ", ".join(map(repr, args)), raw)
        return raw
    if origin is tuple:
        if not isinstance(raw, list):
            raise ValueProblem(key, f"a list of {args[0].__name__}", raw)
        return tuple(coerce_value(item, args[0], f"{key}[{i}]") for i, item in enumerate(raw))
    if origin is dict:
        if not isinstance(raw, dict):
            raise ValueProblem(key, "a table of strings", raw)
        return {str(k): coerce_value(v, args[1], f"{key}.{k}") for k, v in raw.items()}
    return _scalar(raw, hint, key)


def _scalar(raw: Any, hint: Any, key: str) -> Any:
    if hint is bool:
        if not isinstance(raw, bool):
            raise ValueProblem(key, "true or false", raw)
        return raw
    if hint is int:
        # bool is an int in Python, never in a config file.
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ValueProblem(key, "an integer", raw)
        return raw
    if hint is float:
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            raise ValueProblem(key, "a number", raw)
        return float(raw)
    if hint is str:
        if not isinstance(raw, str):
            raise ValueProblem(key, "a string", raw)
        return raw
    raise ValueProblem(key, f"a value of type {hint}", raw)
