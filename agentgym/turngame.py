"""The multi-agent contract: a turn-based text game behind three views.

A multi-agent family implements one :class:`TurnGame` (the rules: who moves, what each agent sees, what each
agent is paid). The game is then served three ways, all driven by the same code:

* :class:`~agentgym.multiagent.TextAECEnv` — a PettingZoo ``AECEnv`` (agents step one at a time,
  ``agent_iter``/``last``);
* :class:`~agentgym.multiagent.TextParallelEnv` — a PettingZoo ``ParallelEnv``; the games are turn-based, so in
  each ``step`` only the agent to move (``info["to_move"]``) acts and the others' actions are ignored (send
  anything or leave them out of the dict);
* :class:`SingleAgentView` (this module) — a :class:`~agentgym.core.TextEnv` (``agentgym/<Family>-v0``) where one
  seat is the learner and scripted :class:`~agentgym.agents.Agent` s play the others.

Self-play rollouts over the parallel view (one trajectory per seat) are :func:`agentgym.multiagent.multiagent_rollout`,
on the same scheduler as :func:`agentgym.rollout.rollout`; competitive round robins are :mod:`agentgym.matches`.

Shared behaviour (the single-agent contract, per agent):

* Observations and actions are text. In the PettingZoo views an observation is a :class:`TextObs`, a ``str``
  subclass that also carries the text space's ``dtype`` (PettingZoo's ``api_test`` compares dtypes).
* Every agent's ``info`` has the standard keys (:data:`agentgym.core.INFO_KEYS`) from its own point of view, the
  family's keys under ``info[family.lower()]``, plus the declared keys ``agent_id`` (this agent) and ``to_move``
  (the agent whose move it is, ``None`` once the game is over; :class:`~agentgym.core.StepInfo`). ``turn`` counts
  the moves of all agents so far (in the single-agent view: the learner's moves).
* Bad actions never raise: they go through :func:`agentgym.core.check_action` (empty, huge, control characters,
  surrogates, non-strings; a game's ``message_agents``, whose actions are messages, may break lines) and then
  the game's own checks; the agent is answered ``"Invalid action: ..."`` with
  ``action_valid=False``, keeps the move, and the move counts towards ``max_turns``.
* ``max_turns`` caps the moves of all agents together; reaching it truncates the episode for every agent.
* ``reset(seed=..., options={"task_id": ...})`` works as in the single-agent envs. PettingZoo's test passes other
  option keys; they are ignored with a warning.
* PettingZoo conventions: ``env(..., max_cycles=N)`` and ``parallel_env(..., max_cycles=N)`` truncate after ``N``
  cycles (``N`` moves of every agent, refused moves included), on top of the game's ``max_turns``;
  ``render_mode`` is ``"ansi"`` (``render()`` returns the text) or ``"human"`` (every reset and step prints it;
  ``render()`` returns None). A game with a fixed move list (:meth:`TurnGame.move_list`, Negotiation) adds
  ``info["action_mask"]``: an ``int8`` array aligned with that list, 1 for the moves legal now (all 0 for an
  agent that is not to move); ``env.action_space(agent).sample(info["action_mask"])`` draws a legal move's text.
* The games are turn-based and a refused move keeps the turn, so the AEC view does not step in fixed cycles: its
  metadata says ``is_parallelizable: False`` and PettingZoo's ``aec_to_parallel`` refuses it up front (it would
  fail at the first refused move). Use this module's ``parallel_env()``, or PettingZoo's
  ``turn_based_aec_to_parallel(env())``, which handles turn-based games.

Change logs:
    v0: initial multi-agent contract. Issue 18: moved from ``agentgym.envs.multiagent.base`` into the core;
    the seat env declares ``agent_id``/``to_move`` (``extra_info_keys``) instead of overriding ``_info``.
"""

from __future__ import annotations

import abc
import copy
import dataclasses
from collections.abc import Callable, Collection, Mapping
from typing import Any, ClassVar

import numpy as np

from agentgym.agents import Agent
from agentgym.core import (
    DEFAULT_MAX_ACTION_LENGTH,
    INFO_KEYS,
    TextEnv,
    TextSpace,
    Transition,
    check_action,
    wanted_info_keys,
)
from agentgym.error import EngineFault, InvalidArgumentError, ResetNeeded
from agentgym.tasks import Task, TaskSplit
from agentgym.trajectory import Decision


class TextObs(str):
    """An observation text: a plain ``str`` that also has the ``dtype`` of :class:`~agentgym.core.TextSpace`.

    PettingZoo's ``api_test`` checks ``observation.dtype == observation_space.dtype``, which a bare ``str``
    cannot answer; everything else treats a ``TextObs`` as the string it is.
    """

    __slots__ = ()
    dtype = TextSpace(1).dtype


