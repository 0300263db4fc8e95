"""ALFWorld on the real engine (alfworld's TextWorld-PDDL text engine).

Env card
--------
* **Id**: ``agentgym/ALFWorld-v0``
* **Engine**: the PyPI ``alfworld`` package: textworld's ``PddlEnv`` with ALFWorld's ``alfred.pddl`` domain
  and ``alfred.twl2`` grammar, wrapped in ALFWorld's own ``AlfredDemangler`` and ``AlfredInfos`` (the stack
  ``AlfredTWEnv`` builds). Nothing of the simulator is reimplemented.
* **Tasks** (``task_source`` in the manifest's engine version and in ``info["alfworld"]``):

  - ``generated`` (default): ALFWorld-style games made from the wheel's floor-plan layouts and goal library
    by :mod:`.games`, in ALFWorld's own file format, generated on first use and cached. Task ids are
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
    engine starts (:mod:`.official`): corrupt JSON, ``[]``, a missing or mistyped ``task_type``,
    ``pddl_params`` field or game field raises ``TaskFileError`` naming the file and the field.
* **Observation**: the engine's text as ALFWorld prints it (at reset the ``-= Welcome to TextWorld, ALFRED!
  =-`` intro ending with ``Your task is to: ...``; ``Nothing happens.`` for a command the engine cannot
  apply). **Action**: one command, e.g. ``go to countertop 1``, ``take mug 1 from countertop 1``,
  ``move mug 1 to coffeemachine 1`` (this alfworld's vocabulary; older releases said ``put``).
* **Reward**: 1.0 on the step that wins, else 0.0 (ALFWorld's score). ``info["score"]`` is 1.0 once won.
* **Termination**: won (ALFWorld has no losing state). **Truncation**: ``max_turns`` (default 50, as in
  ALFWorld's evaluation).
* **info**: the standard keys. ``admissible_actions``: the engine's admissible commands; ``action_valid``:
  the command was among them; ``goal``: the task text; ``expert_action``: the next action of ALFWorld's
  handcoded expert (``expert="handcoded"``, default; seeded per episode, ``"look"`` at reset as in
  ``AlfredExpert``), or the first step of fast-downward's plan from the current state computed in a child
  process under ``planner_timeout`` seconds (``expert="planner"``), or ``None`` (``expert=None``, or the
  expert gave up or timed out). ``anchor_obs``: a key of the engine state, not the last message (so never
  ``Nothing happens.``): the agent's location and whether it is open, what is seen there, what it holds,
  and every other fact changed since the start (:mod:`.anchor`); revisiting a state gives the same anchor,
  the fast and the stock engine give the same anchors. Under ``info["alfworld"]``: ``task_type``,
  ``task_source``, ``gamefile``, ``alfworld_version``, ``textworld_version``, ``action_vocabulary``, at
  reset ``walkthrough``, and ``engine`` (``"fast"`` or ``"stock"``).
* **Bad actions**: only the common checks; any other text reaches the engine (``Nothing happens.``).
* **Speed** (:mod:`.fast`, engine-perf.md section 1): by default the env runs textworld's engine through
  exact, output-identical speedups at documented seams, pinned to alfworld 0.4.2, textworld 1.7.0 and
  fast-downward-textworld 20.6.4:

  - a ``PddlEnv`` subclass (``FastPddlEnv``) that reuses in ``reset`` the translation ``load`` made, keeps
    translations and grammar parses in memory and on disk (under
    ``agentgym.cache.cache_root()/alfworld-engine/``, keyed by the game's content;
    ``AGENTGYM_ALFWORLD_DISK_CACHE=0`` turns the disk part off), derives a command whose template reads
    only static predicates once per game and operator, and derives admissible commands only when
    ``info["admissible_actions"]`` is read;
  - process-wide patches of textworld's grammar (parses memoised and handed out as clones instead of deep
    copies, queries parsed once) and of fast-downward's translation, which take their fast branch only
    inside the fast env's own calls, on the calling thread; every other caller gets the originals.

  The planner is never in the engine's per-step path (``expert="planner"`` runs it, opt-in, in a child
  process). ``exact_stock=True`` runs textworld's own ``PddlEnv`` and every unmodified original, even in a
  process where fast envs run; use it to confirm a result. At import the seams are checked (package versions
  and the source of each function the fast path replaces or relies on); if any differs, the env warns once,
  naming it, and runs the stock engine at stock speed (``info["alfworld"]["engine"] == "stock"``). Identity
  with stock is tested on 500+ states of all six task types (tests/envs/test_alfworld_identity.py), speed
  in benchmarks/alfworld_speed.py. Reading ``admissible_actions`` every step costs little (commands are
  cached); the handcoded expert reads them, so ``expert=None`` is the fastest setting.

Version history: v0, initial release; ``anchor_obs`` became a key of the engine state (was the
observation) and bad official files raise ``TaskFileError`` (issues 16, 17; rewards, observations and
tasks unchanged).
"""

