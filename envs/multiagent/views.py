"""The PettingZoo views of a :class:`~agentgym.envs.multiagent.base.TurnGame`: :class:`TextAECEnv`,
:class:`TextParallelEnv`, their action space :class:`MoveSpace` and the ``env()``/``parallel_env()`` constructors
(the shared behaviour and PettingZoo conventions are in :mod:`agentgym.envs.multiagent.base`)."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
from gymnasium.utils import seeding
from pettingzoo import AECEnv, ParallelEnv

from agentgym.core import MAX_OBSERVATION_LENGTH, TextSpace
from agentgym.error import InvalidArgumentError, ResetNeeded
from agentgym.tasks import Task

from agentgym.envs.multiagent.base import TextObs, TurnGame

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
        self.metadata = {"name": f"{game.family.lower()}_v0", "render_modes": ["ansi", "human"],
                         "is_parallelizable": self.parallelizable}
        self._observation_spaces = {a: TextSpace(MAX_OBSERVATION_LENGTH) for a in self.possible_agents}
        fixed_moves = type(game).move_list is not TurnGame.move_list
        self._action_spaces = {
            a: MoveSpace(game.max_action_length, game, a) if fixed_moves
            else TextSpace(game.max_action_length)
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


def pettingzoo_constructors(game_class: type[TurnGame]) -> tuple[Callable[..., TextAECEnv], Callable[..., TextParallelEnv]]:
    """The PettingZoo ``env(...)`` and ``parallel_env(...)`` of a game: the game's arguments plus ``render_mode``
    and ``max_cycles``.

    Arguments are passed on to ``game_class``, whose explicit signature rejects a misspelled one; the
    constructors show that signature in ``help()``.
    """
    signature = inspect.signature(game_class)
    parameters = [*signature.parameters.values(),
                  inspect.Parameter("render_mode", inspect.Parameter.KEYWORD_ONLY, default=None),
                  inspect.Parameter("max_cycles", inspect.Parameter.KEYWORD_ONLY, default=None)]

    def env(*args: Any, render_mode: str | None = None, max_cycles: int | None = None, **kwargs: Any) -> TextAECEnv:
        return TextAECEnv(game_class(*args, **kwargs), render_mode=render_mode, max_cycles=max_cycles)

    def parallel_env(*args: Any, render_mode: str | None = None, max_cycles: int | None = None,
                     **kwargs: Any) -> TextParallelEnv:
        return TextParallelEnv(game_class(*args, **kwargs), render_mode=render_mode, max_cycles=max_cycles)

    for function, kind, view in ((env, "AEC", TextAECEnv), (parallel_env, "parallel", TextParallelEnv)):
        function.__signature__ = signature.replace(parameters=parameters, return_annotation=view)  # type: ignore[attr-defined]
        function.__doc__ = f"{game_class.family} as a PettingZoo {kind} env (arguments: see {game_class.__name__})."
        function.__module__ = game_class.__module__  # pickled by reference (worker processes) as module.name
        function.__qualname__ = function.__name__
    return env, parallel_env
