"""``agentgym verify``: replay stored trajectories through the env and confirm each stored result.

Every family is deterministic under a seed (:meth:`agentgym.core.TextEnv.clone_state` says so), so an
episode is reproduced by ``reset(seed=episode_seed, options={"task_id": task_id})`` on an env made with the
stored constructor arguments, then the stored actions in order. An episode is **ok** when

* the rebuilt env has the protocol's engine version and task manifest (else: version drift),
* every observation, env reward and end flag the replay produces equals the stored one, and
* the stored row (won, score, total reward, turns) equals both the trajectory and the replay's outcome
  (a row edited after the fact disagrees with both).

Families that declare ``metadata["conformance_exempt"]`` with ``"determinism"`` (KernelGym: timings) are
**skipped**, and so are episodes without a stored trajectory (evaluated before they were kept) and ids no
longer registered. Hook rewards are not replayed (they are not part of the stored score).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Iterable
from typing import Any

import gymnasium as gym

import agentgym
from agentgym.error import AgentGymError
from agentgym.store import ResultStore, StoredEpisode


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome for one stored episode: ``status`` is ``ok``, ``mismatch`` or ``skipped``."""

    env_id: str
    agent: str
    seed: int
    episode_index: int
    task_id: str
    status: str
    reason: str = ""

    def line(self) -> str:
        where = f"{self.env_id} {self.agent} seed={self.seed} episode={self.episode_index} task={self.task_id}"
        return f"{self.status.upper():<8} {where}" + (f": {self.reason}" if self.reason else "")


def _close(a: float, b: float) -> bool:
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


def row_disagreement(stored: StoredEpisode) -> str | None:
    """Where the stored row disagrees with its stored trajectory (None: it agrees)."""
    r, t = stored.result, stored.trajectory
    for name, row_value, trajectory_value in (
        ("won", r.won, t.won),
        ("score", r.score, t.score),
        ("total_reward", r.total_reward, t.total_reward),
        ("turns", r.turns, len(t.turns)),
    ):
        if not _close(row_value, trajectory_value):
            return f"stored {name} {row_value!r} but its trajectory has {trajectory_value!r}"
    return None


def replay_disagreement(env: gym.Env, stored: StoredEpisode) -> str | None:
    """Replay the trajectory in ``env``; where the replay first departs from it (None: identical)."""
    t, r = stored.trajectory, stored.result
    observation, info = env.reset(seed=r.episode_seed, options={"task_id": r.task_id})
    if observation != t.initial_observation:
        return "the reset observation differs from the stored one"
    reward_sum = 0.0
    for index, turn in enumerate(t.turns):
        observation, reward, terminated, truncated, info = env.step(turn.action)
        reward_sum += float(reward)
        if not _close(reward, turn.reward):
            return f"turn {index} ({turn.action!r}): replay reward {reward!r}, stored {turn.reward!r}"
        if (bool(terminated), bool(truncated)) != (turn.terminated, turn.truncated):
            return f"turn {index}: replay ends (terminated={terminated}, truncated={truncated}), stored differently"
        if observation != turn.observation:
            return f"turn {index} ({turn.action!r}): the observation differs from the stored one"
    replay_score, replay_won = float(info.get("score") or 0.0), bool(info.get("won"))
    if not _close(replay_score, r.score) or replay_won != r.won or not _close(reward_sum, r.total_reward):
        return (
            f"replay gives score {replay_score:g}, won {replay_won}, total reward {reward_sum:g}; "
            f"stored score {r.score:g}, won {r.won}, total reward {r.total_reward:g}"
        )
    return None


class _Envs:
    """One env per (env id, constructor arguments), made on first use and closed at the end."""

    def __init__(self) -> None:
        self.envs: dict[tuple[str, str], gym.Env] = {}

    def get(self, env_id: str, kwargs: dict[str, Any]) -> gym.Env:
        key = (env_id, json.dumps(kwargs, sort_keys=True))
        if key not in self.envs:
            env = gym.make(env_id, **kwargs)
            if hasattr(env.unwrapped, "set_info_keys"):
                env.unwrapped.set_info_keys(())  # costly extras change nothing in the replay
            self.envs[key] = env
        return self.envs[key]

    def close(self) -> None:
        for env in self.envs.values():
            env.close()


def verify_episode(envs: _Envs, stored: StoredEpisode) -> Verdict:
    """The verdict on one stored episode (see the module docstring)."""
    p = stored.protocol

    def verdict(status: str, reason: str = "") -> Verdict:
        return Verdict(
            p.env_id, stored.agent, stored.seed, stored.result.episode_index, stored.result.task_id, status, reason
        )

    if stored.trajectory is None:
        return verdict("skipped", "no stored trajectory (evaluated before trajectories were kept)")
    if p.env_id not in agentgym.registered_ids():
        return verdict("skipped", f"{p.env_id} is not a registered id")
    disagreement = row_disagreement(stored)
    if disagreement:
        return verdict("mismatch", disagreement)
    try:
        env = envs.get(p.env_id, dict(stored.env_kwargs or {}))
    except AgentGymError as exc:
        return verdict("skipped", f"the env cannot be made with the stored arguments: {exc}")
    base = env.unwrapped
    if "determinism" in base.metadata.get("conformance_exempt", ()):
        return verdict("skipped", f"{type(base).__name__} is not deterministic (conformance_exempt)")
    if (base.manifest.engine_version, base.manifest.hash, base.max_turns) != (
        p.engine_version,
        p.manifest_hash,
        p.max_turns,
    ):
        return verdict(
            "mismatch",
            f"version drift: the env now has engine {base.manifest.engine_version!r}, manifest "
            f"{base.manifest.hash[:12]}, max_turns {base.max_turns}; the result was "
            f"stored under {p.engine_version!r}, {p.manifest_hash[:12]}, {p.max_turns}",
        )
    try:
        disagreement = replay_disagreement(env, stored)
    except AgentGymError as exc:
        disagreement = f"the replay raised {type(exc).__name__}: {exc}"
    return verdict("mismatch", disagreement) if disagreement else verdict("ok")


def verify(
    db: str | os.PathLike,
    *,
    env_id: str | None = None,
    agent: str | None = None,
    on_verdict: Callable[[Verdict], None] | None = None,
) -> list[Verdict]:
    """Verify every stored episode of ``db`` (optionally one env id / agent); one verdict per episode."""
    with ResultStore(db, create=False) as store:
        episodes: Iterable[StoredEpisode] = list(store.stored(env_id, agent))
    envs = _Envs()
    verdicts = []
    try:
        for stored in episodes:
            verdict = verify_episode(envs, stored)
            verdicts.append(verdict)
            if on_verdict is not None:
                on_verdict(verdict)
    finally:
        envs.close()
    return verdicts


def summary(verdicts: list[Verdict]) -> str:
    counts = {status: sum(v.status == status for v in verdicts) for status in ("ok", "mismatch", "skipped")}
    return (
        f"{counts['ok']} ok, {counts['mismatch']} mismatched, {counts['skipped']} skipped of {len(verdicts)} episodes"
    )
