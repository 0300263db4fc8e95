"""ScienceWorld's gold action sequences: following them, and how long they are.

The engine plans a gold sequence per task variation (``load(..., generateGoldPath=True)``);
:class:`GoldCache` keeps it in memory and on disk (``$AGENTGYM_CACHE/scienceworld/``, keyed by the engine
version), and the env offers its next action (:func:`next_gold_action`) as ``info["expert_action"]``. Some sequences are longer
than the default turn limit (``max_turns=100``): :data:`GOLD_LENGTHS` gives their lengths per task type
and split, so users can set ``max_turns`` for the expert, and the env warns
(:class:`GoldExceedsMaxTurns`) when an episode's sequence is longer than its limit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from agentgym.cache import cache_root, cached_folder
from agentgym.tasks import Task

#: Bump when the gold-sequence cache format changes.
GOLD_CACHE_VERSION = 1

#: Task type -> split -> (shortest, longest gold sequence in actions, variations measured), measured with
#: scienceworld 1.2.3 and no simplifications. Splits of at most 10 variations are measured whole; larger
#: ones at evenly spaced variations, first and last included (5 per split; about 20 for the inclined-plane
#: and unknown-substance types, whose lengths vary most; 3 for the genetics types, whose plans take ~15 s),
#: so a larger split may hold longer sequences than its maximum here. The expert's episode may end a few
#: actions before its sequence does (the task completes first). Print it with
#: ``print(gold_length_table())``.
GOLD_LENGTHS: dict[str, dict[str, tuple[int, int, int]]] = {
    "boil": {"train": (38, 81, 5), "valid": (33, 182, 7), "test": (70, 180, 9)},
    "melt": {"train": (23, 53, 5), "valid": (21, 126, 7), "test": (60, 150, 9)},
    "freeze": {"train": (26, 49, 5), "valid": (40, 143, 7), "test": (73, 143, 9)},
    "change-the-state-of-matter-of": {"train": (23, 39, 5), "valid": (21, 126, 7), "test": (60, 132, 9)},
    "use-thermometer": {"train": (16, 24, 5), "valid": (14, 24, 5), "test": (14, 22, 5)},
    "measure-melting-point-known-substance": {"train": (21, 29, 5), "valid": (35, 74, 5), "test": (27, 39, 5)},
    "measure-melting-point-unknown-substance": {"train": (18, 96, 23), "valid": (16, 96, 23), "test": (14, 96, 23)},
    "power-component": {"train": (9, 15, 10), "valid": (13, 15, 5), "test": (9, 15, 5)},
    "power-component-renewable-vs-nonrenewable-energy": {
        "train": (11, 30, 10),
        "valid": (15, 28, 5),
        "test": (11, 30, 5),
    },
    "test-conductivity": {"train": (19, 25, 5), "valid": (21, 45, 5), "test": (15, 46, 5)},
    "test-conductivity-of-unknown-substances": {"train": (23, 35, 5), "valid": (25, 37, 5), "test": (23, 37, 5)},
    "find-living-thing": {"train": (10, 16, 5), "valid": (8, 16, 5), "test": (8, 16, 5)},
    "find-non-living-thing": {"train": (5, 11, 5), "valid": (3, 9, 5), "test": (3, 9, 5)},
    "find-plant": {"train": (10, 12, 5), "valid": (8, 16, 5), "test": (8, 14, 5)},
    "find-animal": {"train": (10, 16, 5), "valid": (8, 16, 5), "test": (8, 16, 5)},
    "grow-plant": {"train": (61, 66, 5), "valid": (61, 77, 5), "test": (65, 69, 5)},
    "grow-fruit": {"train": (75, 95, 5), "valid": (75, 105, 5), "test": (79, 97, 5)},
    "chemistry-mix": {"train": (16, 56, 5), "valid": (16, 56, 8), "test": (19, 56, 8)},
    "chemistry-mix-paint-secondary-color": {"train": (21, 21, 5), "valid": (11, 21, 9), "test": (7, 25, 9)},
    "chemistry-mix-paint-tertiary-color": {"train": (27, 37, 5), "valid": (18, 30, 9), "test": (13, 37, 9)},
    "lifespan-longest-lived": {"train": (4, 8, 5), "valid": (6, 8, 5), "test": (4, 8, 5)},
    "lifespan-shortest-lived": {"train": (4, 8, 5), "valid": (6, 8, 5), "test": (4, 8, 5)},
    "lifespan-longest-lived-then-shortest-lived": {"train": (5, 9, 5), "valid": (7, 9, 5), "test": (5, 9, 5)},
    "identify-life-stages-1": {"train": (27, 41, 6), "valid": (29, 41, 3), "test": (29, 42, 5)},
    "identify-life-stages-2": {"train": (10, 17, 4), "valid": (16, 17, 2), "test": (12, 17, 4)},
    "inclined-plane-determine-angle": {"train": (55, 189, 23), "valid": (56, 162, 23), "test": (62, 170, 23)},
    "inclined-plane-friction-named-surfaces": {"train": (51, 335, 23), "valid": (48, 738, 23), "test": (54, 760, 23)},
    "inclined-plane-friction-unnamed-surfaces": {"train": (59, 229, 23), "valid": (49, 227, 21), "test": (53, 192, 23)},
    "mendelian-genetics-known-plant": {"train": (145, 150, 3), "valid": (132, 150, 3), "test": (148, 161, 3)},
    "mendelian-genetics-unknown-plant": {"train": (141, 150, 3), "valid": (146, 148, 3), "test": (145, 151, 3)},
}


class GoldExceedsMaxTurns(UserWarning):
    """An episode's gold sequence is longer than the env's ``max_turns``: the expert may be truncated."""


class GoldCache:
    """The gold sequences of one engine version: in memory, then on disk, then planned by the caller.

    Args:
        engine_version: the env's ``engine_version`` (it keys the disk cache: another jar, simplification
            set or JVM flag never reuses a sequence).
    """

    def __init__(self, engine_version: str):
        self.engine_version = engine_version
        self._key = hashlib.sha256(engine_version.encode()).hexdigest()[:16]
        self._known: dict[str, list[str]] = {}

    def folder(self, task: Task) -> Path:
        """Where a task's ``gold.json`` is cached."""
        simplifications = task.definition["simplifications"] or "none"
        name = task.task_id.replace("/", "-")
        return cache_root() / "scienceworld" / f"gold{GOLD_CACHE_VERSION}-{self._key}" / simplifications / name

    def known(self, task: Task) -> list[str] | None:
        """The sequence if it is in memory (no disk access)."""
        return self._known.get(task.task_id)

    def get(self, task: Task, plan: Callable[[Task], list[str]] | None) -> list[str] | None:
        """The task's gold sequence: from memory, the disk cache, or ``plan(task)`` (then cached; None when it
        is not cached and ``plan`` is None)."""
        gold = self._known.get(task.task_id)
        if gold is not None:
            return gold
        folder = self.folder(task)
        try:
            gold = json.loads((folder / "gold.json").read_text())["gold"]
        except (OSError, ValueError, KeyError):
            if plan is None:
                return None
            gold = plan(task)
            record = {"task_id": task.task_id, "engine_version": self.engine_version, "gold": gold}
            cached_folder(folder, lambda scratch: (scratch / "gold.json").write_text(json.dumps(record)), "gold.json")
        self._known[task.task_id] = gold
        return gold


def _normalize(command: str) -> str:
    return " ".join(command.lower().split())


def next_gold_action(gold: Sequence[str], actions: Sequence[tuple[str, bool]]) -> str | None:
    """The gold action after ``actions`` ((command, parsed) pairs), or None once they left the gold path.

    Commands the engine could not parse change nothing, so they do not count as straying.
    """
    position = 0
    for command, parsed in actions:
        if not parsed:
            continue
        if position < len(gold) and _normalize(command) == _normalize(gold[position]):
            position += 1
        else:
            return None
    return gold[position] if position < len(gold) else None


def gold_length_table(max_turns: int = 100) -> str:
    """:data:`GOLD_LENGTHS` as text, one task type a line, ``*`` where a split's longest passes ``max_turns``."""
    lines = [f"{'task type':<50} {'train':>10} {'valid':>10} {'test':>10}   (* longer than {max_turns} turns)"]
    for task_type, splits in GOLD_LENGTHS.items():
        cells = []
        for split in ("train", "valid", "test"):
            low, high, _ = splits[split]
            cells.append(f"{low}-{high}{'*' if high > max_turns else ' '}")
        lines.append(f"{task_type:<50} " + " ".join(f"{cell:>10}" for cell in cells))
    return "\n".join(lines)
