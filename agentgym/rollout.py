"""Rollouts: run many episodes over a pool of envs in worker processes and record trajectories.

:class:`EnvPool` (:mod:`agentgym.pool`, re-exported here) keeps one env per worker process and lets the caller
reset and step each one independently; :func:`run_episodes` is the one scheduler that drives it, and :func:`rollout` plays
single-agent episodes on it with an agent (:func:`agentgym.multiagent.multiagent_rollout` plays
turn-based games on it, one agent per seat). The agent sees every turn that is ready at
once (``act_batch``), so an LLM agent generates for many envs in one batch, and a worker never waits
for the others to finish their step. The episodes to play are :class:`EpisodeSpec` s: a task, a seed
and an id; :func:`group_specs` makes the N-rollouts-per-task groups GRPO-style training compares.

Example:
    >>> from functools import partial
    >>> import gymnasium as gym, agentgym
    >>> from agentgym.agents import RandomAgent
    >>> specs = group_specs(["coin_collector/3000"], seeds=[0], group_size=4)            # doctest: +SKIP
    >>> trajectories = rollout(partial(gym.make, "agentgym/TextWorld-v0", split="test"),   # doctest: +SKIP
    ...                        RandomAgent(seed=0), specs, num_workers=2)
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, Protocol

from agentgym.agents import Agent
from agentgym.pool import EnvFactory, EnvPool, request_info_keys  # noqa: F401  (re-exported)
from agentgym.trajectory import Decision, Trajectory, Turn, jsonable


@dataclasses.dataclass(frozen=True)
class EpisodeSpec:
    """One episode to play: ``reset(seed=seed, options={"task_id": task_id})``."""

    episode_id: str
    task_id: str | None
    seed: int | None
    group_id: str | None = None

    def start_trajectory(
        self,
        env_id: str,
        agent: str,
        observation: str,
        info: dict[str, Any],
        *,
        subgroup: str | None = None,
        token_budget: int | None = None,
    ) -> Trajectory:
        """This episode's trajectory, opened on its first observation (``info`` already JSON-safe).

        ``subgroup`` splits the group (one per seat in multi-agent self-play: ``<group_id>/<seat>``).
        """
        group_id = self.group_id
        if group_id is not None and subgroup is not None:
            group_id = f"{group_id}/{subgroup}"
        return Trajectory(
            episode_id=self.episode_id,
            env_id=env_id,
            task_id=info.get("task_id", self.task_id),
            seed=self.seed,
            agent=agent,
            initial_observation=observation,
            initial_info=info,
            group_id=group_id,
            token_budget=token_budget,
        )


def group_specs(task_ids: Iterable[str], seeds: Iterable[int], group_size: int) -> list[EpisodeSpec]:
    """``group_size`` rollouts of each (task, seed), sharing a ``group_id``."""
    specs = []
    for task_id, seed in zip(task_ids, seeds, strict=True):
        group_id = f"{task_id}@{seed}"
        specs += [EpisodeSpec(f"{group_id}#{k}", task_id, seed, group_id) for k in range(group_size)]
    return specs


# --------------------------------------------------------------------------- rollouts
def _as_decision(output: str | Decision) -> Decision:
    return output if isinstance(output, Decision) else Decision(text=output)


def _reply(decision: Decision) -> str | None:
    """The raw reply behind a decision: ``Decision.reply``, else the agent's ``info["reply"]``, else None."""
    if decision.reply is not None:
        return decision.reply
    reply = (decision.info or {}).get("reply")
    return reply if isinstance(reply, str) else None


class Episode(Protocol):
    """One episode in progress on one pool worker, as :func:`run_episodes` drives it.

    :func:`rollout` plays single-agent episodes (one trajectory); :func:`agentgym.multiagent.multiagent_rollout`
    plays turn-based games (one trajectory per seat, the agent of the seat to move acts). Both run on the same
    scheduler, so both get worker pools, pool reuse, batching across episodes and info keys.
    """

    def receive(self, answer: Any) -> bool:
        """Take the env's answer to the last ``reset``/``step``; True when the episode is over."""

    def pending(self) -> tuple[Agent, str, Any, str]:
        """The awaited move: ``(agent, observation, info, episode id for the agent)``."""

    def record(self, decision: Decision) -> Any:
        """Record the agent's decision; return the action to send to ``env.step``."""

    def finish(self) -> Any:
        """The episode's result (the agents are told the episode ended)."""


