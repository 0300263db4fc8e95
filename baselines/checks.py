"""Small pieces the trainer's config validation shares (estimators, hooks, config keys)."""

from __future__ import annotations

import difflib
import typing
from collections.abc import Callable, Iterable
from typing import Any


def did_you_mean(word: Any, options: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the option closest to ``word``, or ``""`` when none is close."""
    close = difflib.get_close_matches(str(word), list(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def annotation(fn: Callable[..., Any], name: str) -> Any:
    """The resolved type annotation of parameter ``name`` of ``fn``; None when it has none or it does not
    resolve (then no value check is possible)."""
    try:
        return typing.get_type_hints(fn).get(name)
    except Exception:  # an annotation naming something not importable here
        return None


def literal_values(hint: Any) -> tuple | None:
    """The legal values of a ``Literal[...]`` annotation; None for any other annotation."""
    return typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else None
