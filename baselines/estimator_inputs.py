"""The typed inputs every advantage estimator reads: :class:`EstimatorInputs`, built once per step.

The trainer reads the scored batch once into this frozen record (groups, per-turn task rewards, each hook's
raw per-turn rewards, weights and details, anchors, invalid flags, entropies, finals); the registry in
:mod:`agentgym.baselines.advantages` only builds each pure function's arguments from it, so no estimator
reads a string-keyed dict or a trajectory. Reward shaping lives here too (:meth:`EstimatorInputs.shaped_rewards`:
task reward + sum of weight * hook reward over the hooks an estimator does not consume), so every estimator
that shapes does it the same way. Re-exported by :mod:`agentgym.baselines.advantages` (its public import
path).

Example:
    >>> from agentgym.baselines.estimator_inputs import EstimatorInputs
    >>> inputs = EstimatorInputs(
    ...     groups=("g", "g"), task_ids=("t", "t"), env_rewards=((0.0, 1.0), (0.0,)),
    ...     hook_rewards={"h": ((0.5, 0.0), (1.0,))}, hook_weights={"h": 2.0}, hook_details={"h": ((), ())},
    ...     anchors=(("a", "b"), ("a",)), invalid=((False, False), (False,)), entropies=((0.0, 0.0), (0.0,)),
    ...     finals=(True, True))
    >>> inputs.outcomes, inputs.num_turns
    ((1.0, 0.0), (2, 1))
    >>> inputs.shaped_returns().tolist(), inputs.shaped_returns(exclude="h").tolist()
    ([2.0, 2.0], [1.0, 0.0])

Change logs:
    v0: split out of :mod:`agentgym.baselines.advantages` (issue 18: module size), behaviour unchanged.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from agentgym.baselines import estimators as est
from agentgym.error import InvalidArgumentError

__all__ = ["EstimatorInputs"]

Rows = tuple[tuple[float, ...], ...]


def _entropy(turn: Any) -> float:
    """The turn's mean token entropy under the sampling policy, estimated by the mean ``-log p`` of the
    tokens it sampled (recorded at generation; no extra pass); 0 for a turn without log-probs."""
    return -float(np.mean(turn.response_logprobs)) if turn.response_logprobs else 0.0


@dataclasses.dataclass(frozen=True)
class EstimatorInputs:
    """Everything any estimator reads, built once per step from the batch (no string-keyed dicts)."""

    groups: tuple  # group key per trajectory (group_id, else episode_id)
    task_ids: tuple[str, ...]
    env_rewards: Rows  # per trajectory, per turn: the TASK reward (env + info reward, weighted; no hooks)
    hook_rewards: Mapping[str, Rows]  # hook name -> raw per-turn rewards (unweighted)
    hook_weights: Mapping[str, float]  # hook name -> weight from the config
    hook_details: Mapping[str, tuple[tuple[dict, ...], ...]]  # turn.info["turn_reward_details"][name]
    anchors: tuple[tuple[str, ...], ...]  # the anchor state each action was taken in
    invalid: tuple[tuple[bool, ...], ...]  # not info["action_valid"]
    entropies: tuple[tuple[float, ...], ...]  # mean -logp of the turn's sampled tokens (0 when none)
    finals: tuple[bool, ...]  # the last turn ended the episode (terminated or truncated)

    @classmethod
    def from_trajectories(
        cls,
        trajectories: Sequence[Any],
        *,
        env_rewards: Sequence[Sequence[float]],
        hook_weights: Mapping[str, float],
    ) -> EstimatorInputs:
        """Inputs from scored trajectories: ``env_rewards`` are the trainer's per-turn task rewards; hook
        ``name`` (every key of ``hook_weights``) is read from ``turn.turn_rewards[name]`` (a turn without it
        raises: score the batch first) and its details from ``turn.info["turn_reward_details"][name]``
        (``{}`` for hooks without details). Groups, anchors, invalid flags and finals come from
        :func:`agentgym.baselines.estimators.from_trajectories`."""
        base = est.from_trajectories(trajectories)
        if len(env_rewards) != len(trajectories) or any(
            len(row) != len(t.turns) for row, t in zip(env_rewards, trajectories)
        ):
            raise InvalidArgumentError(
                "env_rewards must hold one reward per turn of each trajectory: got "
                f"{[len(r) for r in env_rewards]} for turns {base['num_turns']}"
            )
        hook_rewards, hook_details = {}, {}
        for name in hook_weights:
            rows = []
            for t in trajectories:
                for k, turn in enumerate(t.turns):
                    if name not in turn.turn_rewards:
                        raise InvalidArgumentError(
                            f"trajectory {t.episode_id!r} turn {k} has no turn_rewards[{name!r}] (it has "
                            f"{sorted(turn.turn_rewards)}); score the batch with the hooks first (annotate)"
                        )
                rows.append(tuple(float(turn.turn_rewards[name]) for turn in t.turns))
            hook_rewards[name] = tuple(rows)
            hook_details[name] = tuple(
                tuple(dict((turn.info.get("turn_reward_details") or {}).get(name) or {}) for turn in t.turns)
                for t in trajectories
            )
        return cls(
            groups=tuple(base["groups"]),
            task_ids=tuple(str(t.task_id) for t in trajectories),
            env_rewards=tuple(tuple(float(r) for r in row) for row in env_rewards),
            hook_rewards=types.MappingProxyType(hook_rewards),
            hook_weights=types.MappingProxyType({k: float(w) for k, w in hook_weights.items()}),
            hook_details=types.MappingProxyType(hook_details),
            anchors=tuple(tuple(row) for row in base["anchors"]),
            invalid=tuple(tuple(row) for row in base["invalid"]),
            entropies=tuple(tuple(_entropy(turn) for turn in t.turns) for t in trajectories),
            finals=tuple(base["finals"]),
        )

    @property
    def num_turns(self) -> tuple[int, ...]:
        return tuple(len(row) for row in self.env_rewards)

    @property
    def outcomes(self) -> tuple[float, ...]:
        """The task return of each trajectory: the sum of its ``env_rewards`` (no hooks)."""
        return tuple(float(sum(row)) for row in self.env_rewards)

    def shaped_rewards(self, *, exclude: str | None = None) -> list[np.ndarray]:
        """Per turn, ``task reward + sum of weight * hook reward`` over the hooks other than ``exclude``."""
        out = [np.asarray(row, dtype=np.float64) for row in self.env_rewards]
        for name, weight in self.hook_weights.items():
            if name != exclude:
                hooks = self.hook_rewards[name]
                out = [r + weight * np.asarray(h, dtype=np.float64) for r, h in zip(out, hooks)]
        return out

    def shaped_returns(self, *, exclude: str | None = None) -> np.ndarray:
        """Per trajectory, the sum of :meth:`shaped_rewards`."""
        return np.array([float(r.sum()) for r in self.shaped_rewards(exclude=exclude)], dtype=np.float64)
