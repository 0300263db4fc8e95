"""ScienceWorld on the real engine.

Env card
--------
* **Id**: ``agentgym/ScienceWorld-v0``
* **Engine**: the PyPI ``scienceworld`` package: its bundled simulator jar runs in a JVM (Java 11+)
  reached through py4j, one JVM per env instance (see :mod:`.engine`).
* **Tasks**: all 30 task types with their variations (7,207 in all), ids ``<task type>/<variation>``
  such as ``boil/17``. Splits ``train``, ``valid``, ``test`` are ScienceWorld's official train, dev and
  test variations; ``train_L`` (training) and ``L0``, ``L1``, ``L2`` are RLVMR-style generalization
  levels over 20 seen and 10 held-out task types (see :mod:`.tasks`).
  ``task_types=[...]`` restricts a split to some task types.
* **Simplifications**: ``simplifications="easy"`` (or some of ``teleportAction``, ``openDoors``,
  ``openContainers``, ``selfWateringFlowerPots``, ``noElectricalAction``). They are part of every task
  definition (so of the manifest hash) and of ``engine_version`` (so of the evaluation protocol).
* **Observation**: at reset, the task description then the starting room ("look around"); after each
  action, the engine's answer. **Action**: one command, plain text (``info["admissible_actions"]``
  lists the valid ones).
* **Reward**: the change of the engine's score, divided by 100 (the engine scores 0-100 and goes
  negative when a task is failed). ``info["score"]`` is the engine score / 100, clipped to [0, 1];
  the engine's own score (negative on failure) is ``info["scienceworld"]["score"]``.
* **Termination**: the task is completed (``won``) or failed (engine score below 0,
  ``info["scienceworld"]["failed"]``). **Truncation**: ``max_turns`` (default 100) reached.
* **info**: the standard keys, in a plain dict. ``admissible_actions`` and ``expert_action`` are this
  family's ``costly_info_keys``: each is computed only when the constructor option ``info_keys=`` (or
  ``env.unwrapped.set_info_keys``) asks for it, and is absent from ``info`` when it does not. The default
  (``info_keys=None``) computes both, so a plain ``gym.make`` gives the full info; an agent that reads
  neither runs with ``info_keys=()``, one that reads the listing only with ``("admissible_actions",)``.
  Worker pools (``EnvPool``, ``rollout``, ``agentgym eval``) set each worker's env to their agent's
  ``info_keys``.

  - ``admissible_actions``: the engine's valid action-object combinations, deduplicated, in the
    engine's (sorted) order. Listing them costs more than the step itself (one listing per state when
    asked for). Whether they are asked for does not change the episode (see Engine paths).
  - ``expert_action``: the next action of the engine's gold sequence while the agent follows it (None
    once it strays, at the end, and always with ``expert=False``). The gold sequence is planned the first
    time an episode computes its expert action (0.2-20 s, once per variation, then cached on disk under
    ``$AGENTGYM_CACHE``); pass ``expert=False`` or leave the key out of ``info_keys`` where nobody reads
    it, so no gold sequence is ever planned.
  - ``action_valid``: the engine parsed the command (it did not answer "No known action matches that
    input."). ``ground_truth``: None.
  - ``anchor_obs``: a key of the engine state, not its last message: the room as "look around"
    describes it, a blank line, then the inventory (the engine's free actions, which take no time; stock
    computes the same two texts at every step). No move counter or score, so revisiting a state
    (leaving a room and coming back, or a command that changes nothing) gives the same anchor. Always
    present, whatever ``info_keys`` says.
  - Under ``info["scienceworld"]``: ``score`` (engine, -100..100), ``moves``, ``completed``,
    ``failed``, ``task_type``, ``variation``, ``simplifications``; ``gold_length`` (the number of
    actions of the episode's gold sequence) and ``gold_exceeds_max_turns`` (``gold_length >
    max_turns``), both absent until the gold sequence is known (never None: Gymnasium's vector envs cannot
    merge a number from one env with None from another): from reset on when it is cached, else from the
    step after the expert action was first computed (which plans it).
* **Gold lengths and the turn limit**: many gold sequences are longer than the default
  ``max_turns=100`` (boil, melt, freeze and change-of-state dev/test variations up to 182 actions,
  inclined plane up to 760, genetics 132-161: :data:`.gold.GOLD_LENGTHS`, printed by
  :func:`.gold.gold_length_table`), so the expert cannot finish them under the default. When an
  episode's gold sequence is known and longer than ``max_turns``, the env sets
  ``gold_exceeds_max_turns`` and, when the expert is consulted (``expert_action`` computed), warns once per
  task (:class:`.gold.GoldExceedsMaxTurns`, naming task, variation, gold length and ``max_turns``); the
  expert's truncated episodes stay in the results as failures.
* **Engine faults**: if the JVM dies or a call takes longer than ``step_timeout`` seconds (loads get
  10x that), the env raises :class:`~agentgym.error.EngineFault` naming the task; the next ``reset()``
  starts a fresh JVM. ``close()`` (and interpreter exit) stops the JVM. The same in both engine paths.
* **Reproducibility**: the JVM runs with ``-XX:+UnlockExperimentalVMOptions -XX:hashCode=2`` (constant
  identity hashes), so the same task and actions give the same episode whatever the JVM did before.
  Under the JVM's default flags ScienceWorld is not reproducible: its HashSet orders follow identity
  hashes that every call advances, so object order in observations, the valid-action wording and even
  trajectories change with the call history (one extra read-only call changes them).
  ``reproducible=False`` leaves the flag out.
* **Engine paths (speed)**: by default the fast path (:class:`.engine.Simulator`): a step makes 6
  engine calls (the step, score, completed, moves, and the two free actions of the anchor) and lists each
  state's valid actions once when ``info_keys`` ask for them; a listing is one transfer
  (the stock env makes one round trip per action, ~350 per state); TCP_NODELAY on the py4j socket; an
  episode starts with ``load`` + "look around" (stock ``reset`` rebuilds the world again); a small
  serial-GC JVM (~150 MB instead of ~1.2 GB). ``exact_stock=True`` runs the unmodified
  ``scienceworld.ScienceWorldEnv`` instead: its own JVM launch with the JVM's default flags (plus the
  reproducibility flag unless ``reproducible=False``), its ``load``/``reset``/``step``, which list the
  valid actions at every step. Listing draws from the simulator's global random number generator
  (``InputParser.chooseUniqueReferents`` breaks name ties with ``scala.util.Random``), which random
  events (genetics, wandering animals, bees, plant growth) draw from too; so before each step whose state
  was not listed, the fast path lists it in the JVM without sending the list (the draws are made by the
  listing's name resolutions, which are nearly all of its cost, so not asking saves little).
  Both paths therefore give identical observations, admissible
  actions, rewards, scores, won flags and anchors whether or not the listing is asked for
  (``tests/envs/test_scienceworld_identity.py``: gold paths of all 30 task types, listing asked for or not),
  so ``engine_version`` and the evaluation protocol are the same; use ``exact_stock=True`` to confirm
  any result.

Version history: v0, initial release; ``exact_stock`` and ``reproducible`` options and a smaller JVM
(issue 11), results unchanged; the fast path makes the listing's random draws when the listing is not
read (issue 17: before, an agent that skipped listings saw other random events than stock from some step
on, in the same protocol row), ``anchor_obs`` became a key of the state (was the last message), gold
lengths in info. Issue 18: ``info`` is a plain dict; the costly keys are asked for with ``info_keys=``
(default: both) instead of being computed lazily when read, and a key not asked for is absent (it was
None in a worker pool); episodes and results unchanged.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Collection, Sequence
from importlib import metadata
from pathlib import Path

from agentgym.core import TextEnv, Transition
from agentgym.envs.scienceworld import tasks as sw_tasks
from agentgym.envs.scienceworld.engine import DEFAULT_JAVA_OPTIONS, Simulator, SimulatorDied, StockSimulator
from agentgym.envs.scienceworld.gold import GoldCache, GoldExceedsMaxTurns, next_gold_action
from agentgym.error import DependencyNotInstalled, EngineFault, InvalidArgumentError
from agentgym.tasks import Task, TaskSplit, choose_split

#: The engine's answer to a command it cannot parse.
UNKNOWN_ACTION = "No known action matches that input."

__all__ = ["GoldExceedsMaxTurns", "ScienceWorldEnv", "next_gold_action"]


class ScienceWorldEnv(TextEnv):
    """ScienceWorld tasks as a text env (see the module's env card).

    Args:
        split: ``train``, ``valid``, ``test`` (official), or ``train_L``, ``L0``, ``L1``, ``L2``
            (generalization levels).
        max_turns: turn limit; reaching it truncates the episode.
        simplifications: ``"easy"``, a comma-separated string or a list of simplification names.
        task_types: keep only these task types in the split (default: all of the split's types).
        jar_path: a simulator jar of the user's own (default: the one in the ``scienceworld`` wheel).
        java_options: extra JVM options (default: the fast path's small-JVM options; none with
            ``exact_stock``). The reproducibility flags are added unless ``reproducible=False``.
        step_timeout: seconds one engine call may take before the JVM is killed (loads: 10x).
        expert: offer ``info["expert_action"]`` (False: always None, and no gold sequence is ever planned).
        exact_stock: run the unmodified ``scienceworld.ScienceWorldEnv`` engine path (slower; valid actions
            listed at every step) instead of the fast path; results are identical.
        reproducible: run the JVM with ``-XX:hashCode=2`` (False: the JVM default, under which results
            depend on the JVM's call history; part of ``engine_version``).
        max_action_length: longer actions are answered as invalid.
        render_mode: ``None`` or ``"ansi"``.
    """

    family = "ScienceWorld"
    #: The engine's listing of valid actions and its gold-path lookup each cost more than a step.
    costly_info_keys = frozenset({"admissible_actions", "expert_action"})
    splits = tuple(sw_tasks.SPLITS)

    def __init__(
        self,
        split: str = "train",
        max_turns: int = 100,
        simplifications: str | Sequence[str] | None = None,
        task_types: Sequence[str] | None = None,
        jar_path: str | os.PathLike | None = None,
        java_options: Sequence[str] | None = None,
        step_timeout: float = 60.0,
        expert: bool = True,
        exact_stock: bool = False,
        reproducible: bool = True,
        max_action_length: int = 4096,
        render_mode: str | None = None,
        info_keys: Collection[str] | None = None,
    ):
        try:
            import py4j  # noqa: F401
            import scienceworld  # noqa: F401
        except ImportError as exc:
            raise DependencyNotInstalled("agentgym/ScienceWorld-v0 needs `pip install scienceworld==1.2.3`") from exc
        try:
            self.simplifications = sw_tasks.normalize_simplifications(simplifications)
        except ValueError as exc:
            raise InvalidArgumentError(str(exc)) from None
        which, official = choose_split(sw_tasks.SPLITS, split)
        types = sw_tasks.split_types(which)
        if task_types is not None:
            unknown = sorted(set(task_types) - set(sw_tasks.TASK_TYPES))
            if unknown:
                raise InvalidArgumentError(
                    f"unknown task types {unknown}; expected some of {list(sw_tasks.TASK_TYPES)}"
                )
            outside = sorted(set(task_types) - set(types))
            if outside:
                raise InvalidArgumentError(f"task types {outside} are not in split {split!r}")
            types = [name for name in types if name in set(task_types)]
        self.jar_path = None if jar_path is None else Path(jar_path)
        self.exact_stock = bool(exact_stock)
        self.reproducible = bool(reproducible)
        self.engine_version = self._engine_version()
        tasks = [
            Task(
                f"{name}/{variation}",
                {
                    "task_type": name,
                    "variation": variation,
                    "simplifications": sw_tasks.engine_simplifications(name, self.simplifications),
                },
            )
            for name in types
            for variation in sw_tasks.official_variations(name, official)
        ]
        super().__init__(
            TaskSplit(split, tasks, self.engine_version),
            max_turns=max_turns,
            max_action_length=max_action_length,
            render_mode=render_mode,
            info_keys=info_keys,
        )
        if java_options is None:
            java_options = () if self.exact_stock else DEFAULT_JAVA_OPTIONS
        self.java_options = tuple(java_options)
        self.expert = bool(expert)
        self._sim: Simulator | None = None
        self.step_timeout = step_timeout
        self._actions: list[tuple[str, bool]] = []  # this episode's commands sent to the engine, parsed?
        self._engine_obs = ""  # the engine's text after the last command (to check replays)
        self._raw_score = 0
        self._gold = GoldCache(self.engine_version)
        self._anchor = ""
        self._moves = 0  # the engine's move count after the last command it processed
        self._warned_gold: set[str] = set()

    def _engine_version(self) -> str:
        version = f"scienceworld {metadata.version('scienceworld')}"
        if self.simplifications:
            version += f"; simplifications={','.join(self.simplifications)}"
        if self.jar_path is not None:
            if not self.jar_path.is_file():
                raise InvalidArgumentError(f"jar_path {str(self.jar_path)!r} is not a file")
            version += f"; jar sha256={hashlib.sha256(self.jar_path.read_bytes()).hexdigest()[:16]}"
        if not self.reproducible:
            version += "; default JVM identity hashes (history-dependent)"
        return version

    # ----------------------------------------------------------------- the JVM
    @property
    def step_timeout(self) -> float:
        """Seconds one engine call may take before the JVM is killed (loads get 10x); settable."""
        return self._step_timeout

    @step_timeout.setter
    def step_timeout(self, seconds: float) -> None:
        if not (isinstance(seconds, (int, float)) and seconds > 0):
            raise InvalidArgumentError(f"step_timeout must be a positive number of seconds, got {seconds!r}")
        self._step_timeout = float(seconds)
        if self._sim is not None:
            self._sim.timeout = float(seconds)

    @property
    def jvm_pid(self) -> int | None:
        """The process id of this env's JVM (None until the first reset, and after close)."""
        return self._sim.pid if self._sim is not None and self._sim.alive else None

    def _simulator(self) -> Simulator:
        if self._sim is not None and not self._sim.alive:
            self._drop_simulator()
        if self._sim is None:
            engine = StockSimulator if self.exact_stock else Simulator
            self._sim = engine(
                str(self.jar_path) if self.jar_path else None, self.java_options, self.step_timeout, self.reproducible
            )
        return self._sim

    def _drop_simulator(self) -> None:
        if self._sim is not None:
            self._sim.close()
            self._sim = None

    def _fault(self, exc: SimulatorDied) -> EngineFault:
        self._drop_simulator()
        task_id = self._task.task_id if self._task is not None else None
        return EngineFault(f"ScienceWorld engine fault: {exc}", task_id)

    # ----------------------------------------------------------------- hooks
    def _start(self, task: Task) -> tuple[Transition, str | None]:
        definition = task.definition
        self._actions = []
        try:
            sim = self._simulator()
            sim.load(definition["task_type"], definition["variation"], definition["simplifications"], False)
            observation, score, completed, moves, valid, anchor = sim.start()
            goal = sim.task_description()
        except SimulatorDied as exc:
            raise self._fault(exc) from None
        self._engine_obs, self._raw_score, self._anchor, self._moves = observation, score, anchor, moves
        self.gold_actions(task, plan=False)  # a cached gold sequence gives the episode's gold length now
        transition = self._transition(observation, score, completed, moves, valid, anchor, reward=0.0, parsed=True)
        transition.observation = f"{goal}\n\n{observation}"
        return transition, goal

    def _advance(self, action: str) -> Transition:
        from py4j.protocol import Py4JJavaError

        sim = self._sim
        try:
            if sim is None:
                raise SimulatorDied("the ScienceWorld JVM was stopped")
            observation, score, completed, moves, valid, anchor = sim.step(action)
        except SimulatorDied as exc:
            raise self._fault(exc) from None
        except Py4JJavaError as exc:  # the engine threw on this input: answer it, keep the episode
            self._actions.append((action, False))
            message = str(exc.java_exception).strip() or type(exc).__name__
            return self._transition(
                f"The engine could not process this action ({message}).",
                self._raw_score,
                False,
                self._moves,
                None,
                self._anchor,
                reward=0.0,
                parsed=False,
            )
        parsed = observation.strip() != UNKNOWN_ACTION
        self._actions.append((action, parsed))
        self._engine_obs, self._anchor, self._moves = observation, anchor, moves
        reward = (score - self._raw_score) / 100.0
        self._raw_score = score
        return self._transition(observation, score, completed, moves, valid, anchor, reward=reward, parsed=parsed)

    def _close_engine(self) -> None:
        self._drop_simulator()

    # ----------------------------------------------------------------- info
    def _transition(
        self,
        observation: str,
        score: int,
        completed: bool,
        moves: int,
        valid: list[str] | None,
        anchor: str,
        *,
        reward: float,
        parsed: bool,
    ) -> Transition:
        """``valid``: the valid actions when the engine path listed them (stock), else None (listed only when
        ``info_keys`` ask for them)."""
        assert self._task is not None
        definition = self._task.definition
        failed = score < 0
        gold = self._gold.known(self._task)
        # known-or-absent, never None: Gymnasium's vector envs cannot merge an int from one env with None
        gold_info = (
            {} if gold is None else {"gold_length": len(gold), "gold_exceeds_max_turns": len(gold) > self.max_turns}
        )
        return Transition(
            observation=observation,
            reward=reward,
            terminated=completed or failed,
            action_valid=parsed,
            won=completed,
            score=min(max(score, 0), 100) / 100.0,
            admissible_actions=self._valid_actions if valid is None else valid,
            anchor_obs=anchor,
            expert_action=None if completed or failed or not self.expert else self._expert_action,
            family_info={
                "score": score,
                "moves": moves,
                "completed": completed,
                "failed": failed,
                "task_type": definition["task_type"],
                "variation": definition["variation"],
                "simplifications": definition["simplifications"],
                **gold_info,
            },
        )

    def _check_gold_length(self, task: Task, length: int) -> None:
        """Warn once per task when its gold sequence is longer than the turn limit (the expert cannot finish),
        when the expert is consulted (``info["expert_action"]`` computed): a trainer's agent that never asks
        for it gets the info keys only, not a warning per task."""
        if self.expert and length > self.max_turns and task.task_id not in self._warned_gold:
            self._warned_gold.add(task.task_id)
            warnings.warn(
                f"ScienceWorld {task.task_id} (task type {task.definition['task_type']!r}, variation "
                f"{task.definition['variation']}): its gold sequence has {length} actions, more than "
                f"max_turns={self.max_turns}, so the expert may be truncated before it finishes; pass "
                f"max_turns >= {length} (info['scienceworld']['gold_exceeds_max_turns'] is True)",
                GoldExceedsMaxTurns,
                stacklevel=2,
            )

    def _valid_actions(self) -> list[str] | None:
        """The current state's valid actions (the engine lists a state at most once; None after a crash)."""
        if self._sim is None:
            return None
        try:
            return self._sim.valid_actions()
        except SimulatorDied as exc:
            raise self._fault(exc) from None

    def _expert_action(self) -> str | None:
        """The next gold action after this episode's commands (planning the gold sequence if needed)."""
        task = self._task
        gold = self.gold_actions(task, plan=self._sim is not None)  # no new JVM for a closed env
        if gold is None:
            return None
        self._check_gold_length(task, len(gold))
        return next_gold_action(gold, self._actions)

    # ----------------------------------------------------------------- gold sequences
    def gold_actions(self, task: Task | str, plan: bool = True) -> list[str] | None:
        """The engine's gold action sequence of a task: from memory, the disk cache, or planned now
        (None when it is not cached and ``plan`` is False).

        Planning reloads the task with the gold path and, when an episode is under way, replays its
        commands to restore the state (the engine is deterministic under the JVM flags used).
        """
        task = self.tasks.get(task) if isinstance(task, str) else task
        return self._gold.get(task, self._plan_gold if plan else None)

    def _plan_gold(self, task: Task) -> list[str]:
        definition = task.definition
        in_episode = self._task is not None and self._sim is not None and self._sim.alive
        listed = in_episode and self._sim.listed
        try:
            sim = self._simulator()
            sim.load(definition["task_type"], definition["variation"], definition["simplifications"], True)
            gold = [action for action in sim.gold_actions() if action]
            if in_episode:  # a gold load leaves another world and random state: rebuild the episode's
                current = self._task.definition
                observation = sim.replay(
                    current["task_type"],
                    current["variation"],
                    current["simplifications"],
                    [command for command, _ in self._actions],
                    listed,
                )
                if observation != self._engine_obs:
                    raise SimulatorDied("replaying the episode to restore its state gave a different observation")
        except SimulatorDied as exc:
            raise self._fault(exc) from None
        return gold
