"""The PettingZoo views of a :class:`~agentgym.turngame.TurnGame` and self-play rollouts over them.

* :class:`TextAECEnv`, :class:`TextParallelEnv`, their action space :class:`MoveSpace` and the
  ``env()``/``parallel_env()`` constructors of a family (:func:`pettingzoo_constructors`); the shared behaviour and
  PettingZoo conventions are in :mod:`agentgym.turngame`.
* :func:`multiagent_rollout`: self-play groups over a parallel view, one trajectory per seat, on the scheduler of
  :func:`agentgym.rollout.rollout` (worker pools, pool reuse, token budgets, info keys).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np
from gymnasium.utils import seeding

from agentgym.agents import Agent
from agentgym.core import MAX_OBSERVATION_LENGTH, TextSpace
from agentgym.error import InvalidArgumentError, ResetNeeded
from agentgym.extras import needs
from agentgym.rollout import BATCH_WAIT_S, EnvPool, EpisodeSpec, decision_turn, run_episodes
from agentgym.tasks import Task
from agentgym.trajectory import Decision, Trajectory, Turn, jsonable
from agentgym.turngame import TextObs, TurnGame

with needs("multiagent"):  # PettingZoo: one line naming the extra when it is missing
    from pettingzoo import AECEnv, ParallelEnv


def _select_task(game: TurnGame, rng: np.random.Generator, options: Mapping[str, Any] | None) -> Task:
    options = dict(options or {})
    task_id = options.pop("task_id", None)
    if options:
        warnings.warn(f"ignoring unknown reset options {sorted(options)}; the only option is 'task_id'", stacklevel=3)
    return game.tasks.get(task_id) if task_id is not None else game.tasks.select(rng)


class MoveSpace(TextSpace):
    """An agent's action space in the PettingZoo views of a game with a fixed move list: any text (as
    :class:`~agentgym.core.TextSpace`), and ``sample(mask)`` with an ``info["action_mask"]`` array draws the text of
    a legal move (PettingZoo's tests sample actions this way)."""

    def __init__(self, max_length: int, game: TurnGame, agent: str):
        super().__init__(max_length)
        self._game, self._agent = game, agent  # a copy of the view copies the game once, and this with it

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        if isinstance(mask, np.ndarray):
            legal = np.flatnonzero(mask)
            moves = self._game.move_list(self._agent)
            if moves is None or legal.size == 0:
                return super().sample()
            return moves[int(self.np_random.choice(legal))]
        return super().sample(mask, probability)


class _PettingZooView:
    """What the AEC and parallel views share: spaces, seeding, task selection, rendering, closing."""

    #: Whether PettingZoo's ``aec_to_parallel`` may convert the view (see the module docstring).
    parallelizable: ClassVar[bool] = True

    def __init__(self, game: TurnGame, render_mode: str | None, max_cycles: int | None = None):
        if render_mode not in (None, "ansi", "human"):
            raise InvalidArgumentError(f"render_mode must be None, 'ansi' or 'human', got {render_mode!r}")
        if max_cycles is not None:
            if not isinstance(max_cycles, int) or isinstance(max_cycles, bool) or max_cycles < 1:
                raise InvalidArgumentError(f"max_cycles must be a positive int or None, got {max_cycles!r}")
            cap = max_cycles * len(game.possible_agents)
            game.max_turns = cap if game.max_turns is None else min(game.max_turns, cap)
        self.game = game
        self.render_mode = render_mode
        self.max_cycles = max_cycles
        self.possible_agents = list(game.possible_agents)
        self.agents: list[str] = []
        self.metadata = {
            "name": f"{game.family.lower()}_v0",
            "render_modes": ["ansi", "human"],
            "is_parallelizable": self.parallelizable,
        }
        self._observation_spaces = {a: TextSpace(MAX_OBSERVATION_LENGTH) for a in self.possible_agents}
        fixed_moves = type(game).move_list is not TurnGame.move_list
        self._action_spaces = {
            a: MoveSpace(game.max_action_length, game, a) if fixed_moves else TextSpace(game.max_action_length)
            for a in self.possible_agents
        }
        self._np_random: np.random.Generator | None = None

    def observation_space(self, agent: str) -> TextSpace:
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> TextSpace:
        return self._action_spaces[agent]

    @property
    def task_ids(self) -> list[str]:
        return self.game.tasks.task_ids

    @property
    def info_key_names(self) -> frozenset[str]:
        return self.game.info_key_names

    def set_info_keys(self, keys: Any) -> None:
        """:meth:`TurnGame.set_info_keys` (worker pools call it with their agent's keys)."""
        self.game.set_info_keys(keys)

    @property
    def manifest(self):
        return self.game.tasks.manifest

    def _begin(self, seed: int | None, options: Mapping[str, Any] | None) -> None:
        if seed is not None or self._np_random is None:
            self._np_random, _ = seeding.np_random(seed)
        self.game.begin(_select_task(self.game, self._np_random, options))
        self.agents = list(self.possible_agents)

    def _text(self) -> str:
        return "\n\n".join(f"[{agent}]\n{self.game.observation(agent)}" for agent in self.possible_agents)

    def _show(self) -> None:
        """``human`` mode: print every agent's view after each reset and step (Gymnasium's convention)."""
        if self.render_mode == "human" and self.game.task is not None:
            print(self._text(), flush=True)

    def render(self) -> str | None:
        """``ansi`` mode: every agent's current observation; ``human`` mode printed it already (None)."""
        if self.render_mode != "ansi" or self.game.task is None:
            return None
        return self._text()

    def close(self) -> None:
        """Free the engine; safe to call twice."""
        self.game.close()


class TextAECEnv(_PettingZooView, AECEnv[str, str, str]):
    """A :class:`TurnGame` as a PettingZoo ``AECEnv`` (see the module docstring)."""

    parallelizable = False  # turn-based: a refused move keeps the turn, so agents do not step in fixed cycles

    def __init__(self, game: TurnGame, render_mode: str | None = None, max_cycles: int | None = None):
        _PettingZooView.__init__(self, game, render_mode, max_cycles)
        self.rewards: dict[str, float] = {}
        self._cumulative_rewards: dict[str, float] = {}
        self.terminations: dict[str, bool] = {}
        self.truncations: dict[str, bool] = {}
        self.infos: dict[str, dict[str, Any]] = {}
        self.agent_selection = self.possible_agents[0]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        self._begin(seed, options)
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0.0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.infos = {agent: self.game.info(agent) for agent in self.agents}
        self._skip_agent_selection = None
        self.agent_selection = self.game.to_move
        self._show()

    def observe(self, agent: str) -> TextObs:
        return TextObs(self.game.observation(agent))

    def step(self, action: Any) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        self._cumulative_rewards[agent] = 0.0
        rewards = self.game.move(action)
        self.rewards = {a: rewards[a] for a in self.agents}
        for a in self.agents:
            self.terminations[a] = self.game.terminated
            self.truncations[a] = self.game.truncated
            self.infos[a] = self.game.info(a)
        self.agent_selection = self.game.to_move or agent
        self._accumulate_rewards()
        self._show()

    def render(self) -> str | None:
        return _PettingZooView.render(self)

    def close(self) -> None:
        _PettingZooView.close(self)


class TextParallelEnv(_PettingZooView, ParallelEnv[str, str, str]):
    """A :class:`TurnGame` as a PettingZoo ``ParallelEnv``: each step applies the action of the agent to move.

    The other agents' actions are ignored (they may be left out of the dict); their observations say whose
    move it is. A missing action of the agent to move is answered like ``None`` (an invalid action). All agents
    leave ``agents`` together when the game ends.
    """

    def __init__(self, game: TurnGame, render_mode: str | None = None, max_cycles: int | None = None):
        _PettingZooView.__init__(self, game, render_mode, max_cycles)

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, TextObs], dict[str, dict[str, Any]]]:
        self._begin(seed, options)
        self._show()
        return self._observations(), {agent: self.game.info(agent) for agent in self.agents}

    def step(self, actions: Mapping[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise ResetNeeded("step() needs a game in progress: call reset() first")
        mover = self.game.to_move
        rewards = self.game.move(actions.get(mover) if isinstance(actions, Mapping) else None)
        observations = self._observations()
        infos = {agent: self.game.info(agent) for agent in self.agents}
        terminations = dict.fromkeys(self.agents, self.game.terminated)
        truncations = dict.fromkeys(self.agents, self.game.truncated)
        rewards = {agent: rewards[agent] for agent in self.agents}
        if self.game.over:
            self.agents = []
        self._show()
        return observations, rewards, terminations, truncations, infos

    def _observations(self) -> dict[str, TextObs]:
        return {agent: TextObs(self.game.observation(agent)) for agent in self.possible_agents}

    def render(self) -> str | None:
        return _PettingZooView.render(self)

    def close(self) -> None:
        _PettingZooView.close(self)


def pettingzoo_constructors(
    game_class: type[TurnGame], module: str
) -> tuple[Callable[..., TextAECEnv], Callable[..., TextParallelEnv]]:
    """The PettingZoo ``env(...)`` and ``parallel_env(...)`` of a game: the game's arguments plus ``render_mode``
    and ``max_cycles``. ``module`` is the module that binds them to the names ``env`` and ``parallel_env``
    (``__name__``), so they pickle by reference (worker processes import them from there).

    Arguments are passed on to ``game_class``, whose explicit signature rejects a misspelled one; the
    constructors show that signature in ``help()``.
    """
    signature = inspect.signature(game_class)
    parameters = [
        *signature.parameters.values(),
        inspect.Parameter("render_mode", inspect.Parameter.KEYWORD_ONLY, default=None),
        inspect.Parameter("max_cycles", inspect.Parameter.KEYWORD_ONLY, default=None),
    ]

    def env(*args: Any, render_mode: str | None = None, max_cycles: int | None = None, **kwargs: Any) -> TextAECEnv:
        return TextAECEnv(game_class(*args, **kwargs), render_mode=render_mode, max_cycles=max_cycles)

    def parallel_env(
        *args: Any, render_mode: str | None = None, max_cycles: int | None = None, **kwargs: Any
    ) -> TextParallelEnv:
        return TextParallelEnv(game_class(*args, **kwargs), render_mode=render_mode, max_cycles=max_cycles)

    for function, kind, view in ((env, "AEC", TextAECEnv), (parallel_env, "parallel", TextParallelEnv)):
        function.__signature__ = signature.replace(parameters=parameters, return_annotation=view)  # type: ignore[attr-defined]
        function.__doc__ = f"{game_class.family} as a PettingZoo {kind} env (arguments: see {game_class.__name__})."
        function.__module__ = module
        function.__qualname__ = function.__name__
    return env, parallel_env


# --------------------------------------------------------------------------- self-play rollouts
class TurnHook(Protocol):
    """What :func:`multiagent_rollout` needs of a turn-level reward hook (the interface of
    :class:`agentgym.wrappers.hooks.TurnRewardHook`)."""

    name: str

    def score(self, trajectories: Sequence[Trajectory]) -> list[list[float]]: ...


class _Game:
    """The per-seat trajectories of one game in progress (the :class:`~agentgym.rollout.Episode` of
    :func:`multiagent_rollout`): a seat's turn stays open from its move until it is to move again (or the end)."""

    def __init__(
        self,
        spec: EpisodeSpec,
        agents: Mapping[str, Agent],
        env_id: str,
        token_budget: int | None,
        hooks: Mapping[str, Sequence[TurnHook]],
    ):
        self.spec, self.agents, self.env_id, self.token_budget, self.hooks = spec, agents, env_id, token_budget, hooks
        self.trajectories: dict[str, Trajectory] = {}
        self.open: dict[str, Turn] = {}  # seat -> its last move, waiting for what it sees next
        self.waiting: tuple[str, str, dict[str, Any]] | None = None  # (seat to move, observation, info)

    def _agent(self, seat: str) -> Agent:
        if seat not in self.agents:
            raise InvalidArgumentError(f"no agent for seat {seat!r}; agents has {sorted(self.agents)}")
        return self.agents[seat]

    def _see(
        self, seat: str, observation: str, info: dict[str, Any], terminated: bool = False, truncated: bool = False
    ) -> None:
        """``seat`` is to move (or the game ended): close its open turn or start its trajectory."""
        info = jsonable(info)
        turn = self.open.pop(seat, None)
        if turn is not None:
            turn.observation, turn.info = observation, info
            turn.terminated, turn.truncated = terminated, truncated
        elif seat not in self.trajectories:
            self.trajectories[seat] = self.spec.start_trajectory(
                self.env_id, self._agent(seat).name, observation, info, subgroup=seat, token_budget=self.token_budget
            )

    def receive(self, answer: Any) -> bool:
        if len(answer) == 2:  # reset
            (observations, infos), terminations, truncations = answer, {}, {}
        else:
            observations, rewards, terminations, truncations, infos = answer
            for seat, turn in self.open.items():
                turn.reward += float(rewards.get(seat, 0.0))
        seat = next(iter(infos.values()))["to_move"]
        spent = [
            t
            for t in self.trajectories.values()
            if seat is not None and self.token_budget is not None and t.tokens_used > self.token_budget
        ]  # a game that ended anyway is not cut short
        if seat is not None and not spent:
            self._see(seat, observations[seat], infos[seat])
            self.waiting = (seat, observations[seat], infos[seat])
            return False
        for trajectory in spent:  # the game is cut short: every seat's episode is truncated
            trajectory.token_budget_exceeded = True
        for name in infos:  # the game is over: every seat sees the end
            self._see(
                name,
                observations[name],
                infos[name],
                bool(terminations.get(name)),
                bool(truncations.get(name)) or bool(spent),
            )
        return True

    def pending(self) -> tuple[Agent, str, Any, str]:
        assert self.waiting is not None
        seat, observation, info = self.waiting
        return self._agent(seat), observation, info, f"{self.spec.episode_id}/{seat}"

    def record(self, decision: Decision) -> dict[str, str]:
        assert self.waiting is not None
        seat = self.waiting[0]
        self.open[seat] = decision_turn(decision)
        self.trajectories[seat].turns.append(self.open[seat])
        return {seat: decision.text}

    def finish(self) -> dict[str, Trajectory]:
        for seat, trajectory in self.trajectories.items():
            self.agents[seat].end_episode(f"{self.spec.episode_id}/{seat}")
            for hook in self.hooks.get(seat, ()):
                (rewards,) = hook.score([trajectory])
                if len(rewards) != len(trajectory.turns):
                    raise InvalidArgumentError(
                        f"hook {hook.name!r} gave {len(rewards)} rewards for {len(trajectory.turns)} turns"
                    )
                for turn, reward in zip(trajectory.turns, rewards):
                    turn.turn_rewards[hook.name] = float(reward)
        return dict(self.trajectories)


def multiagent_rollout(
    env_fn: Callable[[], TextParallelEnv] | EnvPool,
    agents: Mapping[str, Agent],
    specs: Sequence[EpisodeSpec],
    *,
    num_workers: int = 1,
    envs_per_worker: int = 1,
    in_process: bool = False,
    env_id: str = "",
    token_budget: int | None = None,
    hooks: Mapping[str, Sequence[TurnHook]] | None = None,
    on_episode: Callable[[dict[str, Trajectory], float], None] | None = None,
    info_keys: Collection[str] | None = None,
    batch_wait_s: float = BATCH_WAIT_S,
) -> list[dict[str, Trajectory]]:
    """Play every spec with ``agents[seat]`` in each seat; return ``{seat: trajectory}`` per spec, in order.

    The scheduler is :func:`agentgym.rollout.run_episodes`, the one :func:`agentgym.rollout.rollout` uses:
    ``env_fn`` builds a :class:`TextParallelEnv` (picklable, e.g. a ``functools.partial`` of a family's
    ``parallel_env``) or is an open :class:`~agentgym.rollout.EnvPool` of them to reuse; every pending move of
    the pool goes to its agent at once (``act_batch`` per agent object, so a self-play LLM batches both seats);
    each seat has its own ``episode_id`` for the agent, ``<episode id>/<seat>``.

    One trajectory per seat, in the single-agent format, linked by the spec's ``episode_id`` (shared by the
    seats; ``info["agent_id"]`` names the seat): a seat's ``initial_observation``/``initial_info`` are what it
    saw at its first move; a seat's turn is one of its own moves, its ``observation``/``info`` what the seat sees
    when it is next to move (or at the end), its ``reward`` what it earned from its move until then (the other
    agents' replies included: the span of one ``step`` of the single-agent view); ``group_id`` is
    ``<spec group>/<seat>``, so GRPO-style groups compare the same seat across the N episodes of one (task, seed).

    ``token_budget`` caps each seat's prompt+response tokens: when a seat's decisions exceed it the game ends,
    truncated for every seat, and that seat's trajectory says so. ``info_keys``: which costly info values the
    games compute (:meth:`TurnGame.set_info_keys`; None: all). ``hooks={seat: [hook, ...]}`` score each
    finished seat trajectory (:class:`TurnHook`), into ``turn.turn_rewards[hook.name]``.
    ``on_episode({seat: trajectory}, seconds)`` runs as each game ends. ``num_workers``, ``envs_per_worker`` and
    ``batch_wait_s`` are :func:`agentgym.rollout.run_episodes`'.

    Example:
        >>> from functools import partial
        >>> from agentgym.rollout import group_specs
        >>> from agentgym.envs import negotiation
        >>> agent = negotiation.ScriptedNegotiator()
        >>> specs = group_specs(["pool/200000"], seeds=[0], group_size=2)
        >>> episodes = multiagent_rollout(partial(negotiation.parallel_env, split="test"),
        ...                               {"player_0": agent, "player_1": agent}, specs, in_process=True)
        >>> sorted(episodes[0]), episodes[0]["player_0"].episode_id == episodes[0]["player_1"].episode_id
        (['player_0', 'player_1'], True)
    """
    hooks = dict(hooks or {})
    return run_episodes(
        env_fn,
        specs,
        lambda spec: _Game(spec, agents, env_id, token_budget, hooks),
        num_workers=num_workers,
        envs_per_worker=envs_per_worker,
        in_process=in_process,
        info_keys=info_keys,
        on_episode=on_episode,
        batch_wait_s=batch_wait_s,
    )


def by_episode(trajectories: Iterable[Trajectory]) -> dict[str, dict[str, Trajectory]]:
    """Regroup per-seat trajectories (e.g. loaded from JSONL) as ``{episode_id: {seat: trajectory}}``."""
    grouped: dict[str, dict[str, Trajectory]] = {}
    for trajectory in trajectories:
        seat = trajectory.initial_info.get("agent_id")
        if seat is None:
            raise InvalidArgumentError(
                f"trajectory {trajectory.episode_id!r} has no info['agent_id'] (not multi-agent)"
            )
        grouped.setdefault(trajectory.episode_id, {})[seat] = trajectory
    return grouped
