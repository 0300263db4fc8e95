"""Negotiation's move grammar: reading a move text, spelling an offer, describing a share."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Any

from agentgym.envs.negotiation.tasks import MAX_COUNT

#: The fixed move list ``info["action_mask"]`` is aligned with (PettingZoo views): every offer keeping
#: ``(k1, k2, k3)`` of the pool's three item types, 0 to MAX_COUNT each in ``itertools.product`` order
#: (125 offers), then ``accept``, then ``walk away``; :meth:`~agentgym.envs.negotiation.engine.NegotiationGame.move_list`
#: spells them for a pool.
OFFER_KEEPS: tuple[tuple[int, ...], ...] = tuple(itertools.product(range(MAX_COUNT + 1), repeat=3))


def offer_text(items: Sequence[str], keeps: Sequence[int]) -> str:
    """The canonical form of an offer in which the speaker keeps ``keeps``."""
    return "offer " + " ".join(f"{item}={n}" for item, n in zip(items, keeps))


def describe(items: Sequence[str], counts: Sequence[int]) -> str:
    parts = [f"{n} {item}{'' if n == 1 else 's'}" for item, n in zip(items, counts) if n]
    return ", ".join(parts) if parts else "nothing"


def _singular(word: str, items: Sequence[str]) -> str:
    if word in items:
        return word
    for suffix in ("es", "s"):
        if word.endswith(suffix) and word[: -len(suffix)] in items:
            return word[: -len(suffix)]
    return word


_PAIR = re.compile(r"^([a-z]+)\s*[=:]\s*(\S+)$|^(\S+)\s+([a-z]+)$")


def parse_move(text: str, items: Sequence[str], counts: Sequence[int]) -> tuple[tuple[str, Any, str], str | None]:
    """``((kind, keeps|None, message), problem)`` for a move text; ``problem`` is None for a well-formed move."""
    body, _, message = text.partition("|")
    body, message = " ".join(body.lower().split()), message.strip()
    if body in ("accept", "accept offer", "deal"):
        return ("accept", None, message), None
    if body in ("walk away", "walkaway", "walk", "quit"):
        return ("walk", None, message), None
    allowed = f"expected 'offer {' '.join(f'{i}=<n>' for i in items)}', 'accept' or 'walk away'"
    head, _, rest = body.partition(" ")
    if head not in ("offer", "propose", "counter", "counteroffer"):
        return ("invalid", None, message), f"unknown move {text.strip()[:60]!r}; {allowed}"
    keeps = [0] * len(items)
    seen: set[str] = set()
    chunks = [chunk.strip() for chunk in re.split(r"[,;]|\s+(?=[a-z]+\s*[=:])", rest) if chunk.strip()]
    if not chunks:
        return ("invalid", None, message), f"the offer names no items; {allowed}"
    for chunk in chunks:
        match = _PAIR.match(chunk)
        if not match:
            return (
                "invalid",
                None,
                message,
            ), f"cannot read {chunk!r} in the offer; write item=count, e.g. {items[0]}=1"
        name, count = (match.group(1), match.group(2)) if match.group(1) else (match.group(4), match.group(3))
        name = _singular(name, items)
        if name not in items:
            return ("invalid", None, message), f"there is no {name!r} in the pool (items: {', '.join(items)})"
        if name in seen:
            return ("invalid", None, message), f"{name} is named twice in the offer"
        seen.add(name)
        if not count.isdigit():
            return ("invalid", None, message), f"{name}={count} is not a whole number of items"
        index = items.index(name)
        if int(count) > counts[index]:
            return ("invalid", None, message), (
                f"{name}={count} asks for more than the pool holds ({counts[index]} {name}"
                f"{'' if counts[index] == 1 else 's'})"
            )
        keeps[index] = int(count)
    return ("offer", keeps, message), None


def value(values: Sequence[int], share: Sequence[int]) -> int:
    return sum(v * n for v, n in zip(values, share))
