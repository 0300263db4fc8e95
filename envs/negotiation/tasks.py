"""Negotiation's tasks: seeded item pools and their splits (see the env card in :mod:`.env`).

Pools are built in memory, deterministically (Python's string-seeded ``random.Random``), so nothing is cached.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from functools import cache
from typing import Any

from agentgym.tasks import Task, choose_split

#: Bump when pools, rules or the scripted strategy change (part of every task definition).
SUITE_VERSION = 1
AGENTS = ("player_0", "player_1")
ITEM_NAMES = ("book", "hat", "ball", "apple", "pen", "mug", "coin", "lamp")
#: Every agent's whole pool is worth this much.
TOTAL_VALUE = 10
#: Offers allowed in one game (both agents together).
MAX_OFFERS = 10
#: Most items of one type in a pool (a pool has three types, 1 to MAX_COUNT of each).
MAX_COUNT = 4
#: split -> (first seed, number of pools); ranges are disjoint.
SPLITS: dict[str, tuple[int, int]] = {"train": (0, 1000), "valid": (100_000, 100), "test": (200_000, 100)}


# --------------------------------------------------------------------------- pools
def _valuations(counts: Sequence[int]) -> list[tuple[int, ...]]:
    """Every non-negative integer valuation of the pool that sums to TOTAL_VALUE."""
    return [
        values
        for values in itertools.product(*(range(TOTAL_VALUE // c + 1) for c in counts))
        if sum(c * v for c, v in zip(counts, values)) == TOTAL_VALUE
    ]


def make_pool(seed: int) -> dict[str, Any]:
    """The pool of one seed: item names, counts and both agents' valuations (a task definition)."""
    rng = random.Random(f"agentgym-negotiation-{SUITE_VERSION}-{seed}")
    while True:
        items = rng.sample(ITEM_NAMES, 3)
        counts = [rng.randint(1, MAX_COUNT) for _ in items]
        options = _valuations(counts)
        if len(options) < 2:
            continue
        first, second = rng.choice(options), rng.choice(options)
        everything_wanted = all(a or b for a, b in zip(first, second))
        something_shared = any(a and b for a, b in zip(first, second))
        if first != second and everything_wanted and something_shared:
            return {
                "suite_version": SUITE_VERSION,
                "items": items,
                "counts": counts,
                "values": {AGENTS[0]: list(first), AGENTS[1]: list(second)},
                "max_offers": MAX_OFFERS,
            }


@cache
def split_tasks(split: str) -> tuple[Task, ...]:
    first, size = choose_split(SPLITS, split)
    return tuple(Task(f"pool/{seed}", make_pool(seed)) for seed in range(first, first + size))
