"""Rollouts: run many episodes over a pool of envs in worker processes and record trajectories.

:class:`EnvPool` (:mod:`agentgym.pool`, re-exported here) keeps ``num_workers`` processes of ``envs_per_worker``
envs each and lets the caller reset and step each env independently; :func:`run_episodes` is the one scheduler
that drives it, and :func:`rollout` plays single-agent episodes on it with an agent
(:func:`agentgym.multiagent.multiagent_rollout` plays turn-based games on it, one agent per seat). Every env of
the pool plays an episode, and every episode waiting for an action joins one ``act_batch``, so an LLM agent
generates for all of them in one batch, however few processes step the envs. The episodes to play are
:class:`EpisodeSpec` s: a task, a seed and an id; :func:`group_specs` makes the N-rollouts-per-task groups
GRPO-style training compares.

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


#: Default of ``batch_wait_s``: how long the scheduler waits for the next answer of the episodes in flight
#: before acting on those that answered (see :func:`run_episodes`).
BATCH_WAIT_S = 0.5


def run_episodes(
    env_fn: EnvFactory | EnvPool,
    specs: Sequence[EpisodeSpec],
    open_episode: Callable[[EpisodeSpec], Episode],
    *,
    num_workers: int = 1,
    envs_per_worker: int = 1,
    in_process: bool = False,
    info_keys: Collection[str] | None = None,
    on_episode: Callable[[Any, float], None] | None = None,
    on_turn: Callable[[int], None] | None = None,
    batch_wait_s: float = BATCH_WAIT_S,
) -> list[Any]:
    """The scheduler: play every spec (``open_episode(spec)`` tracks it) over a pool; results in spec order.

    ``env_fn`` is an env factory (a pool of ``num_workers`` processes of ``envs_per_worker`` envs each lives for
    this call, shrunk to the number of specs) or an open :class:`EnvPool` to reuse, which brings its own layout
    (pass ``info_keys`` to the pool then). Every env of the pool plays an episode, so ``num_envs`` are in flight.

    Every episode waiting for an action joins one ``act_batch`` per distinct agent object: once an answer has
    arrived, the scheduler gathers until every env in flight has answered, or ``batch_wait_s`` passes with no
    new answer (so one slow env does not stall the rest; it joins a later batch), then acts. The clock restarts
    at each answer, not at the first: a worker steps its envs one after the other, so its answers come spread
    over ``envs_per_worker`` steps (8 TextWorld resets take over a second), and a worker still answering is
    worth waiting for. ``on_episode(result, seconds)`` runs as each episode ends; ``on_turn(n)`` after each
    ``act_batch``, with the number of turns it decided.
    """
    if not specs:
        return []
    if isinstance(env_fn, EnvPool):
        if info_keys is not None and frozenset(info_keys) != env_fn.info_keys:
            raise ValueError(
                f"rollout got info_keys={sorted(info_keys)} but its pool was opened with "
                f"info_keys={None if env_fn.info_keys is None else sorted(env_fn.info_keys)}"
            )
        env_fn.drain()
        context: contextlib.AbstractContextManager[EnvPool] = contextlib.nullcontext(env_fn)
    else:
        workers = min(num_workers, len(specs))
        per_worker = min(envs_per_worker, -(-len(specs) // workers))  # no more envs than episodes
        context = EnvPool(env_fn, workers, envs_per_worker=per_worker, in_process=in_process, info_keys=info_keys)
    results: list[Any] = [None] * len(specs)
    queue = list(range(len(specs)))[::-1]  # pop() takes them in order
    running: dict[int, tuple[int, Episode, float]] = {}  # env -> (spec index, episode, start)
    with context as pool:

        def start_next(env: int) -> None:
            if queue:
                index = queue.pop()
                spec = specs[index]
                pool.send_reset(env, spec.seed, {"task_id": spec.task_id} if spec.task_id is not None else None)
                running[env] = (index, open_episode(spec), time.perf_counter())

        for env in range(min(pool.num_envs, len(specs))):
            start_next(env)
        while running:
            awaiting: list[tuple[int, Episode]] = []
            last_answer = 0.0
            while len(awaiting) < len(running):  # some env in flight has not answered
                timeout = max(0.0, last_answer + batch_wait_s - time.perf_counter()) if awaiting else None
                answered = {env for env, _ in awaiting}
                arrived = pool.ready([env for env in running if env not in answered], timeout)
                if not arrived:
                    break  # no answer for batch_wait_s: act on those that answered
                last_answer = time.perf_counter()
                for env in arrived:
                    index, episode, started = running[env]
                    if not episode.receive(pool.receive(env)):
                        awaiting.append((env, episode))
                        continue
                    results[index] = episode.finish()
                    del running[env]
                    if on_episode is not None:
                        on_episode(results[index], time.perf_counter() - started)
                    start_next(env)
            _act(pool, awaiting, on_turn)
    return results


def _act(pool: EnvPool, waiting: list[tuple[int, Episode]], on_turn: Callable[[int], None] | None) -> None:
    """One ``act_batch`` per distinct agent over every waiting move; ``on_turn(n)`` after each; send the steps."""
    by_agent: dict[int, tuple[Agent, list[tuple[int, Episode, str, Any, str]]]] = {}
    for env, episode in waiting:
        agent, observation, info, episode_id = episode.pending()
        by_agent.setdefault(id(agent), (agent, []))[1].append((env, episode, observation, info, episode_id))
    for agent, batch in by_agent.values():
        outputs = agent.act_batch([b[2] for b in batch], [b[3] for b in batch], [b[4] for b in batch])
        if on_turn is not None:
            on_turn(len(outputs))
        for (env, episode, *_), output in zip(batch, outputs, strict=True):
            pool.send_step(env, episode.record(_as_decision(output)))


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
    envs_per_worker: int = 1,
    in_process: bool = False,
    env_id: str = "",
    token_budget: int | None = None,
    on_episode: Callable[[Trajectory, float], None] | None = None,
    info_keys: Collection[str] | None = None,
    on_turn: Callable[[int], None] | None = None,
    batch_wait_s: float = BATCH_WAIT_S,
) -> list[Trajectory]:
    """Play every spec with ``agent`` over ``num_workers * envs_per_worker`` envs; return trajectories in spec
    order.

    ``env_fn`` is an env factory (a pool of ``num_workers`` worker processes of ``envs_per_worker`` envs each is
    started for this call and closed after it) or an open :class:`EnvPool` to reuse, whose workers and engines
    outlive the call and whose layout is its own (pass ``info_keys`` to the pool then, not here). The agent
    decides, in one ``act_batch``, every episode waiting for an action (see :func:`run_episodes` for
    ``batch_wait_s``).

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
        envs_per_worker=envs_per_worker,
        in_process=in_process,
        info_keys=info_keys,
        on_episode=on_episode,
        on_turn=on_turn,
        batch_wait_s=batch_wait_s,
    )
