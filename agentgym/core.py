"""The agentgym environment contract.

Every environment family subclasses :class:`TextEnv`, a :class:`gymnasium.Env` whose observations and
actions are Python ``str``. The base class owns everything that must behave the same in every family:

* task selection: ``reset(options={"task_id": ...})`` picks a task, otherwise the seed picks one
  from the split, drawing only from ``self.np_random`` (never from global random state);
* action checking, the one guard in front of every engine (:func:`~agentgym.action_check.check_action`, then
  the family's :meth:`TextEnv._clean_action`): a bad action is answered with an observation that says what was
  wrong and ``action_valid=False``; it never reaches the engine and never raises;
* engine faults: a family raises :class:`~agentgym.error.EngineFault` when its engine crashes or
  hangs; it propagates unchanged, the episode is over, and the next ``reset()`` starts afresh;
* the turn counter and the turn limit (``truncated=True`` when ``max_turns`` is reached);
* the standard ``info`` keys (:data:`INFO_KEYS`), the same in every family, in a plain ``dict``. Values that
  cost more than a step (ScienceWorld's admissible actions, ALFWorld's expert move: a family's
  :attr:`TextEnv.costly_info_keys`) are computed only when asked for, with the constructor option
  ``info_keys=`` (default: all of them) or :meth:`TextEnv.set_info_keys`; a costly key not asked for is
  *absent* from ``info`` (not computed), while a key the family cannot supply is present as ``None`` (not
  available). A family adds top-level keys of its own only by declaring them (:attr:`TextEnv.extra_info_keys`);
* copies: ``copy.deepcopy(env)``/``pickle`` raise :class:`~agentgym.error.NotCopyableError` (make a new env
  with ``gym.make``) unless the family's whole state is plain Python (:attr:`TextEnv.copyable`);
  :meth:`TextEnv.clone_state`/:meth:`TextEnv.restore_state` snapshot an episode where the family's engine
  can (:meth:`~agentgym.snapshots.CopiesAndSnapshots._clone_engine`, :mod:`agentgym.snapshots`), and raise :class:`~agentgym.error.StateCloningUnsupported` elsewhere.

A family implements four small hooks: :meth:`TextEnv._start` (begin an episode on a task),
:meth:`TextEnv._advance` (apply one checked action), :meth:`TextEnv._close_engine` and, optionally,
:meth:`TextEnv._clean_action` for engine-specific escaping. Each returns a :class:`Transition`. Optionally
:meth:`TextEnv._clone_engine` and :meth:`TextEnv._restore_engine` offer episode snapshots.

Example:
    >>> import gymnasium as gym, agentgym
    >>> env = gym.make("agentgym/TextWorld-v0", split="test")
    >>> obs, info = env.reset(seed=0)
    >>> obs, reward, terminated, truncated, info = env.step(info["expert_action"])

Change logs:
    v0: initial contract; per-engine byte limits and character sets, ``Transition.truncated`` and
    ``EngineFault`` ending the episode added later in v0 (actions that reached an engine before and were
    truncated or mis-decoded by it are now refused). Issue 20: ``TextSpace`` moved to :mod:`agentgym.spaces`
    (re-exported here) and flattens to code points; copies refuse unless ``copyable``;
    ``clone_state``/``restore_state`` added. Issue 18: ``info`` is a plain dict; the lazily computed
    ``LazyInfo`` values are replaced by the explicit ``info_keys=`` option (a costly key not asked for is
    absent); declared top-level keys (``extra_info_keys``, ``Transition.extra_info``) replace ``_info``
    overrides.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Collection, Mapping
from typing import Any, ClassVar, TypedDict

import gymnasium as gym

from agentgym.action_check import ACTION_CHARSETS, DEFAULT_MAX_ACTION_LENGTH, check_action
from agentgym.error import (
    EngineFault,
    InvalidArgumentError,
    ResetNeeded,
    did_you_mean,
)
from agentgym.snapshots import CopiesAndSnapshots, EnvState, computed_value  # noqa: F401  (EnvState: re-exported)
from agentgym.spaces import TextSpace
from agentgym.tasks import Manifest, Task, TaskSplit

#: The standard info keys, present in every family's ``info`` (``None`` where a family cannot supply one;
#: absent where the key is one of the family's :attr:`TextEnv.costly_info_keys` and was not asked for).
INFO_KEYS: tuple[str, ...] = (
    "task_id",
    "goal",
    "admissible_actions",
    "action_valid",
    "won",
    "score",
    "expert_action",
    "ground_truth",
    "anchor_obs",
    "turn",
)

#: Longest observation the observation space admits.
MAX_OBSERVATION_LENGTH = 1_000_000


class StepInfo(TypedDict, total=False):
    """The ``info`` keys that wrappers, trainers and the evaluator read.

    ``turn_rewards`` is added by reward hooks (``agentgym.wrappers``): ``{hook name: float}``; with it come
    ``turn_reward_details`` (``{hook name: dict}``, what the hook computed the reward from) and, on the step
    that ends the episode, ``episode_turn_rewards`` (``{hook name: [reward of every turn]}``, for hooks such
    as RLVMR whose turn rewards are only known at the end). A family adds its own diagnostics under its
    family name (``info["textworld"]``), and declared top-level keys (:attr:`TextEnv.extra_info_keys`): the
    ones below are the multi-agent seat envs' ``agent_id`` (the learner's seat) and ``to_move`` (whose move
    it is), and SWEGym's ``tools`` (the tool schemas, for LLM tool calling).
    """

    task_id: str
    goal: str | None
    admissible_actions: list[str] | None
    action_valid: bool
    won: bool
    score: float
    expert_action: str | None
    ground_truth: str | None
    anchor_obs: str
    turn: int
    turn_rewards: dict[str, float]
    turn_reward_details: dict[str, dict[str, Any]]
    episode_turn_rewards: dict[str, list[float]]
    agent_id: str
    to_move: str | None
    tools: list[dict[str, Any]]


def wanted_info_keys(
    owner: str, keys: Collection[str] | None, known: frozenset[str], costly: frozenset[str]
) -> frozenset[str]:
    """The costly info keys to compute when ``keys`` are asked for (None: all of ``costly``). A string, or a
    name not in ``known``, raises :class:`~agentgym.error.InvalidArgumentError` naming ``owner`` (a typo would
    otherwise leave a key silently absent). Shared by :class:`TextEnv` and :class:`~agentgym.turngame.TurnGame`."""
    if keys is None:
        return frozenset(costly)
    if isinstance(keys, str):
        raise InvalidArgumentError(f"info_keys must be a collection of key names, got the string {keys!r}")
    unknown = sorted(set(keys) - known)
    if unknown:
        raise InvalidArgumentError(
            f"unknown info_keys {unknown} for {owner}; its info keys are {sorted(known)}"
            f"{did_you_mean(unknown[0], known)}"
        )
    return frozenset(keys) & costly


@dataclasses.dataclass
class Transition:
    """What a family hook reports after starting an episode or applying an action.

    ``anchor_obs`` (the raw state text GiGPO-style grouping compares) defaults to ``observation``; a
    family whose observation is an event rather than a state (TextWorld: "You open the box.") passes a
    key of the state instead. ``truncated`` ends the episode without a terminal state (a scripted partner
    that cannot go on, say); the turn limit truncates on its own.
    ``admissible_actions`` and ``expert_action`` may be zero-argument callables, for values that cost more
    than a step: the base class calls one only when the env's ``info_keys`` ask for that key, at most once
    per transition. ``extra_info`` holds the values of the family's declared top-level info keys
    (:attr:`TextEnv.extra_info_keys`).
    """

    observation: str
    reward: float = 0.0
    terminated: bool = False
    action_valid: bool = True
    won: bool = False
    score: float = 0.0
    admissible_actions: list[str] | Callable[[], list[str]] | None = None
    expert_action: str | Callable[[], str | None] | None = None
    ground_truth: str | None = None
    anchor_obs: str | None = None
    truncated: bool = False
    family_info: dict[str, Any] = dataclasses.field(default_factory=dict)
    extra_info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.anchor_obs is None:
            self.anchor_obs = self.observation


class TextEnv(CopiesAndSnapshots, gym.Env[str, str]):
    """Base class of every agentgym environment family.

    Subclasses set :attr:`family` and :attr:`engine_version`, build a :class:`~agentgym.tasks.TaskSplit`
    in ``__init__`` and pass it to ``super().__init__``, then implement the hooks below.

    Args:
        tasks: the split this env draws tasks from.
        max_turns: episode length limit; reaching it sets ``truncated=True``.
        max_action_length: longer actions are answered as invalid without reaching the engine.
        info_keys: which of the family's :attr:`costly_info_keys` each ``info`` carries (None: all of them);
            names of cheap keys are accepted and change nothing. See :meth:`set_info_keys`.
    """

    #: Family name; family-specific info goes under ``info[family.lower()]``.
    family: ClassVar[str] = "base"
    #: The family's split names (``agentgym list`` shows each).
    splits: ClassVar[tuple[str, ...]] = ("train", "valid", "test")
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"]}
    #: Whether actions may span lines (newlines and tabs pass :func:`check_action`), e.g. source code.
    multiline_actions: ClassVar[bool] = False
    #: The engine's input buffer in UTF-8 bytes (``None``: no limit beyond ``max_action_length``).
    max_action_bytes: ClassVar[int | None] = None
    #: The characters the engine's input takes, one of :data:`ACTION_CHARSETS`.
    action_charset: ClassVar[str] = "unicode"
    #: The standard info keys this family computes only when asked for (``info_keys=``), because they cost
    #: more than a step (a listing walk of the engine's state, a planner call).
    costly_info_keys: ClassVar[frozenset[str]] = frozenset()
    #: Top-level info keys this family adds beside :data:`INFO_KEYS` (documented in :class:`StepInfo`); their
    #: values come in :attr:`Transition.extra_info`.
    extra_info_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        tasks: TaskSplit,
        *,
        max_turns: int,
        max_action_length: int = DEFAULT_MAX_ACTION_LENGTH,
        render_mode: str | None = None,
        info_keys: Collection[str] | None = None,
    ):
        if not isinstance(max_turns, int) or max_turns < 1:
            raise InvalidArgumentError(f"max_turns must be a positive int, got {max_turns!r}")
        if render_mode not in (None, "ansi"):
            raise InvalidArgumentError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        if self.action_charset not in ACTION_CHARSETS:
            raise InvalidArgumentError(
                f"{type(self).__name__}.action_charset must be one of {ACTION_CHARSETS}, got {self.action_charset!r}"
            )
        self.tasks = tasks
        self.max_turns = max_turns
        self.max_action_length = max_action_length
        self.render_mode = render_mode
        self.observation_space = TextSpace(MAX_OBSERVATION_LENGTH)
        self.action_space = TextSpace(max_action_length)
        self._task: Task | None = None
        self._turn = 0
        self._done = True
        self._last: Transition | None = None
        self._goal: str | None = None
        self.set_info_keys(info_keys)

    # ----------------------------------------------------------------- family hooks
    def _start(self, task: Task) -> tuple[Transition, str | None]:
        """Begin an episode on ``task``; return the first transition and the goal text."""
        raise NotImplementedError

    def _advance(self, action: str) -> Transition:
        """Apply one checked action (non-empty, plain text) to the engine."""
        raise NotImplementedError

    def _close_engine(self) -> None:
        """Free the engine's processes, files and ports. Called by ``close()``; must be idempotent."""

    def _clean_action(self, action: str) -> tuple[str | None, str | None]:
        """Engine-specific action checks after the common ones; same return shape as :func:`check_action`.

        This is where a family validates what the common checks cannot know: escapes its engine reads
        specially, or the arguments of a tool call (a path the OS would refuse, say). It must not raise.
        """
        return action, None

    # ----------------------------------------------------------------- public API
    @property
    def info_key_names(self) -> frozenset[str]:
        """Every top-level key this env's ``info`` can hold (standard, declared and the family's own)."""
        return frozenset(INFO_KEYS) | frozenset(self.extra_info_keys) | {self.family.lower()}

    @property
    def info_keys(self) -> frozenset[str]:
        """The costly info keys this env computes (a subset of :attr:`costly_info_keys`)."""
        return self._costly_wanted

    def set_info_keys(self, keys: Collection[str] | None) -> None:
        """Compute only these of the family's :attr:`costly_info_keys` from the next ``info`` on (None: all).

        A costly key left out is absent from ``info``; every other key is always there. An unknown name
        raises :class:`~agentgym.error.InvalidArgumentError` (a typo would otherwise leave a key silently
        absent). Worker pools call this with their agent's keys (:class:`~agentgym.rollout.EnvPool`).
        """
        self._costly_wanted = wanted_info_keys(type(self).__name__, keys, self.info_key_names, self.costly_info_keys)

    @property
    def task_ids(self) -> list[str]:
        """The ids of the split's tasks, in a stable order."""
        return self.tasks.task_ids

    @property
    def manifest(self) -> Manifest:
        """The split's task manifest: hash of the task ids and definitions, engine version, size."""
        return self.tasks.manifest

    @property
    def task(self) -> Task | None:
        """The current episode's task (``None`` before the first reset)."""
        return self._task

    def reset(self, *, seed: int | None = None, options: Mapping[str, Any] | None = None) -> tuple[str, StepInfo]:
        """Start an episode: ``options={"task_id": ...}`` picks the task, otherwise the seed does."""
        super().reset(seed=seed)
        options = dict(options or {})
        task_id = options.pop("task_id", None)
        if options:
            raise InvalidArgumentError(f"unknown reset options {sorted(options)}; the only option is 'task_id'")
        task = self.tasks.get(task_id) if task_id is not None else self.tasks.select(self.np_random)
        self._task, self._turn, self._done = task, 0, False
        self._last, self._goal = self._start(task)
        return self._last.observation, self._info(self._last)

    def step(self, action: str) -> tuple[str, float, bool, bool, StepInfo]:
        """Apply one action. Bad actions are answered with ``action_valid=False``, never raised.

        An :class:`~agentgym.error.EngineFault` from the engine propagates and ends the episode.
        """
        if self._task is None or self._done:
            raise ResetNeeded("step() needs an episode in progress: call reset() first")
        self._turn += 1
        clean, problem = check_action(
            action,
            self.max_action_length,
            self.multiline_actions,
            max_bytes=self.max_action_bytes,
            charset=self.action_charset,
        )
        if problem is None:
            clean, problem = self._clean_action(clean)
        try:
            transition = self._rejection(problem) if problem is not None else self._advance(clean)
        except EngineFault:
            self._done = True
            raise
        self._last = transition
        terminated = bool(transition.terminated)
        truncated = not terminated and (bool(transition.truncated) or self._turn >= self.max_turns)
        self._done = terminated or truncated
        return self._last.observation, float(transition.reward), terminated, truncated, self._info(self._last)

    def render(self) -> str | None:
        """``ansi`` mode returns the last observation."""
        if self.render_mode == "ansi" and self._last is not None:
            return self._last.observation
        return None

    def close(self) -> None:
        """Free every process, file and port the env holds. Safe to call twice."""
        self._close_engine()
        self._done = True
        super().close()

    # ----------------------------------------------------------------- helpers
    def _rejection(self, problem: str) -> Transition:
        """The answer to an action refused before the engine: the state (anchor, admissible actions,
        expert action, score) is unchanged, so it carries over from the last transition."""
        assert self._last is not None
        return dataclasses.replace(
            self._last,
            observation=f"Invalid action: {problem}.",
            reward=0.0,
            terminated=False,
            truncated=False,
            action_valid=False,
        )

    def _costly_info_value(self, transition: Transition, key: str) -> tuple[bool, Any]:
        """``(wanted, value)`` of a key whose value the family may hand over as a callable. A computed value
        is kept in the transition, so a refused action (which answers with it again) does not recompute it."""
        if key in self.costly_info_keys and key not in self._costly_wanted:
            return False, None
        value = computed_value(getattr(transition, key))
        setattr(transition, key, value)
        return True, value

    def _info(self, transition: Transition) -> StepInfo:
        assert self._task is not None
        info: dict[str, Any] = {"task_id": self._task.task_id, "goal": self._goal}
        wanted, admissible = self._costly_info_value(transition, "admissible_actions")
        if wanted:
            info["admissible_actions"] = None if admissible is None else list(admissible)
        info.update(action_valid=bool(transition.action_valid), won=bool(transition.won), score=float(transition.score))
        wanted, expert = self._costly_info_value(transition, "expert_action")
        if wanted:
            info["expert_action"] = expert
        info.update(ground_truth=transition.ground_truth, anchor_obs=transition.anchor_obs, turn=self._turn)
        undeclared = sorted(set(transition.extra_info) - set(self.extra_info_keys))
        if undeclared:
            raise TypeError(
                f"{type(self).__name__} returned info keys {undeclared} that it does not declare in extra_info_keys"
            )
        # deep copies: a refused action answers with the last transition again, and infos of two calls must
        # not share objects (Gymnasium's passive checker warns; users keep infos and may modify them)
        info.update(copy.deepcopy(transition.extra_info))
        info[self.family.lower()] = copy.deepcopy(transition.family_info)
        return info  # type: ignore[return-value]
