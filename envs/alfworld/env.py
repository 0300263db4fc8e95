"""ALFWorld on the real engine (alfworld's TextWorld-PDDL text engine).

Env card
--------
* **Id**: ``agentgym/ALFWorld-v0``
* **Engine**: the PyPI ``alfworld`` package: textworld's ``PddlEnv`` with ALFWorld's ``alfred.pddl`` domain
  and ``alfred.twl2`` grammar, wrapped in ALFWorld's own ``AlfredDemangler`` and ``AlfredInfos`` (the stack
  ``AlfredTWEnv`` builds). Nothing of the simulator is reimplemented.
* **Tasks** (``task_source`` in the manifest's engine version and in ``info["alfworld"]``):

  - ``generated`` (default): ALFWorld-style games made from the wheel's floor-plan layouts and goal library
    by :mod:`.generator` (splits in :mod:`.tasks`), in ALFWorld's own file format, generated on first use and cached. Task ids are
    ``FloorPlan<n>/<task type>/<seed>``. Splits: ``train`` (3,553), ``valid_seen`` (140, training floor
    plans, other seeds), ``valid_unseen`` (134, floor plans no other split uses); ``valid`` and ``test``
    are the contract's names for ``valid_seen`` and ``valid_unseen`` (same task ids); RLVMR-style levels
    ``train_L`` (train without the held-out type), ``L0`` (seen types, seen floor plans), ``L1`` (seen
    types, unseen floor plans), ``L2`` (the held-out type ``pick_two_obj_and_place``). Scores on generated
    games are not comparable with published ALFWorld numbers.
  - ``alfworld-download``: ``data_dir=<folder>`` (or ``$ALFWORLD_DATA``, used when it holds
    ``json_2.1.1``) reads the official games unchanged from ``<folder>/json_2.1.1/<split>/``, with
    ALFWorld's own filters (solvable games only; no ``movable``/``Sliced`` trials). Task ids are the trial
    folders relative to ``json_2.1.1``; definitions are the sha256 of ``game.tw-pddl`` and
    ``traj_data.json``. Splits ``train``, ``valid_seen``, ``valid_unseen`` (``valid``/``test`` as above).
    ``data_dir="generated"`` forces generated games even when ``$ALFWORLD_DATA`` is set. Every
    ``traj_data.json`` and ``game.tw-pddl`` played is checked at construction and again at reset, before any
    engine starts (:mod:`.tasks`): corrupt JSON, ``[]``, a missing or mistyped ``task_type``,
    ``pddl_params`` field or game field raises ``TaskFileError`` naming the file and the field.
* **Observation**: the engine's text as ALFWorld prints it (at reset the ``-= Welcome to TextWorld, ALFRED!
  =-`` intro ending with ``Your task is to: ...``; ``Nothing happens.`` for a command the engine cannot
  apply). **Action**: one command, e.g. ``go to countertop 1``, ``take mug 1 from countertop 1``,
  ``move mug 1 to coffeemachine 1`` (this alfworld's vocabulary; older releases said ``put``).
* **Reward**: 1.0 on the step that wins, else 0.0 (ALFWorld's score). ``info["score"]`` is 1.0 once won.
* **Termination**: won (ALFWorld has no losing state). **Truncation**: ``max_turns`` (default 50, as in
  ALFWorld's evaluation).
* **info**: the standard keys. ``admissible_actions``: the engine's admissible commands; ``action_valid``:
  the command was among them; ``goal``: the task text; ``expert_action`` (:mod:`.experts`): the next action of the oracle expert
  (``expert="oracle"``, default: read from the engine's full state, it wins every generated game from any
  state it is asked in), of ALFWorld's handcoded expert (``expert="handcoded"``; seeded per episode,
  ``"look"`` at reset as in ``AlfredExpert``; it loops or gives up on some games), the first step of
  fast-downward's plan from the current state computed in a forked child under ``planner_timeout`` seconds
  (``expert="planner"``; also inside EnvPool's worker processes), or ``None`` (``expert=None``, the goal is
  reached, or the expert gave up or timed out). ``expert_action`` is a costly key: computed only when
  ``info_keys`` asks for it (the default asks for every key). ``anchor_obs``: a key of the engine state, not the last message (so never
  ``Nothing happens.``): the agent's location and whether it is open, what is seen there, what it holds,
  and every other fact changed since the start (:mod:`.anchor`); revisiting a state gives the same anchor,
  the fast and the stock engine give the same anchors. Under ``info["alfworld"]``: ``task_type``,
  ``task_source``, ``gamefile``, ``alfworld_version``, ``textworld_version``, ``action_vocabulary``, at
  reset ``walkthrough``, and ``engine`` (``"fast"`` or ``"stock"``).
* **Bad actions**: only the common checks; any other text reaches the engine (``Nothing happens.``).
* **Speed** (engine-perf.md section 1): by default the env runs textworld's engine through exact,
  output-identical speedups at documented seams, pinned to alfworld 0.4.2, textworld 1.7.0 and
  fast-downward-textworld 20.6.4 (:mod:`.seams` checks them at import):

  - a ``PddlEnv`` subclass (:class:`~.engine.FastPddlEnv`) that reuses in ``reset`` the translation ``load``
    made, keeps translations and grammar parses in memory and on disk (:mod:`.caches`, under
    ``agentgym.cache.cache_root()/alfworld-engine/``, keyed by the game's content;
    ``AGENTGYM_ALFWORLD_DISK_CACHE=0`` turns the disk part off), and derives a command whose template reads
    only static predicates once per game and operator;
  - process-wide patches of textworld's grammar (parses memoised and handed out as clones instead of deep
    copies, queries parsed once) and of fast-downward's translation (:mod:`.patches`), which take their fast
    branch only inside the fast env's own calls, on the calling thread; every other caller gets the originals.

  The planner is never in the engine's per-step path. ``exact_stock=True`` runs textworld's own ``PddlEnv``
  and every unmodified original, even in a process where fast envs run; use it to confirm a result. If a
  seam differs, the env warns once, naming it, and runs the stock engine at stock speed
  (``info["alfworld"]["engine"] == "stock"``). Identity with stock is tested on 500+ states of all six task
  types (tests/envs/test_alfworld_identity.py), speed in benchmarks/alfworld_speed.py. ``expert=None`` is the
  fastest setting.

Version history: v0, initial release; ``anchor_obs`` became a key of the engine state (was the
observation) and bad official files raise ``TaskFileError`` (issues 16, 17; rewards, observations and
tasks unchanged); the default expert became ``"oracle"``, which wins every generated game (ALFWorld's
handcoded expert, the default before, won 82.8% of ``valid_unseen``), the planner runs in pool workers, and
``admissible_actions`` is no longer a costly key (the engine derives it every step anyway) (issues 18, 20).
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

from agentgym.core import TextEnv, Transition
from agentgym.envs.alfworld import seams, tasks
from agentgym.envs.alfworld.anchor import StateAnchor
from agentgym.envs.alfworld.floorplans import action_vocabulary, alfworld_version, textworld_version
from agentgym.error import DependencyNotInstalled, EngineFault, InvalidArgumentError, TaskFileError
from agentgym.tasks import Task, TaskSplit, choose_split

_EXPERTS = ("oracle", "handcoded", "planner", None)


def _normalize(command: str) -> str:
    return " ".join(command.lower().split())


class ALFWorldEnv(TextEnv):
    """ALFWorld household tasks as a text env (see the module's env card).

    Args:
        split: ``train``, ``valid_seen``, ``valid_unseen``, ``valid`` (= valid_seen), ``test``
            (= valid_unseen); generated games also have ``train_L``, ``L0``, ``L1``, ``L2``.
        max_turns: turn limit; reaching it truncates the episode.
        data_dir: an ``alfworld-download`` folder (with ``json_2.1.1``) to play the official games;
            ``None`` uses ``$ALFWORLD_DATA`` when it holds ``json_2.1.1``, else generated games;
            ``"generated"`` always uses generated games.
        expert: ``"oracle"`` (reads the engine state; wins every generated game), ``"handcoded"``
            (ALFWorld's handcoded expert), ``"planner"`` (fast-downward, in a forked child) or ``None``
            (no ``expert_action``, fastest).
        planner_timeout: seconds the planner may take per step before ``expert_action`` is ``None``.
        exact_stock: run the unmodified engine (stock textworld ``PddlEnv``, no speedups; about 30x slower
            per step) to confirm a result; the default runs the output-identical fast path.
        max_action_length: longer actions are answered as invalid.
        render_mode: ``None`` or ``"ansi"``.
        info_keys: which costly info keys to compute (``expert_action``); None: all.
    """

    family = "ALFWorld"
    #: The expert may call a planner (seconds) or replay ALFWorld's handcoded expert over the episode.
    costly_info_keys = frozenset({"expert_action"})
    splits = tasks.SPLITS

    def __init__(
        self,
        split: str = "train",
        max_turns: int = 50,
        data_dir: str | os.PathLike | None = None,
        expert: str | None = "oracle",
        planner_timeout: float = 10.0,
        exact_stock: bool = False,
        max_action_length: int = 4096,
        render_mode: str | None = None,
        info_keys: Collection[str] | None = None,
    ):
        try:
            import alfworld  # noqa: F401
            import textworld  # noqa: F401
        except ImportError as exc:
            raise DependencyNotInstalled("agentgym/ALFWorld-v0 needs `pip install alfworld==0.4.2`") from exc
        if expert not in _EXPERTS:
            raise InvalidArgumentError(f"expert must be one of {_EXPERTS}, got {expert!r}")
        if not planner_timeout > 0:
            raise InvalidArgumentError(f"planner_timeout must be a positive number of seconds, got {planner_timeout!r}")
        self.expert = expert
        self.planner_timeout = float(planner_timeout)
        self.exact_stock = bool(exact_stock)
        if not self.exact_stock and not seams.AVAILABLE:
            seams.warn_unavailable()
        #: Whether this env runs the fast engine path (else the stock engine).
        self.fast_engine = not self.exact_stock and seams.AVAILABLE
        self.data_dir = self._resolve_data_dir(data_dir)
        self.task_source = "generated" if self.data_dir is None else "alfworld-download"
        self.engine_version = (
            f"alfworld {alfworld_version()} textworld {textworld_version()} "
            f"tasks {self.task_source}"
            + (f" generator v{tasks.GENERATOR_VERSION}" if self.data_dir is None else "")
            + f" actions '{action_vocabulary()}'"
        )
        self._paths: dict[str, Path] = {}
        if self.data_dir is None:
            choose_split(dict.fromkeys(tasks.SPLITS), split)  # an unknown split raises, with did-you-mean
            split_tasks = TaskSplit(split, tasks.split_tasks(split), self.engine_version)
        else:
            choose_split(tasks.OFFICIAL_SPLITS, split)
            pairs = tasks.official_tasks(self.data_dir, split)
            self._paths = {task.task_id: path for task, path in pairs}
            split_tasks = TaskSplit(split, [task for task, _ in pairs], self.engine_version)
        super().__init__(
            split_tasks,
            max_turns=max_turns,
            max_action_length=max_action_length,
            render_mode=render_mode,
            info_keys=info_keys,
        )
        self._engine: Any = None  # an engine.Engine, made at the first reset
        self._expert_agent: Any = None  # an experts.* instance for this episode (or for every episode)
        self._task_type: str | None = None
        self._anchor: StateAnchor | None = None

    @staticmethod
    def _resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
        if data_dir == "generated":
            return None
        if data_dir is None:
            from_env = os.environ.get("ALFWORLD_DATA")
            if from_env and (Path(from_env).expanduser() / "json_2.1.1").is_dir():
                return Path(from_env).expanduser().resolve()
            return None
        path = Path(data_dir).expanduser().resolve()
        if not (path / "json_2.1.1").is_dir():
            raise TaskFileError(
                f"{path}: expected an alfworld-download folder containing json_2.1.1/ "
                "(or pass data_dir='generated' for the generated games)"
            )
        return path

    def game_file(self, task: Task) -> Path:
        """The ``game.tw-pddl`` of a task (generated and cached on first use for generated tasks)."""
        return self._paths.get(task.task_id) or tasks.game_path(task.task_id)

    # ----------------------------------------------------------------- hooks
    def _start(self, task: Task) -> tuple[Transition, str | None]:
        from agentgym.envs.alfworld import experts
        from agentgym.envs.alfworld.engine import Engine

        path = self.game_file(task)
        traj = tasks.read_traj(path.parent / "traj_data.json")  # checked before any engine starts
        self._task_type = traj["task_type"]
        try:
            if self._engine is None:
                self._engine = Engine(
                    self.fast_engine, facts=self.expert == "handcoded", planner=self.expert == "planner"
                )
            state = self._engine.reset(path)
        except Exception as exc:
            self._close_engine()
            raise EngineFault(f"the ALFWorld engine failed to start {path}: {exc!r}", task.task_id) from exc
        engine = self._engine
        try:
            self._anchor = StateAnchor(engine.pddl_state, engine.entity_infos)
        except KeyError as missing:  # a game whose own pddl_domain is not ALFWorld's
            raise TaskFileError(
                f"{path}: field 'pddl_domain' lacks ALFWorld's predicate {missing}; expected alfred.pddl's"
            ) from None
        expert_action: Any = None
        if self.expert == "oracle":
            self._expert_agent = experts.OracleExpert(self._task_type, traj["pddl_params"], engine.entity_infos)
            expert_action = self._oracle_answer(state)
        elif self.expert == "handcoded":
            if self._expert_agent is None:
                self._expert_agent = experts.HandcodedExpert()
            expert_action = self._expert_agent.reset(str(path), task.task_id, state.feedback)
        elif self.expert == "planner":
            if self._expert_agent is None:
                self._expert_agent = experts.PlannerExpert(self.planner_timeout)
            self._expert_agent.reset()
            expert_action = self._planner_answer()
        goal = state.feedback.rpartition("Your task is to: ")[2].strip().rstrip(".") or None
        transition = self._transition(state, reward=0.0, action_valid=True, expert_action=expert_action)
        walkthrough = engine.walkthrough  # the game file's, as PddlEnv read it
        transition.family_info["walkthrough"] = list(walkthrough) if walkthrough else None
        return transition, goal

    def _advance(self, action: str) -> Transition:
        before = self._last.admissible_actions
        try:
            state, score, _ = self._engine.step(action)
        except Exception as exc:
            task_id = self._task.task_id if self._task else None
            self._close_engine()
            raise EngineFault(f"the ALFWorld engine failed on {action!r}: {exc!r}", task_id) from exc
        if self.fast_engine and state.get("_last_action") is not None:
            valid = True  # the engine found the command among its valid commands: it is admissible
        else:
            valid = _normalize(action) in {_normalize(command) for command in (before or [])}
        won = bool(state["won"])
        expert_action: Any = None
        if self.expert == "oracle" and not won:
            expert_action = self._oracle_answer(state)
        elif self.expert == "handcoded" and not won:
            self._expert_agent.observe(state, action)  # every step, in order; fed when asked for
            expert_action = self._expert_agent.next_action
        elif self.expert == "planner":
            self._expert_agent.observe(action, valid)
            expert_action = None if won else self._planner_answer()
        return self._transition(state, reward=score, action_valid=valid, expert_action=expert_action)

    def _close_engine(self) -> None:
        if self._engine is not None:
            engine, self._engine = self._engine, None
            engine.close()

    # ----------------------------------------------------------------- helpers
    def _oracle_answer(self, state: Any) -> Any:
        """The oracle's answer, computed when read (now: the engine state is this transition's)."""
        oracle, engine, admissible = self._expert_agent, self._engine, state["admissible_commands"]
        return lambda: oracle(engine.pddl_state, admissible)

    def _planner_answer(self) -> Any:
        planner, engine = self._expert_agent, self._engine
        return lambda: planner.next_action(engine.pddl_state, engine.entity_infos)

    def _transition(self, state: Any, reward: float, action_valid: bool, expert_action: Any) -> Transition:
        won = bool(state["won"])
        return Transition(
            observation=state.feedback,
            reward=reward,
            terminated=won,
            action_valid=action_valid,
            won=won,
            score=1.0 if won else 0.0,
            admissible_actions=list(state["admissible_commands"] or []),
            expert_action=expert_action,
            anchor_obs=self._anchor(self._engine.pddl_state),
            family_info={
                "task_type": self._task_type,
                "task_source": self.task_source,
                "gamefile": str(self._engine.path),
                "alfworld_version": alfworld_version(),
                "textworld_version": textworld_version(),
                "action_vocabulary": action_vocabulary(),
                "engine": "fast" if self.fast_engine else "stock",
            },
        )