@dataclasses.dataclass
class Outcome:
    """What a game hook reports: each agent's transition (its view of the step) and who moves next.

    ``transitions[agent].reward`` is what that agent earned on this move; ``terminated`` on any transition
    ends the game for every agent. ``to_move`` is ignored once the game is over.
    """

    transitions: dict[str, Transition]
    to_move: str | None


class TurnGame(abc.ABC):
    """A turn-based text game for several agents (the engine behind every view; see the module docstring).

    A family subclass sets :attr:`family`, :attr:`possible_agents` and ``engine_version``, builds its
    :class:`~agentgym.tasks.TaskSplit` and implements :meth:`_start`, :meth:`_advance` and optionally
    :meth:`_clean_action` and :meth:`_close_engine`. The driver methods (:meth:`begin`, :meth:`move`,
    :meth:`observation`, :meth:`info`) hold the turn counter, the turn limit and the bad-action answers.

    Args:
        tasks: the split tasks are drawn from.
        max_turns: cap on the moves of all agents together (``None``: no cap).
        max_action_length: longer actions are answered as invalid.
        info_keys: which of :attr:`costly_info_keys` each ``info`` carries (None: all), as for
            :class:`~agentgym.core.TextEnv`; see :meth:`set_info_keys`.
    """

    family: ClassVar[str] = "base"
    splits: ClassVar[tuple[str, ...]] = ("train", "valid", "test")
    possible_agents: ClassVar[tuple[str, ...]] = ()
    #: Agents whose action is a free-text message rather than a command: line breaks and tabs are allowed.
    message_agents: ClassVar[tuple[str, ...]] = ()
    engine_version: str = ""
    #: Whether the game's whole state is plain Python objects (``copy.deepcopy`` copies it correctly); then its
    #: single-agent view can be copied and offers ``clone_state()``. A game around another engine leaves it False.
    copyable: ClassVar[bool] = False
    #: The standard info keys the game computes only when asked for (:attr:`TextEnv.costly_info_keys`); a game
    #: around another engine takes that engine's.
    costly_info_keys: frozenset[str] = frozenset()

    def __init__(
        self,
        tasks: TaskSplit,
        *,
        max_turns: int | None,
        max_action_length: int = DEFAULT_MAX_ACTION_LENGTH,
        info_keys: Collection[str] | None = None,
    ):
        if max_turns is not None and (not isinstance(max_turns, int) or max_turns < 1):
            raise InvalidArgumentError(f"max_turns must be a positive int, got {max_turns!r}")
        self.tasks = tasks
        self.max_turns = max_turns
        self.max_action_length = max_action_length
        self._task: Task | None = None
        self._last: dict[str, Transition] = {}
        self._goals: dict[str, str | None] = {}
        self._to_move: str | None = None
        self._turn = 0
        self.terminated = self.truncated = False
        #: Why the latest move was refused (``None``: it was played).
        self.last_refusal: str | None = None
        self._costly_wanted = frozenset(self.costly_info_keys)
        if info_keys is not None:
            self.set_info_keys(info_keys)

    # ----------------------------------------------------------------- family hooks
    @abc.abstractmethod
    def _start(self, task: Task) -> tuple[Outcome, dict[str, str | None]]:
        """Begin a game on ``task``: the first outcome and each agent's goal text."""

    @abc.abstractmethod
    def _advance(self, agent: str, action: str) -> Outcome:
        """Apply one checked action of ``agent`` (the agent to move)."""

    def _clean_action(self, agent: str, action: str) -> tuple[str | None, str | None]:
        """Game-specific action checks after the common ones (same shape as :func:`~agentgym.core.check_action`)."""
        return action, None

    def _close_engine(self) -> None:
        """Free engine processes and files; idempotent."""

    def move_list(self, agent: str) -> list[str] | None:
        """The fixed-length list of every move ``agent`` could ever make in this task, which
        ``info["action_mask"]`` is aligned with; None (the default) when moves are open text."""
        return None

    # ----------------------------------------------------------------- info keys
    @property
    def info_key_names(self) -> frozenset[str]:
        """Every top-level key an agent's ``info`` can hold."""
        return frozenset(INFO_KEYS) | {"agent_id", "to_move", "action_mask", self.family.lower()}

    def set_info_keys(self, keys: Collection[str] | None) -> None:
        """Compute only these of :attr:`costly_info_keys` from the next ``info`` on (None: all); the others are
        absent from every agent's ``info``. Unknown names raise, as in :meth:`TextEnv.set_info_keys`. The
        PettingZoo views offer it too, so worker pools (``EnvPool(info_keys=...)``) apply an agent's keys."""
        self._costly_wanted = wanted_info_keys(type(self).__name__, keys, self.info_key_names, self.costly_info_keys)

    # ----------------------------------------------------------------- driver
    @property
    def task(self) -> Task | None:
        return self._task

    @property
    def to_move(self) -> str | None:
        """The agent whose move it is (``None`` when the game is over)."""
        return None if self.over else self._to_move

    @property
    def over(self) -> bool:
        return self.terminated or self.truncated

    @property
    def turn(self) -> int:
        return self._turn

    def begin(self, task: Task) -> None:
        """Start a game on ``task``."""
        outcome, self._goals = self._start(task)
        self._task, self._turn = task, 0
        self.terminated = self.truncated = False
        self._apply(outcome)

    def move(self, action: Any) -> dict[str, float]:
        """Play ``action`` for the agent to move; return every agent's reward for this move."""
        agent = self.to_move
        if agent is None:
            raise ResetNeeded("the game is over (or was never started): call reset() first")
        self._turn += 1
        clean, problem = self._check(agent, action)
        if problem is None:
            clean, problem = self._clean_action(agent, clean)
        self.last_refusal = problem
        if problem is None:
            outcome = self._advance(agent, clean)
        else:
            transitions = {other: dataclasses.replace(t, reward=0.0) for other, t in self._last.items()}
            transitions[agent] = dataclasses.replace(
                transitions[agent], observation=f"Invalid action: {problem}.", action_valid=False
            )
            outcome = Outcome(transitions, agent)
        self._apply(outcome)
        if not self.terminated and self.max_turns is not None and self._turn >= self.max_turns:
            self.truncated = True
        return {name: float(t.reward) for name, t in self._last.items()}

    def _check(self, agent: str, action: Any) -> tuple[str | None, str | None]:
        """:func:`~agentgym.core.check_action`; the agents in :attr:`message_agents` may also break lines."""
        if agent in self.message_agents and isinstance(action, str):
            _, problem = check_action(
                action.replace("\r", " ").replace("\n", " ").replace("\t", " "), self.max_action_length
            )
            return (action.strip(), None) if problem is None else (None, problem)
        return check_action(action, self.max_action_length)

    def _apply(self, outcome: Outcome) -> None:
        missing = set(self.possible_agents) - set(outcome.transitions)
        assert not missing, f"{type(self).__name__} gave no transition for {sorted(missing)}"
        self._last = dict(outcome.transitions)
        self._to_move = outcome.to_move
        self.terminated = any(t.terminated for t in self._last.values()) or outcome.to_move is None

    def observation(self, agent: str) -> str:
        return self._last[agent].observation

    def transition(self, agent: str) -> Transition:
        return self._last[agent]

    def action_mask(self, agent: str) -> np.ndarray | None:
        """1 for the moves of :meth:`move_list` that ``agent`` may make now (its admissible actions), else 0."""
        moves = self.move_list(agent)
        if moves is None:
            return None
        legal = set(self._last[agent].admissible_actions or ()) if self.to_move == agent else set()
        return np.fromiter((move in legal for move in moves), dtype=np.int8, count=len(moves))

    def info(self, agent: str) -> dict[str, Any]:
        """``agent``'s info: the standard keys from its point of view, ``agent_id``, ``to_move``, family keys,
        and ``action_mask`` where the game has a fixed move list."""
        assert self._task is not None
        t = self._last[agent]
        mask = self.action_mask(agent)
        info = {
            "task_id": self._task.task_id,
            "goal": self._goals.get(agent),
            "admissible_actions": list(t.admissible_actions) if t.admissible_actions is not None else None,
            "action_valid": bool(t.action_valid),
            "won": bool(t.won),
            "score": float(t.score),
            "expert_action": t.expert_action,
            "ground_truth": t.ground_truth,
            "anchor_obs": t.anchor_obs,
            "turn": self._turn,
            "agent_id": agent,
            "to_move": self.to_move,
            self.family.lower(): copy.deepcopy(t.family_info),
        }
        for key in self.costly_info_keys - self._costly_wanted:
            del info[key]
        if mask is not None:
            info["action_mask"] = mask
        return info

    def close(self) -> None:
        self._close_engine()


