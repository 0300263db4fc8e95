"""Multi-agent rollouts: self-play groups over PettingZoo parallel envs, one trajectory per agent.

:func:`multiagent_rollout` plays :class:`~agentgym.rollout.EpisodeSpec` s on a
:class:`~agentgym.envs.multiagent.views.TextParallelEnv` (in worker processes through
:class:`~agentgym.rollout.EnvPool`), with one :class:`~agentgym.agents.Agent` per seat — the same object in
every seat is self-play. Each episode gives one :class:`~agentgym.trajectory.Trajectory` per seat, in the
single-agent format, linked by the spec's ``episode_id`` (shared by the seats; ``info["agent_id"]`` names the
seat):

* a seat's ``initial_observation``/``initial_info`` are what it saw at its first move;
* a seat's :class:`~agentgym.trajectory.Turn` is one of its own moves: ``observation``/``info`` are what it sees
  when it is next to move (or at the end), ``reward`` is what it earned from its move until then (the other
  agents' replies included) — the same span as one ``step`` of the single-agent view;
* ``group_id`` is ``<spec group>/<seat>``, so GRPO-style groups compare the same seat across the N episodes of
  one (task, seed).

Turn-level reward hooks run per seat: ``hooks={seat: [hook, ...]}`` takes any object with a ``name`` and
``score(trajectories) -> [[reward per turn] per trajectory]`` (the interface of
:class:`agentgym.wrappers.hooks.TurnRewardHook`); each finished seat trajectory is scored and the rewards are
written to ``turn.turn_rewards[hook.name]``.

Example:
    >>> from functools import partial
    >>> from agentgym.rollout import group_specs
    >>> from agentgym.envs.multiagent import negotiation
    >>> from agentgym.envs.multiagent.rollout import multiagent_rollout, by_episode
    >>> agent = negotiation.ScriptedNegotiator()
    >>> specs = group_specs(["pool/200000"], seeds=[0], group_size=2)
    >>> episodes = multiagent_rollout(partial(negotiation.parallel_env, split="test"),
    ...                               {"player_0": agent, "player_1": agent}, specs, in_process=True)
    >>> sorted(episodes[0]), episodes[0]["player_0"].episode_id == episodes[0]["player_1"].episode_id
    (['player_0', 'player_1'], True)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from agentgym.agents import Agent
from agentgym.error import InvalidArgumentError
from agentgym.rollout import EnvPool, EpisodeSpec
from agentgym.trajectory import Decision, Trajectory, Turn, jsonable


class TurnHook(Protocol):
    """What :func:`multiagent_rollout` needs of a turn-level reward hook."""

    name: str

    def score(self, trajectories: Sequence[Trajectory]) -> list[list[float]]: ...


class _Episode:
    """The per-seat trajectories of one episode in progress."""

    def __init__(self, spec: EpisodeSpec, index: int):
        self.spec, self.index = spec, index
        self.trajectories: dict[str, Trajectory] = {}
        self.open: dict[str, Turn] = {}  # seat -> its last move, waiting for what it sees next
        self.started = time.perf_counter()

    def see(self, seat: str, observation: str, info: dict[str, Any], env_id: str, agent: Agent,
            terminated: bool = False, truncated: bool = False) -> None:
        """``seat`` is to move (or the game ended): close its open turn or start its trajectory."""
        info = jsonable(info)
        turn = self.open.pop(seat, None)
        if turn is not None:
            turn.observation, turn.info = observation, info
            turn.terminated, turn.truncated = terminated, truncated
        elif seat not in self.trajectories:
            self.trajectories[seat] = self.spec.start_trajectory(env_id, agent.name, observation, info, subgroup=seat)


def multiagent_rollout(
    env_fn: Callable[[], Any],
    agents: Mapping[str, Agent],
    specs: Sequence[EpisodeSpec],
    *,
    num_workers: int = 1,
    in_process: bool = False,
    env_id: str = "",
    hooks: Mapping[str, Sequence[TurnHook]] | None = None,
    on_episode: Callable[[dict[str, Trajectory], float], None] | None = None,
) -> list[dict[str, Trajectory]]:
    """Play every spec with ``agents[seat]`` in each seat; return ``{seat: trajectory}`` per spec, in order.

    ``env_fn`` builds a :class:`~agentgym.envs.multiagent.views.TextParallelEnv` (picklable, e.g. a
    ``functools.partial`` of ``negotiation.parallel_env``). Agents see every pending move of the pool at once
    (``act_batch`` per agent object, so a self-play LLM batches both seats); each seat of each episode has its
    own ``episode_id`` for the agent, ``<episode id>/<seat>``.
    """
    hooks = dict(hooks or {})
    results: list[dict[str, Trajectory] | None] = [None] * len(specs)
    if not specs:
        return []
    queue = list(range(len(specs)))[::-1]
    running: dict[int, _Episode] = {}
    resetting: set[int] = set()
    with EnvPool(env_fn, min(num_workers, len(specs)), in_process=in_process) as pool:

        def start_next(worker: int) -> None:
            if queue:
                index = queue.pop()
                spec = specs[index]
                pool.send_reset(worker, spec.seed, {"task_id": spec.task_id} if spec.task_id is not None else None)
                running[worker] = _Episode(spec, index)
                resetting.add(worker)

        for worker in range(pool.num_envs):
            start_next(worker)
        while running:
            waiting: list[tuple[int, str, str, dict[str, Any]]] = []  # (worker, seat, observation, info)
            for worker in pool.ready(list(running)):
                episode = running[worker]
                if worker in resetting:
                    resetting.discard(worker)
                    observations, infos = pool.receive(worker)
                    terminations = truncations = {}
                else:
                    observations, rewards, terminations, truncations, infos = pool.receive(worker)
                    for seat, turn in episode.open.items():
                        turn.reward += float(rewards.get(seat, 0.0))
                seat = next(iter(infos.values()))["to_move"]
                if seat is None:  # the game is over: every seat sees the end
                    for name in infos:
                        if name not in agents:
                            raise InvalidArgumentError(f"no agent for seat {name!r}; agents has {sorted(agents)}")
                        episode.see(name, observations[name], infos[name], env_id, agents[name],
                                    bool(terminations.get(name)), bool(truncations.get(name)))
                    results[episode.index] = _finish(episode, agents, hooks)
                    del running[worker]
                    if on_episode is not None:
                        on_episode(results[episode.index], time.perf_counter() - episode.started)
                    start_next(worker)
                    continue
                if seat not in agents:
                    raise InvalidArgumentError(f"no agent for seat {seat!r}; agents has {sorted(agents)}")
                episode.see(seat, observations[seat], infos[seat], env_id, agents[seat])
                waiting.append((worker, seat, observations[seat], infos[seat]))
            _decide(pool, running, agents, waiting)
    return results  # type: ignore[return-value]


def _decide(pool: EnvPool, running: dict[int, _Episode], agents: Mapping[str, Agent],
            waiting: list[tuple[int, str, str, dict[str, Any]]]) -> None:
    """One ``act_batch`` per distinct agent object over every waiting move; send the steps."""
    by_agent: dict[int, list[tuple[int, str, str, dict[str, Any]]]] = {}
    for item in waiting:
        by_agent.setdefault(id(agents[item[1]]), []).append(item)
    for batch in by_agent.values():
        agent = agents[batch[0][1]]
        ids = [f"{running[worker].spec.episode_id}/{seat}" for worker, seat, _, _ in batch]
        outputs = agent.act_batch([obs for _, _, obs, _ in batch], [info for _, _, _, info in batch], ids)
        for (worker, seat, _, _), output in zip(batch, outputs, strict=True):
            decision = output if isinstance(output, Decision) else Decision(text=output)
            turn = Turn(
                observation="", action=decision.text, reward=0.0, terminated=False, truncated=False, info={},
                prompt_token_ids=decision.prompt_token_ids, response_token_ids=decision.response_token_ids,
                response_logprobs=decision.response_logprobs,
            )
            running[worker].trajectories[seat].turns.append(turn)
            running[worker].open[seat] = turn
            pool.send_step(worker, {seat: decision.text})


def _finish(episode: _Episode, agents: Mapping[str, Agent], hooks: Mapping[str, Sequence[TurnHook]]) -> dict[str, Trajectory]:
    for seat, trajectory in episode.trajectories.items():
        agents[seat].end_episode(f"{episode.spec.episode_id}/{seat}")
        for hook in hooks.get(seat, ()):
            (rewards,) = hook.score([trajectory])
            if len(rewards) != len(trajectory.turns):
                raise InvalidArgumentError(
                    f"hook {hook.name!r} gave {len(rewards)} rewards for {len(trajectory.turns)} turns"
                )
            for turn, reward in zip(trajectory.turns, rewards):
                turn.turn_rewards[hook.name] = float(reward)
    return dict(episode.trajectories)


def by_episode(trajectories: Iterable[Trajectory]) -> dict[str, dict[str, Trajectory]]:
    """Regroup per-seat trajectories (e.g. loaded from JSONL) as ``{episode_id: {seat: trajectory}}``."""
    grouped: dict[str, dict[str, Trajectory]] = {}
    for trajectory in trajectories:
        seat = trajectory.initial_info.get("agent_id")
        if seat is None:
            raise InvalidArgumentError(f"trajectory {trajectory.episode_id!r} has no info['agent_id'] (not multi-agent)")
        grouped.setdefault(trajectory.episode_id, {})[seat] = trajectory
    return grouped