def decision_turn(decision: Decision) -> Turn:
    """An open :class:`~agentgym.trajectory.Turn` for a decision: observation, reward and ``info`` are filled in
    when the step's answer arrives."""
    return Turn(
        observation="",
        action=decision.text,
        reward=0.0,
        terminated=False,
        truncated=False,
        info={},
        prompt_token_ids=decision.prompt_token_ids,
        response_token_ids=decision.response_token_ids,
        response_logprobs=decision.response_logprobs,
        agent_info=decision.info,
        reply=_reply(decision),
    )


def run_episodes(
    env_fn: EnvFactory | EnvPool,
    specs: Sequence[EpisodeSpec],
    open_episode: Callable[[EpisodeSpec], Episode],
    *,
    num_workers: int = 1,
    in_process: bool = False,
    info_keys: Collection[str] | None = None,
    on_episode: Callable[[Any, float], None] | None = None,
    on_turn: Callable[[int], None] | None = None,
) -> list[Any]:
    """The scheduler: play every spec (``open_episode(spec)`` tracks it) over a pool; results in spec order.

    ``env_fn`` is an env factory (a pool of ``num_workers`` workers lives for this call) or an open
    :class:`EnvPool` to reuse (pass ``info_keys`` to the pool then). Every waiting move of the pool goes to its
    agent at once: one ``act_batch`` per distinct agent object. ``on_episode(result, seconds)`` runs as each
    episode ends; ``on_turn(n)`` after each ``act_batch``, with the number of turns it decided.
    """
    results: list[Any] = [None] * len(specs)
    if not specs:
        return []
    queue = list(range(len(specs)))[::-1]  # pop() takes them in order
    running: dict[int, tuple[int, Episode, float]] = {}  # worker -> (spec index, episode, start)
    if isinstance(env_fn, EnvPool):
        if info_keys is not None and frozenset(info_keys) != env_fn.info_keys:
            raise ValueError(
                f"rollout got info_keys={sorted(info_keys)} but its pool was opened with "
                f"info_keys={None if env_fn.info_keys is None else sorted(env_fn.info_keys)}"
            )
        env_fn.drain()
        context: contextlib.AbstractContextManager[EnvPool] = contextlib.nullcontext(env_fn)
    else:
        context = EnvPool(env_fn, min(num_workers, len(specs)), in_process=in_process, info_keys=info_keys)
    with context as pool:

        def start_next(worker: int) -> None:
            if queue:
                index = queue.pop()
                spec = specs[index]
                pool.send_reset(worker, spec.seed, {"task_id": spec.task_id} if spec.task_id is not None else None)
                running[worker] = (index, open_episode(spec), time.perf_counter())

        for worker in range(min(pool.num_envs, len(specs))):
            start_next(worker)
        while running:
            awaiting: list[tuple[int, Episode]] = []
            for worker in pool.ready(list(running)):
                index, episode, started = running[worker]
                if not episode.receive(pool.receive(worker)):
                    awaiting.append((worker, episode))
                    continue
                results[index] = episode.finish()
                del running[worker]
                if on_episode is not None:
                    on_episode(results[index], time.perf_counter() - started)
                start_next(worker)
            _act(pool, awaiting, on_turn)
    return results


