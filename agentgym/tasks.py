"""Task suites: named splits of tasks, deterministic selection by seed, and manifest hashes.

A :class:`Task` is an id plus a JSON-able *definition*: everything that determines the task (generator
settings and seed, or the sha256 of a user's game file). The manifest hash of a split is the sha256 of
its sorted task ids and definitions, so two runs with the same hash played the same tasks; the
evaluator stores it with every episode and the leaderboard only compares rows that share it.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Any

import numpy as np

from agentgym.error import InvalidArgumentError, UnknownTaskError


@dataclasses.dataclass(frozen=True)
class Task:
    """One task: a stable id and the definition that determines it."""

    task_id: str
    definition: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Manifest:
    """What identifies a split's task set for comparisons: hash, size and engine version."""

    split: str
    hash: str
    num_tasks: int
    engine_version: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def definition_hash(tasks: Iterable[Task]) -> str:
    """sha256 of the tasks' ids and definitions, independent of their order."""
    canonical = json.dumps(
        sorted([task.task_id, task.definition] for task in tasks), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class TaskSplit:
    """The ordered tasks of one split, with lookup by id and selection by seed."""

    def __init__(self, name: str, tasks: Iterable[Task], engine_version: str):
        self.name = name
        self.tasks: list[Task] = list(tasks)
        self.engine_version = engine_version
        if not self.tasks:
            raise InvalidArgumentError(f"split {name!r} has no tasks")
        self._by_id = {task.task_id: task for task in self.tasks}
        if len(self._by_id) != len(self.tasks):
            raise InvalidArgumentError(f"split {name!r} has duplicate task ids")

    def __len__(self) -> int:
        return len(self.tasks)

    @property
    def task_ids(self) -> list[str]:
        return [task.task_id for task in self.tasks]

    @cached_property
    def manifest(self) -> Manifest:
        return Manifest(self.name, definition_hash(self.tasks), len(self.tasks), self.engine_version)

    def get(self, task_id: str) -> Task:
        try:
            return self._by_id[task_id]
        except (KeyError, TypeError):
            raise UnknownTaskError(task_id, self.name, self._by_id) from None

    def select(self, rng: np.random.Generator) -> Task:
        """The task a seeded generator picks: uniform over the split."""
        return self.tasks[int(rng.integers(len(self.tasks)))]


def choose_split(splits: Mapping[str, Any], split: str) -> Any:
    """``splits[split]`` with an error that lists the splits (and the closest match)."""
    if split in splits:
        return splits[split]
    close = difflib.get_close_matches(str(split), list(splits), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise InvalidArgumentError(f"unknown split {split!r}; expected one of {sorted(splits)}.{hint}")
