"""Trajectories: what one episode was, turn by turn, serializable to JSONL and back without change.

Per turn a :class:`Turn` records the observation the agent saw, the action text sent to the env, the
agent's raw reply it was extracted from (``reply``; :mod:`agentgym.actions` is the parser), the env reward,
the hook rewards (``info["turn_rewards"]``), the step's ``info`` and, for LLM agents, the exact prompt and
response token ids and log-probs as generated — never re-tokenized from text.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from agentgym.error import TaskFileError


@dataclasses.dataclass(frozen=True)
class Decision:
    """An agent's answer for one turn: the action text and, for LLM agents, its tokens as generated."""

    text: str
    prompt_token_ids: list[int] | None = None
    response_token_ids: list[int] | None = None
    response_logprobs: list[float] | None = None
    #: What the agent reports about this decision (an LLM agent: raw reply, parse rule, near-miss mapping,
    #: truncation flags); recorded as ``Turn.agent_info``. JSON types only.
    info: dict[str, Any] | None = None
    #: The raw reply ``text`` was extracted from (None: the agent's output is the action itself); the
    #: rollout records it as ``Turn.reply`` (falling back to ``info["reply"]``).
    reply: str | None = None


@dataclasses.dataclass
class Turn:
    """One step of an episode."""

    observation: str
    action: str
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]
    turn_rewards: dict[str, float] = dataclasses.field(default_factory=dict)
    prompt_token_ids: list[int] | None = None
    response_token_ids: list[int] | None = None
    response_logprobs: list[float] | None = None
    agent_info: dict[str, Any] | None = None
    #: The agent's raw reply (an LLM's whole output), from which ``action`` was extracted; None when the
    #: agent's output was the action itself (and in files written before the field existed).
    reply: str | None = None

    @property
    def agent_text(self) -> str:
        """What the agent wrote this turn: the raw ``reply`` when recorded, else the ``action``. Reward hooks
        read it (RLVMR's tags and PRS's format live in the reply, not in the extracted command)."""
        return self.reply if self.reply is not None else self.action


@dataclasses.dataclass
class Trajectory:
    """One episode. ``group_id`` links the N rollouts of one (task, seed) that GRPO-style training compares."""

    episode_id: str
    env_id: str
    task_id: str
    seed: int | None
    agent: str
    initial_observation: str
    initial_info: dict[str, Any]
    turns: list[Turn] = dataclasses.field(default_factory=list)
    group_id: str | None = None
    #: Total prompt+response tokens allowed for the rollout (None: unlimited) and whether it ran out.
    token_budget: int | None = None
    token_budget_exceeded: bool = False

    @property
    def total_reward(self) -> float:
        return sum(turn.reward for turn in self.turns)

    @property
    def final_info(self) -> dict[str, Any]:
        return self.turns[-1].info if self.turns else self.initial_info

    @property
    def won(self) -> bool:
        return bool(self.final_info.get("won"))

    @property
    def score(self) -> float:
        return float(self.final_info.get("score") or 0.0)

    @property
    def terminated(self) -> bool:
        return bool(self.turns) and self.turns[-1].terminated

    @property
    def truncated(self) -> bool:
        return bool(self.turns) and self.turns[-1].truncated

    @property
    def tokens_used(self) -> int:
        return sum(len(turn.prompt_token_ids or ()) + len(turn.response_token_ids or ()) for turn in self.turns)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Trajectory:
        fields = dict(data)
        fields["turns"] = [Turn(**turn) for turn in fields.get("turns", [])]
        return cls(**fields)


def jsonable(value: Any) -> Any:
    """A copy of ``value`` made of JSON types only (numpy scalars and arrays, tuples and sets converted).

    Applied when a turn is recorded, so that a trajectory equals itself after a JSONL round trip.
    Non-finite floats become strings, since JSON has no NaN.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [jsonable(item) for item in items]
    if hasattr(value, "tolist"):  # numpy scalars and arrays, torch tensors
        return jsonable(value.tolist())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    return repr(value)


def save_jsonl(trajectories: Iterable[Trajectory], path: str | os.PathLike, *, append: bool = False) -> None:
    """Write one trajectory per line."""
    with open(path, "a" if append else "w", encoding="utf-8") as handle:
        for trajectory in trajectories:
            handle.write(json.dumps(trajectory.to_dict(), ensure_ascii=False) + "\n")


def iter_jsonl(path: str | os.PathLike) -> Iterator[Trajectory]:
    """Read trajectories back; a malformed line raises :class:`TaskFileError` naming the file and line."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield Trajectory.from_dict(json.loads(line))
            except (ValueError, TypeError) as exc:
                raise TaskFileError(f"{Path(path)}: line {number} is not a trajectory: {exc}") from exc


def load_jsonl(path: str | os.PathLike) -> list[Trajectory]:
    return list(iter_jsonl(path))
