"""Copies and snapshots of an env: what ``copy.deepcopy``/``pickle`` do, and ``clone_state``/``restore_state``.

A family's engine state mostly lives outside Python (a native game, a JVM, a sandbox on disk), so a copy would
share or lose it: copies raise :class:`~agentgym.error.NotCopyableError` (saying what to do instead) unless the
family declares :attr:`CopiesAndSnapshots.copyable`. A family whose engine can snapshot an episode cheaply
implements :meth:`CopiesAndSnapshots._clone_engine` and :meth:`CopiesAndSnapshots._restore_engine`; the
snapshot of the episode's place (task, turn, last transition, random generator) is the same for every family.
:class:`~agentgym.core.TextEnv` inherits this; it keeps the episode fields read here (``_task``, ``_turn``,
``_done``, ``_last``, ``_goal``, ``_np_random``).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, ClassVar

from agentgym.error import InvalidArgumentError, NotCopyableError, ResetNeeded, StateCloningUnsupported


def computed_value(value: Any) -> Any:
    """A transition value, computed if the family handed over a callable for it."""
    return value() if callable(value) else value


@dataclasses.dataclass(frozen=True)
class EnvState:
    """A snapshot made by :meth:`TextEnv.clone_state`: the episode's place (task, turn, last transition,
    random generator) and the family's engine state, all plain Python objects (deep-copyable, picklable)."""

    family: str
    task_id: str
    turn: int
    done: bool
    last: Any  # the agentgym.core.Transition the episode is at
    goal: str | None
    np_random: Any
    engine: Any


class CopiesAndSnapshots:
    """The copy rules and episode snapshots of :class:`~agentgym.core.TextEnv` (a mixin: see the module)."""

    #: Whether ``copy.deepcopy(env)`` and ``pickle`` give a correct, independent env: only a family whose
    #: whole state is plain Python objects sets it. Otherwise (a native game, a JVM, a sandbox on disk) both
    #: raise :class:`~agentgym.error.NotCopyableError` instead of sharing or half-copying the engine.
    copyable: ClassVar[bool] = False
    family: ClassVar[str]

    def _clone_engine(self) -> Any:
        """The engine's part of :meth:`clone_state`: plain Python objects (the base class deep-copies them).
        A family whose engine can snapshot an episode cheaply overrides this and :meth:`_restore_engine`."""
        raise StateCloningUnsupported(
            f"{type(self).__name__} does not offer clone_state()/restore_state(): its engine cannot snapshot an "
            "episode cheaply. Replay the episode instead: reset(options={'task_id': ...}) with the same seed, then "
            "the same actions (every family is deterministic under a seed)"
        )

    def _restore_engine(self, engine_state: Any) -> None:
        """Put the engine back in the state :meth:`_clone_engine` returned (a private copy of it)."""
        raise StateCloningUnsupported(f"{type(self).__name__} does not offer restore_state()")

    def clone_state(self) -> EnvState:
        """A snapshot of the episode in progress, for tree search or best-of-n from one state.

        ``restore_state(snapshot)`` later puts this env (or another env of the same id and split) back in
        that state: the same observations, rewards and info follow the same actions. A snapshot can be
        restored any number of times. Families whose engine cannot snapshot cheaply raise
        :class:`~agentgym.error.StateCloningUnsupported` (the env card says which do).
        """
        if self._task is None or self._last is None:
            raise ResetNeeded("clone_state() needs an episode: call reset() first")
        engine = copy.deepcopy(self._clone_engine())
        last = dataclasses.replace(
            self._last,
            admissible_actions=computed_value(self._last.admissible_actions),
            expert_action=computed_value(self._last.expert_action),
        )
        return EnvState(
            self.family,
            self._task.task_id,
            self._turn,
            self._done,
            copy.deepcopy(last),
            self._goal,
            copy.deepcopy(self._np_random),
            engine,
        )

    def restore_state(self, state: EnvState) -> None:
        """Return to a snapshot made by :meth:`clone_state` (the snapshot itself is left unchanged)."""
        if not isinstance(state, EnvState) or state.family != self.family:
            raise InvalidArgumentError(
                f"restore_state() takes a snapshot made by clone_state() of a {self.family} "
                f"env, got {type(state).__name__}" + (f" of {state.family}" if isinstance(state, EnvState) else "")
            )
        task = self.tasks.get(state.task_id)
        self._restore_engine(copy.deepcopy(state.engine))
        self._task, self._turn, self._done, self._goal = task, state.turn, state.done, state.goal
        self._last = copy.deepcopy(state.last)
        self._np_random = copy.deepcopy(state.np_random)

    def offers_clone_state(self) -> bool:
        """Whether :meth:`clone_state` works on this env (the family implements the engine snapshot)."""
        return type(self)._clone_engine is not CopiesAndSnapshots._clone_engine

    def _copy_refusal(self, what: str) -> NotCopyableError:
        offered = self.offers_clone_state()
        snapshot = (
            "to branch an episode (tree search, best-of-n), use env.unwrapped.clone_state() and restore_state()"
            if offered
            else "this family offers no clone_state(); to branch an episode, replay it on a new env "
            "(same seed or task_id, same actions)"
        )
        return NotCopyableError(
            f"{type(self).__name__} cannot be {what}: its engine state lives outside Python (native code, a "
            f"subprocess or files), and a copy would share or lose it. Make a new env with "
            f"gym.make({self._spec_id()!r}, ...) instead; {snapshot}"
        )

    def _spec_id(self) -> str:
        spec = getattr(self, "spec", None)
        return spec.id if spec is not None else f"agentgym/{self.family}-v0"

    def __deepcopy__(self, memo: dict) -> CopiesAndSnapshots:
        if not self.copyable:
            raise self._copy_refusal("deep-copied")
        duplicate = type(self).__new__(type(self))
        memo[id(self)] = duplicate
        duplicate.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return duplicate

    def __reduce_ex__(self, protocol: Any) -> Any:
        if not self.copyable:
            raise self._copy_refusal("pickled")
        return super().__reduce_ex__(protocol)
