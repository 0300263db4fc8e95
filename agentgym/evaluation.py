"""The evaluation protocol: which episodes an evaluation plays, and recording them in the results store.

For ``--episodes N --seed K`` episode ``i`` plays task ``task_ids[perm[i mod n]]`` with reset seed
``K + i``, where ``perm`` is the permutation of the split's ``n`` tasks drawn by
``numpy.random.default_rng(K)``: every task is played once before any is repeated, and the plan depends
only on (split, N, K). Finished episodes are stored one by one; a rerun of the same command plays only
the missing ones, so an interrupted evaluation resumes without redoing or losing an episode.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from agentgym.agents import Agent
from agentgym.rollout import EpisodeSpec, rollout
from agentgym.store import DEFAULT_DB, EpisodeResult, Protocol, ResultStore
from agentgym.trajectory import Trajectory


def episode_plan(task_ids: Sequence[str], episodes: int, seed: int) -> list[EpisodeSpec]:
    """The protocol's episodes (see the module docstring)."""
    order = np.random.default_rng(seed).permutation(len(task_ids))
    return [
        EpisodeSpec(episode_id=f"{seed}:{i}", task_id=task_ids[order[i % len(task_ids)]], seed=seed + i)
        for i in range(episodes)
    ]


@dataclasses.dataclass(frozen=True)
class EvalSummary:
    protocol: Protocol
    agent: str
    seed: int
    requested: int
    already_done: int
    played: int
    results: list[EpisodeResult]

    @property
    def success_rate(self) -> float:
        return sum(r.won for r in self.results) / max(1, len(self.results))


def make_env_factory(env_id: str, **kwargs: Any) -> functools.partial:
    """A picklable factory for worker processes."""
    return functools.partial(gym.make, env_id, **kwargs)


def describe(env_id: str, split: str, max_turns: int | None, env_kwargs: Mapping[str, Any]) -> tuple[Protocol, list[str]]:
    """The protocol and task ids of an env configuration (builds the env once, plays nothing)."""
    kwargs = dict(env_kwargs, split=split)
    if max_turns is not None:
        kwargs["max_turns"] = max_turns
    env = gym.make(env_id, **kwargs)
    try:
        base = env.unwrapped
        manifest = base.manifest
        protocol = Protocol(env_id, manifest.engine_version, manifest.hash, split, base.max_turns)
        return protocol, list(base.task_ids)
    finally:
        env.close()


def evaluate(
    env_id: str,
    agent: Agent,
    *,
    split: str = "test",
    episodes: int = 10,
    seed: int = 0,
    max_turns: int | None = None,
    db: str | os.PathLike = DEFAULT_DB,
    num_workers: int = 1,
    env_kwargs: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> EvalSummary:
    """Run (or resume) the protocol for ``agent`` and record every episode in the store at ``db``."""
    env_kwargs = dict(env_kwargs or {})
    protocol, task_ids = describe(env_id, split, max_turns, env_kwargs)
    plan = episode_plan(task_ids, episodes, seed)
    with ResultStore(db) as store:
        done = store.finished_indices(protocol, agent.name, seed)
        todo = [spec for index, spec in enumerate(plan) if index not in done]
        already = len(plan) - len(todo)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(plan), initial=already, desc=f"{agent.name} on {env_id} {split}", unit="episode")

        def record(trajectory: Trajectory, seconds: float) -> None:
            index = int(trajectory.episode_id.rsplit(":", 1)[1])
            store.add(protocol, agent.name, seed, _result(index, trajectory, seconds))
            if bar is not None:
                bar.update(1)

        factory = make_env_factory(env_id, split=split, max_turns=protocol.max_turns, **env_kwargs)
        try:
            rollout(factory, agent, todo, num_workers=num_workers, env_id=env_id, on_episode=record,
                    info_keys=agent.info_keys)
        finally:
            if bar is not None:
                bar.close()
        results = [r for r in store.episodes(protocol, agent.name, seed) if r.episode_index < episodes]
    return EvalSummary(protocol, agent.name, seed, episodes, already, len(todo), results)


def _result(index: int, trajectory: Trajectory, seconds: float) -> EpisodeResult:
    return EpisodeResult(
        episode_index=index,
        task_id=trajectory.task_id,
        episode_seed=int(trajectory.seed or 0),
        won=trajectory.won,
        score=trajectory.score,
        total_reward=trajectory.total_reward,
        turns=len(trajectory.turns),
        truncated=trajectory.truncated,
        seconds=seconds,
    )
