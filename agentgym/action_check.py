"""The action check every env runs before its engine: :func:`check_action`, and the limits it applies.

An engine is never handed an action it would truncate or mis-decode: ``None``, non-strings, empty, oversized,
control characters (NUL included), unpaired surrogates, more UTF-8 bytes than the engine's input buffer
and characters outside its character set are answered by the env (``action_valid=False``), never raised.
"""

from __future__ import annotations

import re
from typing import Any

#: Longest action the base class passes to an engine; longer ones are answered as invalid.
DEFAULT_MAX_ACTION_LENGTH = 4096
#: The character sets an engine may declare (:attr:`TextEnv.action_charset`): every character but control
#: characters and surrogates; the same without astral characters (above U+FFFF, emoji among them); ASCII.
ACTION_CHARSETS: tuple[str, ...] = ("unicode", "bmp", "ascii")


#: Control characters (Unicode category Cc) and unpaired surrogates (text that cannot be UTF-8 encoded).
_FORBIDDEN_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
#: The same, with newline, carriage return and tab allowed (multi-line actions such as source code).
_FORBIDDEN_CHARS_MULTILINE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
#: The characters outside each of :data:`ACTION_CHARSETS` (``(?!)`` matches nothing).
_OUTSIDE_CHARSET: dict[str, re.Pattern[str]] = {
    "unicode": re.compile("(?!)"),
    "bmp": re.compile("[\U00010000-\U0010ffff]"),
    "ascii": re.compile("[^\x00-\x7f]"),
}


def check_action(
    action: Any,
    max_length: int,
    multiline: bool = False,
    *,
    max_bytes: int | None = None,
    charset: str = "unicode",
) -> tuple[str | None, str | None]:
    """Return ``(clean action, None)`` for a usable action or ``(None, problem)`` for a bad one.

    Surrounding whitespace is stripped (models often end with a newline). ``problem`` is a sentence an
    agent can act on. ``multiline`` allows newlines and tabs inside the action (families whose actions
    are code set :attr:`TextEnv.multiline_actions`). ``max_bytes`` is the engine's input buffer in UTF-8
    bytes and ``charset`` one of :data:`ACTION_CHARSETS`: an engine given more bytes than its buffer
    holds truncates, possibly mid-character, and one given characters it cannot represent mis-decodes
    them, so both are refused here instead.
    """
    if isinstance(action, (bytes, bytearray)):
        return None, f"expected a text string, got {type(action).__name__}; decode it first"
    if not isinstance(action, str):
        return None, f"expected a text string, got {type(action).__name__}"
    if len(action) > max_length:
        return None, f"the action is {len(action)} characters long; the limit is {max_length}"
    action = action.strip()
    if not action:
        return None, "the action is empty"
    bad = (_FORBIDDEN_CHARS_MULTILINE if multiline else _FORBIDDEN_CHARS).search(action)
    if bad is not None:
        char, index = bad.group(), bad.start()
        if 0xD800 <= ord(char) <= 0xDFFF:
            return None, f"the action contains invalid Unicode (an unpaired surrogate at position {index})"
        return None, (
            f"the action contains the control character U+{ord(char):04X} at position {index}; "
            "send one command per step as plain text"
        )
    outside = _OUTSIDE_CHARSET[charset].search(action)
    if outside is not None:
        what = "plain ASCII text" if charset == "ascii" else "characters up to U+FFFF (no emoji)"
        return None, (
            f"the action contains {outside.group()!r} (U+{ord(outside.group()):04X}) at position {outside.start()}; "
            f"this engine reads {what}"
        )
    if max_bytes is not None:
        size = len(action.encode("utf-8"))
        if size > max_bytes:
            return None, f"the action is {size} bytes long in UTF-8; this engine's input buffer holds {max_bytes}"
    return action, None