from __future__ import annotations

from collections.abc import Collection
import contextlib
import functools
import multiprocessing
import os
import random
import sys
import threading
from pathlib import Path
from typing import Any

from agentgym.core import TextEnv, Transition
from agentgym.error import DependencyNotInstalled, EngineFault, InvalidArgumentError, TaskFileError
from agentgym.tasks import Task, TaskSplit, choose_split

from agentgym.envs.alfworld import fast, games
from agentgym.envs.alfworld.anchor import StateAnchor
from agentgym.envs.alfworld.official import OFFICIAL_SPLITS, official_tasks, read_traj

_EXPERTS = ("handcoded", "planner", None)


def _normalize(command: str) -> str:
    return " ".join(command.lower().split())


def _admissible(state: Any) -> list[str]:
    return list(state["admissible_commands"] or [])


class _ExpertRandom:
    """Stands in for the ``random`` module inside ALFWorld's handcoded expert, which draws from the global
    generator: while an env's expert runs, draws come from that env's own seeded generator."""

    _local = threading.local()

    def __getattr__(self, name: str) -> Any:
        current = getattr(self._local, "rng", None)
        return getattr(current if current is not None else random, name)


@functools.cache
def _install_expert_random() -> _ExpertRandom:
    import alfworld.agents.expert.handcoded_expert as handcoded

    proxy = _ExpertRandom()
    handcoded.random = proxy  # type: ignore[assignment]
    return proxy


def _plan_in_child(pddl_state: Any, entity_infos: Any, connection: Any) -> None:
    try:
        connection.send(pddl_state.replan(entity_infos))
    except Exception as exc:  # report, never hang the parent
        connection.send(exc)
    finally:
        connection.close()


