"""The evaluation protocol: which episodes an evaluation plays, and recording them in the results store.

For ``--episodes N --seed K`` episode ``i`` plays task ``task_ids[perm[i mod n]]`` with reset seed
``K + i``, where ``perm`` is the permutation of the split's ``n`` tasks drawn by
``numpy.random.default_rng(K)``: every task is played once before any is repeated, and the plan depends
only on (split, N, K). Finished episodes are stored one by one, each with its trajectory, task type and the
env's constructor arguments (:mod:`agentgym.store`); a rerun of the same command plays only the missing
ones, so an interrupted evaluation resumes without redoing or losing an episode. ``save_trajectories``
also writes the run's trajectories (stored ones included) to a JSONL file when it ends.
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
from agentgym.rollout import BATCH_WAIT_S, EpisodeSpec, rollout
from agentgym.store import DEFAULT_DB, EpisodeResult, Protocol, ResultStore
from agentgym.tasktypes import task_types
from agentgym.trajectory import Trajectory, jsonable, save_jsonl


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
    #: Trajectories written to ``save_trajectories`` (episodes stored before trajectories were kept have none).
    saved_trajectories: int = 0

    @property
    def success_rate(self) -> float:
        return sum(r.won for r in self.results) / max(1, len(self.results))


def make_env_factory(env_id: str, **kwargs: Any) -> functools.partial:
    """A picklable factory for worker processes."""
    return functools.partial(gym.make, env_id, **kwargs)


def describe(
    env_id: str, split: str, max_turns: int | None, env_kwargs: Mapping[str, Any]
) -> tuple[Protocol, list[str]]:
    """The protocol and task ids of an env configuration (builds the env once, plays nothing)."""
    protocol, types = describe_tasks(env_id, split, max_turns, env_kwargs)
    return protocol, list(types)


def describe_tasks(
    env_id: str, split: str, max_turns: int | None, env_kwargs: Mapping[str, Any]
) -> tuple[Protocol, dict[str, str]]:
    """The protocol and ``{task_id: task type}`` (:mod:`agentgym.tasktypes`) of an env configuration, in the
    split's order."""
    kwargs = dict(env_kwargs, split=split)
    if max_turns is not None:
        kwargs["max_turns"] = max_turns
    env = gym.make(env_id, **kwargs)
    try:
        base = env.unwrapped
        manifest = base.manifest
        protocol = Protocol(env_id, manifest.engine_version, manifest.hash, split, base.max_turns)
        return protocol, task_types(base)
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
    envs_per_worker: int = 1,
    env_kwargs: Mapping[str, Any] | None = None,
    progress: bool = True,
    save_trajectories: str | os.PathLike | None = None,
    batch_wait_s: float = BATCH_WAIT_S,
) -> EvalSummary:
    """Run (or resume) the protocol for ``agent`` and record every episode in the store at ``db``;
    ``save_trajectories``: also write the ``episodes`` trajectories to this JSONL file (in episode order).

    ``num_workers`` env processes of ``envs_per_worker`` envs each play ``num_workers * envs_per_worker``
    episodes at a time; the agent decides every waiting one in one batch (:func:`agentgym.rollout.run_episodes`,
    ``batch_wait_s``). The results do not depend on the layout: each episode's seed is fixed by the plan."""
    env_kwargs = dict(env_kwargs or {})
    protocol, types = describe_tasks(env_id, split, max_turns, env_kwargs)
    plan = episode_plan(list(types), episodes, seed)
    made_with = jsonable(dict(env_kwargs, split=split, max_turns=protocol.max_turns))
    with ResultStore(db) as store:
        store.add_agent(agent.name, getattr(agent, "identity", None))
        done = store.finished_indices(protocol, agent.name, seed)
        todo = [spec for index, spec in enumerate(plan) if index not in done]
        already = len(plan) - len(todo)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(plan), initial=already, desc=f"{agent.name} on {env_id} {split}", unit="episode")

        def record(trajectory: Trajectory, seconds: float) -> None:
            index = int(trajectory.episode_id.rsplit(":", 1)[1])
            result = _result(index, trajectory, seconds, types.get(trajectory.task_id))
            store.add(protocol, agent.name, seed, result, trajectory, made_with)
            if bar is not None:
                bar.update(1)

        factory = make_env_factory(env_id, split=split, max_turns=protocol.max_turns, **env_kwargs)
        try:
            rollout(
                factory,
                agent,
                todo,
                num_workers=num_workers,
                envs_per_worker=envs_per_worker,
                batch_wait_s=batch_wait_s,
                env_id=env_id,
                on_episode=record,
                info_keys=agent.info_keys,
            )
        finally:
            if bar is not None:
                bar.close()
        results = [r for r in store.episodes(protocol, agent.name, seed) if r.episode_index < episodes]
        saved = 0
        if save_trajectories is not None:
            kept = [
                stored.trajectory
                for stored in store.stored(env_id, agent.name)
                if stored.protocol == protocol
                and stored.seed == seed
                and stored.result.episode_index < episodes
                and stored.trajectory is not None
            ]
            save_jsonl(kept, save_trajectories)
            saved = len(kept)
    return EvalSummary(protocol, agent.name, seed, episodes, already, len(todo), results, saved)


def _result(index: int, trajectory: Trajectory, seconds: float, task_type: str | None = None) -> EpisodeResult:
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
        task_type=task_type,
    )
