"""The text space of agentgym observations and actions, and how Gymnasium's vector tools carry it.

Gymnasium's :class:`~gymnasium.spaces.Text` admits only the characters of its charset (alphanumeric by
default) and flattens a string to the charset indexes of its characters, so a newline in an observation
broke ``gymnasium.spaces.utils.flatten`` and, through it, ``gym.make_vec(..., vectorization_mode="async")``
(``KeyError: '\\n'``). Agent text is arbitrary Unicode, so :class:`TextSpace` registers its own handlers
with Gymnasium's dispatch functions:

* ``flatten`` gives the Unicode code points as ``int32``, padded to ``max_length`` with :data:`TEXT_PAD`;
  ``unflatten`` reverses it exactly (unpaired surrogates included) and ``flatten_space`` is the matching
  ``Box``;
* ``read_from_shared_memory`` (what ``AsyncVectorEnv(shared_memory=True)``, the default, reads
  observations through) gives a live :class:`SharedTexts` view of the buffer the workers write into.
  Gymnasium's own Text reader decodes the buffer once, when the vector env is built, so every later
  observation would read as that first (empty) text.

So async vectorization works by default, shared memory on or off; ``AsyncVectorEnv(copy=False)`` hands
out the live view itself (index it, or ``tuple(view)``, before the next ``step``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from gymnasium.spaces import Box, Text
from gymnasium.spaces.utils import flatten, flatten_space, unflatten
from gymnasium.vector.utils import read_from_shared_memory

#: Padding code of a flattened text: one past the last Unicode code point.
TEXT_PAD = 0x110000


class TextSpace(Text):
    """A text space that contains any Unicode ``str`` of at most ``max_length`` characters.

    Gymnasium's :class:`~gymnasium.spaces.Text` only admits characters of its charset; agent text is
    arbitrary Unicode, so membership here checks type and length only. ``sample()`` still draws from
    the (alphanumeric) charset, which is what random testing needs. Flattening and shared memory work on
    code points (see the module docstring), so Gymnasium's vector envs carry any text.
    """

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"TextSpace(max_length={self.max_length})"


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.int32)


def _text(codes: np.ndarray) -> str:
    codes = np.asarray(codes, dtype=np.int32)
    end = np.flatnonzero(codes == TEXT_PAD)
    codes = codes[: end[0]] if end.size else codes
    return codes.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")


@flatten.register(TextSpace)
def _flatten_text_space(space: TextSpace, x: str) -> np.ndarray:
    codes = _code_points(x)
    if codes.size > space.max_length:
        raise ValueError(f"a text of {codes.size} characters does not fit {space!r}")
    flat = np.full(space.max_length, TEXT_PAD, dtype=np.int32)
    flat[: codes.size] = codes
    return flat


@unflatten.register(TextSpace)
def _unflatten_text_space(space: TextSpace, x: np.ndarray) -> str:
    return _text(x)


@flatten_space.register(TextSpace)
def _flatten_space_text_space(space: TextSpace) -> Box:
    return Box(low=0, high=TEXT_PAD, shape=(space.max_length,), dtype=np.int32)


class SharedTexts(Sequence):
    """The texts of ``n`` sub-envs, read from the shared buffer each time they are indexed.

    ``copy.deepcopy`` (what ``AsyncVectorEnv`` returns by default) and ``tuple()`` give a plain tuple of
    ``str``, the same as a :class:`~gymnasium.vector.SyncVectorEnv` returns.
    """

    def __init__(self, buffer: Any, n: int, max_length: int):
        self._codes = np.frombuffer(buffer.get_obj(), dtype=np.int32).reshape(n, max_length)

    def __len__(self) -> int:
        return self._codes.shape[0]

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return tuple(_text(row) for row in self._codes[index])
        return _text(self._codes[index])

    def __iter__(self) -> Iterator[str]:
        return (_text(row) for row in self._codes)

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, (tuple, list, SharedTexts)) else other)

    __hash__ = None  # type: ignore[assignment]

    def __deepcopy__(self, memo: dict) -> tuple[str, ...]:
        return tuple(self)

    def __repr__(self) -> str:
        return f"SharedTexts({tuple(self)!r})"


@read_from_shared_memory.register(TextSpace)
def _read_text_space(space: TextSpace, shared_memory: Any, n: int = 1) -> SharedTexts:
    return SharedTexts(shared_memory, n, space.max_length)