class ALFWorldEnv(TextEnv):
    """ALFWorld household tasks as a text env (see the module's env card).

    Args:
        split: ``train``, ``valid_seen``, ``valid_unseen``, ``valid`` (= valid_seen), ``test``
            (= valid_unseen); generated games also have ``train_L``, ``L0``, ``L1``, ``L2``.
        max_turns: turn limit; reaching it truncates the episode.
        data_dir: an ``alfworld-download`` folder (with ``json_2.1.1``) to play the official games;
            ``None`` uses ``$ALFWORLD_DATA`` when it holds ``json_2.1.1``, else generated games;
            ``"generated"`` always uses generated games.
        expert: ``"handcoded"`` (ALFWorld's handcoded expert), ``"planner"`` (fast-downward, in a child
            process) or ``None`` (no ``expert_action``, fastest).
        planner_timeout: seconds the planner may take per step before ``expert_action`` is ``None``.
        exact_stock: run the unmodified engine (stock textworld ``PddlEnv``, no speedups; about 30x slower
            per step) to confirm a result; the default runs the output-identical fast path.
        max_action_length: longer actions are answered as invalid.
        render_mode: ``None`` or ``"ansi"``.
    """

    family = "ALFWorld"
    #: Listing the admissible commands walks the engine's state; the expert may call a planner.
    costly_info_keys = frozenset({"admissible_actions", "expert_action"})
    splits = games.SPLITS

    def __init__(
        self,
        split: str = "train",
        max_turns: int = 50,
        data_dir: str | os.PathLike | None = None,
        expert: str | None = "handcoded",
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
            raise InvalidArgumentError(
                f"planner_timeout must be a positive number of seconds, got {planner_timeout!r}"
            )
        self.expert = expert
        self.planner_timeout = float(planner_timeout)
        self.exact_stock = bool(exact_stock)
        if not self.exact_stock and not fast.AVAILABLE:
            fast.warn_unavailable()
        #: Whether this env runs the fast engine path (else the stock engine).
        self.fast_engine = not self.exact_stock and fast.AVAILABLE
        self.data_dir = self._resolve_data_dir(data_dir)
        self.task_source = "generated" if self.data_dir is None else "alfworld-download"
        self.engine_version = (
            f"alfworld {games.alfworld_version()} textworld {games.textworld_version()} "
            f"tasks {self.task_source}"
            + (f" generator v{games.GENERATOR_VERSION}" if self.data_dir is None else "")
            + f" actions '{games.action_vocabulary()}'"
        )
        self._paths: dict[str, Path] = {}
        if self.data_dir is None:
            choose_split(dict.fromkeys(games.SPLITS), split)  # an unknown split raises, with did-you-mean
            tasks = TaskSplit(split, games.split_tasks(split), self.engine_version)
        else:
            choose_split(OFFICIAL_SPLITS, split)
            pairs = official_tasks(self.data_dir, split)
            self._paths = {task.task_id: path for task, path in pairs}
            tasks = TaskSplit(split, [task for task, _ in pairs], self.engine_version)
        super().__init__(
            tasks, max_turns=max_turns, max_action_length=max_action_length, render_mode=render_mode,
            info_keys=info_keys,
        )
        self._engine: Any = None
        self._engine_path: Path | None = None
        self._expert_agent: Any = None
        self._expert_rng = random.Random(0)
        self._walkthrough: list[str] | None = None
        self._task_type: str | None = None
        self._failed_expert = False
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
        return self._paths.get(task.task_id) or games.game_path(task.task_id)

    # ----------------------------------------------------------------- hooks
    def _start(self, task: Task) -> tuple[Transition, str | None]:
        path = self.game_file(task)
        self._task_type = read_traj(path.parent / "traj_data.json")["task_type"]  # checked before the engine
        argv = sys.argv
        try:
            if self._engine is None or self._engine_path != path:
                self._load(path)
            state = self._engine.reset()
        except Exception as exc:
            self._close_engine()
            raise EngineFault(f"the ALFWorld engine failed to start {path}: {exc!r}", task.task_id) from exc
        finally:
            sys.argv = argv  # fast-downward's translator overwrites the process's sys.argv
        inner = self._pddl_env(self._engine)
        self._walkthrough = inner.walkthrough  # the game file's, as PddlEnv read it
        try:
            self._anchor = StateAnchor(inner._pddl_state, inner._entity_infos)
        except KeyError as missing:  # a game whose own pddl_domain is not ALFWorld's
            raise TaskFileError(
                f"{path}: field 'pddl_domain' lacks ALFWorld's predicate {missing}; expected alfred.pddl's"
            ) from None
        self._failed_expert = False
        expert_action = None
        if self.expert == "handcoded":
            self._expert_rng.seed(task.task_id)
            self._expert_agent.reset(str(path))
            self._run_expert(lambda: self._expert_agent.observe(state.feedback))
            expert_action = "look"  # as ALFWorld's AlfredExpert: the expert looks first
        elif self.expert == "planner":
            expert_action = self._plan()
        goal = state.feedback.rpartition("Your task is to: ")[2].strip().rstrip(".") or None
        transition = self._transition(state, reward=0.0, action_valid=True, expert_action=expert_action)
        transition.family_info["walkthrough"] = list(self._walkthrough) if self._walkthrough else None
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
            before = before() if callable(before) else before
            valid = _normalize(action) in {_normalize(command) for command in (before or [])}
        won = bool(state["won"])
        expert_action = None
        if not won and self.expert == "handcoded":
            expert_action = self._handcoded_next(state, action)
        elif not won and self.expert == "planner":
            expert_action = self._plan()
        return self._transition(
            state,
            reward=float(score or 0),
            action_valid=valid,
            expert_action=expert_action,
        )

    def _close_engine(self) -> None:
        if self._engine is not None:
            engine, self._engine, self._engine_path = self._engine, None, None
            # libdownward is not dlclose'd: copies share a soname, so closing one can unload another's
            with contextlib.suppress(Exception):  # after an engine fault, freeing must not raise again
                engine.close()

    @staticmethod
    def _pddl_env(engine: Any) -> Any:
        while hasattr(engine, "_wrapped_env"):
            engine = engine._wrapped_env
        return engine

    # ----------------------------------------------------------------- helpers
    def _load(self, path: Path) -> None:
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos
        from textworld.envs.pddl import PddlEnv

        if self._engine is None:
            infos = textworld.EnvInfos(
                admissible_commands=True, won=True, facts=self.expert == "handcoded", extras=["gamefile"]
            )
            if self.fast_engine:
                engine = fast.fast_pddl_env_class()(infos, planner=self.expert == "planner")
            else:
                engine = PddlEnv(infos)
            self._engine = AlfredInfos(AlfredDemangler(engine))
        if self.expert == "handcoded" and self._expert_agent is None:
            from alfworld.agents.expert import HandCodedTWAgent

            _install_expert_random()
            self._expert_agent = HandCodedTWAgent(max_steps=200)
        self._engine.load(str(path))
        self._engine_path = path

    def _run_expert(self, call: Any) -> Any:
        proxy = _install_expert_random()
        proxy._local.rng = self._expert_rng
        try:
            return call()
        finally:
            proxy._local.rng = None

    def _handcoded_next(self, state: Any, action: str) -> str | None:
        from alfworld.agents.expert import HandCodedAgentFailed, HandCodedAgentTimeout

        if self._failed_expert:
            return None
        try:
            command = self._run_expert(lambda: self._expert_agent.act(state, 0, state["won"], action))
        except (HandCodedAgentTimeout, HandCodedAgentFailed):
            self._failed_expert = True
            return None
        return command if command in (state["admissible_commands"] or []) else "look"

    def _plan(self) -> str | None:
        """First step of fast-downward's plan from the current state, computed in a forked child (which
        inherits the loaded engine) and abandoned after ``planner_timeout`` seconds."""
        inner = self._pddl_env(self._engine)
        context = multiprocessing.get_context("fork")
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(
            target=_plan_in_child, args=(inner._pddl_state, inner._entity_infos, sender), daemon=True
        )
        child.start()
        sender.close()
        try:
            plan = receiver.recv() if receiver.poll(self.planner_timeout) else None
        except EOFError:
            plan = None
        finally:
            receiver.close()
            if child.is_alive():
                child.kill()
            child.join()
        return plan[0] if isinstance(plan, list) and plan else None

    def _transition(
        self, state: Any, reward: float, action_valid: bool, expert_action: str | None
    ) -> Transition:
        won = bool(state["won"])
        return Transition(
            observation=state.feedback,
            reward=reward,
            terminated=won,
            action_valid=action_valid,
            won=won,
            score=1.0 if won else 0.0,
            # fast path: derived only when read (``info["admissible_actions"]``)
            admissible_actions=functools.partial(_admissible, state)
            if self.fast_engine
            else list(state["admissible_commands"] or []),
            expert_action=expert_action,
            anchor_obs=self._anchor(self._pddl_env(self._engine)._pddl_state),
            family_info={
                "task_type": self._task_type,
                "task_source": self.task_source,
                "gamefile": str(self._engine_path),
                "alfworld_version": games.alfworld_version(),
                "textworld_version": games.textworld_version(),
                "action_vocabulary": games.action_vocabulary(),
                "engine": "fast" if self.fast_engine else "stock",
            },
        )