def _act(pool: EnvPool, waiting: list[tuple[int, Episode]], on_turn: Callable[[int], None] | None) -> None:
    """One ``act_batch`` per distinct agent over every waiting move; ``on_turn(n)`` after each; send the steps."""
    by_agent: dict[int, tuple[Agent, list[tuple[int, Episode, str, Any, str]]]] = {}
    for worker, episode in waiting:
        agent, observation, info, episode_id = episode.pending()
        by_agent.setdefault(id(agent), (agent, []))[1].append((worker, episode, observation, info, episode_id))
    for agent, batch in by_agent.values():
        outputs = agent.act_batch([b[2] for b in batch], [b[3] for b in batch], [b[4] for b in batch])
        if on_turn is not None:
            on_turn(len(outputs))
        for (worker, episode, *_), output in zip(batch, outputs, strict=True):
            pool.send_step(worker, episode.record(_as_decision(output)))


class _SingleAgentEpisode:
    """A :class:`~agentgym.trajectory.Trajectory` in progress (the :class:`Episode` of :func:`rollout`)."""

    def __init__(self, spec: EpisodeSpec, agent: Agent, env_id: str, token_budget: int | None):
        self.spec, self.agent, self.env_id, self.token_budget = spec, agent, env_id, token_budget
        self.trajectory: Trajectory | None = None

    def receive(self, answer: Any) -> bool:
        if self.trajectory is None:
            obs, info = answer
            self.trajectory = self.spec.start_trajectory(
                self.env_id, self.agent.name, obs, jsonable(info), token_budget=self.token_budget
            )
            return False
        obs, reward, terminated, truncated, info = answer
        turn = self.trajectory.turns[-1]
        turn.observation, turn.reward = obs, float(reward)
        turn.terminated, turn.truncated = bool(terminated), bool(truncated)
        turn.info = jsonable(info)
        turn.turn_rewards = dict(turn.info.get("turn_rewards") or {})
        over_budget = self.token_budget is not None and self.trajectory.tokens_used > self.token_budget
        if over_budget and not (terminated or truncated):
            turn.truncated = self.trajectory.token_budget_exceeded = True
        return turn.terminated or turn.truncated

    def pending(self) -> tuple[Agent, str, Any, str]:
        t = self.trajectory
        assert t is not None
        return self.agent, t.turns[-1].observation if t.turns else t.initial_observation, t.final_info, t.episode_id

    def record(self, decision: Decision) -> str:
        assert self.trajectory is not None
        self.trajectory.turns.append(decision_turn(decision))
        return decision.text

    def finish(self) -> Trajectory:
        self.agent.end_episode(self.spec.episode_id)
        assert self.trajectory is not None
        return self.trajectory


def rollout(
    env_fn: EnvFactory | EnvPool,
    agent: Agent,
    specs: Sequence[EpisodeSpec],
    *,
    num_workers: int = 1,
    in_process: bool = False,
    env_id: str = "",
    token_budget: int | None = None,
    on_episode: Callable[[Trajectory, float], None] | None = None,
    info_keys: Collection[str] | None = None,
    on_turn: Callable[[int], None] | None = None,
) -> list[Trajectory]:
    """Play every spec with ``agent`` over ``num_workers`` envs; return trajectories in spec order.

    ``env_fn`` is an env factory (a pool of ``num_workers`` worker processes is started for this call
    and closed after it) or an open :class:`EnvPool` to reuse, whose workers and engines outlive the
    call (pass ``info_keys`` to the pool then, not here).

    ``on_episode(trajectory, seconds)`` is called as each episode ends (the evaluator stores it at once,
    so an interruption loses only the episodes in flight); ``on_turn(n)`` after each ``act_batch`` of the
    agent, with the number of turns it decided (``n`` summed over the call is the turns played: a progress
    bar's turn count). ``token_budget`` caps prompt+response
    tokens per episode: the episode is truncated when the agent's decisions exceed it, and the
    trajectory says so. ``info_keys``: which costly info values the agent reads and the trajectories
    record (the others are absent; see :class:`EnvPool`); None: as the envs were made (all, by default).
    """
    return run_episodes(
        env_fn,
        specs,
        lambda spec: _SingleAgentEpisode(spec, agent, env_id, token_budget),
        num_workers=num_workers,
        in_process=in_process,
        info_keys=info_keys,
        on_episode=on_episode,
        on_turn=on_turn,
    )