#: Builds the scripted agent for a seat from the seed (``lambda seed: RandomAgent(seed)``).
PartnerFactory = Callable[[int], Agent]


class SingleAgentView(TextEnv):
    """One seat of a :class:`TurnGame` as a single-agent :class:`~agentgym.core.TextEnv`.

    Scripted partners (``partners[seat]``, agents of :mod:`agentgym.agents`) play the other seats; one ``step``
    applies the learner's move and then the partners' moves until the learner is to move again or the game
    ends. The reward is what the learner earned over that span; ``info`` is the learner's. Subclasses build
    the game and call ``super().__init__(game, seat, partners, ...)``.
    """

    #: A partner whose moves the game refuses this many times in a row ends the episode (truncated).
    MAX_PARTNER_TRIES = 50
    extra_info_keys = ("agent_id", "to_move")

    def __init__(
        self,
        game: TurnGame,
        seat: str,
        partners: Mapping[str, Agent],
        *,
        max_turns: int,
        render_mode: str | None = None,
        info_keys: Collection[str] | None = None,
    ):
        if seat not in game.possible_agents:
            raise InvalidArgumentError(f"seat must be one of {list(game.possible_agents)}, got {seat!r}")
        self.game = game
        self.seat = seat
        self.partners = dict(partners)
        self.engine_version = game.engine_version
        # the learner's info leaves out what it did not ask for; the game computes it anyway for the partners
        self.costly_info_keys = game.costly_info_keys
        super().__init__(
            game.tasks,
            max_turns=max_turns,
            max_action_length=game.max_action_length,
            render_mode=render_mode,
            info_keys=info_keys,
        )
        self._episode = ""

    def step(self, action: str):
        """As :meth:`TextEnv.step`; a message seat's line breaks and tabs become spaces (one line per action)."""
        if self.seat in self.game.message_agents and isinstance(action, str):
            action = " ".join(action.replace("\t", " ").splitlines())
        return super().step(action)

    def _start(self, task: Task) -> tuple[Transition, str | None]:
        for partner, agent in self.partners.items():
            agent.end_episode(f"{self._episode}/{partner}")
        # drawn from the env's seeded generator, so a seeded reset replays the partners' choices too
        self._episode = f"{task.task_id}#{int(self.np_random.integers(2**31))}"
        self.game.begin(task)
        reward, stuck = self._partners_play()
        if stuck is not None:
            raise EngineFault(f"{type(self).__name__} could not start: {stuck}", task.task_id)
        first = dataclasses.replace(self._learner_transition(), reward=reward)
        return first, self.game.info(self.seat)["goal"]

    def _advance(self, action: str) -> Transition:
        reward = self.game.move(action)[self.seat]
        earned, stuck = self._partners_play()
        transition = dataclasses.replace(self._learner_transition(), reward=reward + earned)
        if stuck is None:
            return transition
        return dataclasses.replace(transition, observation=f"{transition.observation}\n\n{stuck}", truncated=True)

    def _partners_play(self) -> tuple[float, str | None]:
        """Let the scripted partners move until the learner is to move.

        Returns the learner's reward meanwhile and, when a partner's moves were refused
        :attr:`MAX_PARTNER_TRIES` times in a row (the learner's last move gave it nothing it can act on, an
        instructor message of only a note, say), a sentence saying so: the episode then ends truncated
        rather than looping or raising.
        """
        earned, refused = 0.0, 0
        while self.game.to_move not in (None, self.seat):
            partner = self.game.to_move
            output = self.partners[partner].act(
                self.game.observation(partner), self.game.info(partner), episode_id=f"{self._episode}/{partner}"
            )
            earned += self.game.move(output.text if isinstance(output, Decision) else output)[self.seat]
            refused = refused + 1 if self.game.last_refusal is not None else 0
            if refused >= self.MAX_PARTNER_TRIES:
                return earned, (
                    f"The scripted {partner} could not make a valid move ({refused} refused in a row, "
                    f"the last because {self.game.last_refusal}); the episode ends here (truncated)."
                )
        return earned, None

    def _learner_transition(self) -> Transition:
        transition = self.game.transition(self.seat)
        return dataclasses.replace(
            transition, terminated=self.game.over, extra_info={"agent_id": self.seat, "to_move": self.game.to_move}
        )

    def _close_engine(self) -> None:
        self.game.close()

    # a view of a copyable game copies and snapshots the game, the partners (their random state included)
    # and the episode id; one around another engine (InstructorExecutor's TextWorld) refuses both
    @property
    def copyable(self) -> bool:  # type: ignore[override]
        return self.game.copyable

    def offers_clone_state(self) -> bool:
        return self.game.copyable

    def _clone_engine(self) -> Any:
        if not self.game.copyable:
            return super()._clone_engine()
        return {"game": self.game, "partners": self.partners, "episode": self._episode}

    def _restore_engine(self, engine_state: Any) -> None:
        if not self.game.copyable:
            super()._restore_engine(engine_state)
        self.game, self.partners, self._episode = (engine_state[key] for key in ("game", "partners", "episode"))
