"""ALFWorld's experts, the source of ``info["expert_action"]``: the next action from the current state.

* :class:`OracleExpert` (``expert="oracle"``, the default): reads the engine's PDDL state (where every object
  is, what the agent holds, what is open, hot, cool, clean or switched on) and names the next step of a
  shortest route to the goal of the six task types: fetch a goal object (one not already done), bring it to
  the appliance the task needs, then to the goal receptacle or the desk lamp; an object held that is not
  wanted is put down first. It is a function of the state alone (no memory), so it answers from any state an
  agent reaches, wins every generated game from its start (tests/envs/test_alfworld_experts.py plays it on
  every game of every split) and costs one pass over the state's facts. It knows what an agent cannot see,
  as ALFWorld's own ``planner`` expert does.
* :class:`HandcodedExpert` (``expert="handcoded"``): ALFWorld's ``HandCodedTWAgent``, which searches the
  receptacles from what it has seen. It keeps memory of the episode, so every step is fed to it in order;
  the steps are queued and fed when ``expert_action`` is asked for (the same calls in the same order, so
  the same answers, whether asked every step or not). It loops or gives up on some games (on generated
  ``valid_unseen`` it wins 111 of 134 in 50 turns, 4 of 17 ``pick_two_obj_and_place``).
* :class:`PlannerExpert` (``expert="planner"``): the first step of fast-downward's plan from the current state,
  computed in a forked child under ``planner_timeout`` seconds (a search can take seconds and cannot be
  interrupted in-process). The child is made with ``os.fork``, not ``multiprocessing``, so it also runs in
  EnvPool's daemonic workers, which ``multiprocessing`` forbids to have children. While the agent follows the
  plan, the rest of the plan is the answer (the engine is deterministic, so it stays a valid plan); a
  deviation plans again.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import random
import select
import signal
import threading
from collections import defaultdict
from typing import Any

#: The receptacle type each state-change task type needs, the fact it sets and the verb that sets it.
_CHANGE = {
    "pick_clean_then_place_in_recep": ("sinkbasintype", "isclean", "clean"),
    "pick_heat_then_place_in_recep": ("microwavetype", "ishot", "heat"),
    "pick_cool_then_place_in_recep": ("fridgetype", "iscool", "cool"),
}


class OracleExpert:
    """The next action toward the goal, read from the PDDL state (see the module docstring).

    Args:
        task_type: the game's ``traj_data.json`` ``task_type``.
        params: its ``pddl_params`` (``object_target``, ``parent_target``, ``toggle_target``).
        entity_infos: the engine's entity infos (``PddlEnv._entity_infos``), for display names.
    """

    def __init__(self, task_type: str, params: dict[str, Any], entity_infos: Any):
        self.task_type = task_type
        self.object_type = params["object_target"].lower() + "type"
        self.goal_type = (params["parent_target"] or params["toggle_target"]).lower() + "type"
        self.wanted = 2 if task_type == "pick_two_obj_and_place" else 1
        self.change = _CHANGE.get(task_type)
        self.look = task_type == "look_at_obj_in_light"
        self._names = {key: (info.name or key).strip() for key, info in entity_infos.items()}

    def __call__(self, pddl_state: Any, admissible: list[str]) -> str | None:
        """The next command (one of ``admissible``), or None when the goal holds or no command helps."""
        facts: dict[str, list[tuple[str, ...]]] = defaultdict(list)
        for fact in pddl_state.facts:
            facts[fact.name].append(tuple(argument.name for argument in fact.arguments))
        command = self._next(facts)
        return command if command in admissible else None

    # ----------------------------------------------------------------- the decision
    def _next(self, facts: dict[str, list[tuple[str, ...]]]) -> str | None:
        name = self._names
        kind = {o: t for o, t in facts["objecttype"]} | {r: t for r, t in facts["receptacletype"]}
        inside = {o: r for o, r in facts["inreceptacle"]}
        located = {r: loc for r, loc in facts["receptacleatlocation"]}
        here = facts["atlocation"][0][1]
        opened = {r for (r,) in facts["opened"]}
        openable = {r for (r,) in facts["openable"]}
        held = next((o for _, o in facts["holds"]), None)
        changed = {o for (o,) in facts[self.change[1]]} if self.change else set()

        def ready(obj: str) -> bool:  # a goal object in the state the goal asks for
            return kind.get(obj) == self.object_type and (not self.change or obj in changed)

        def reach(receptacle: str) -> str | None:  # go there and open it; None once it can be used
            if located[receptacle] != here:
                return f"go to {name[receptacle]}"
            if receptacle in openable and receptacle not in opened:
                return f"open {name[receptacle]}"
            return None

        if held is not None and kind.get(held) != self.object_type:  # put down what is not wanted
            fits = set(facts["cancontain"])
            holders = [r for r, t in kind.items() if r in located and (t, kind[held]) in fits]
            if not holders:
                return None
            spot = min(holders, key=lambda r: (located[r] != here, name[r]))
            return reach(spot) or f"move {name[held]} to {name[spot]}"
        if self.look:
            lamps = [o for o, t in kind.items() if t == self.goal_type and inside.get(o) in located]
            if held is None:
                return self._fetch([o for o, t in kind.items() if t == self.object_type], inside, here, located, reach)
            if not lamps:
                return None
            lamp = min(lamps, key=lambda o: (located[inside[o]] != here, name[o]))
            if located[inside[lamp]] != here:  # a lamp is used where it stands: nothing to open
                return f"go to {name[inside[lamp]]}"
            return f"use {name[lamp]}"
        goals = [r for r, t in kind.items() if t == self.goal_type and r in located]
        if not goals:
            return None
        done = {r: sum(1 for o, where in inside.items() if where == r and ready(o)) for r in goals}
        goal = min(goals, key=lambda r: (-done[r], name[r]))
        if held is None:
            candidates = [
                o for o, t in kind.items() if t == self.object_type and not (inside.get(o) == goal and ready(o))
            ]
            candidates.sort(key=lambda o: not ready(o))  # one already clean/hot/cool first
            return self._fetch(candidates, inside, here, located, reach, prefer_ready=ready)
        if self.change and not ready(held):
            appliances = [r for r, t in kind.items() if t == self.change[0] and r in located]
            if not appliances:
                return None
            appliance = min(appliances, key=lambda r: (located[r] != here, name[r]))
            if located[appliance] != here:
                return f"go to {name[appliance]}"
            return f"{self.change[2]} {name[held]} with {name[appliance]}"
        return reach(goal) or f"move {name[held]} to {name[goal]}"

    def _fetch(
        self,
        objects: list[str],
        inside: dict[str, str],
        here: str,
        located: dict[str, str],
        reach: Any,
        prefer_ready: Any = None,
    ) -> str | None:
        """The next step of taking one of ``objects`` (one at the agent's location first, then by name)."""
        name = self._names
        objects = [o for o in objects if inside.get(o) in located]  # in a receptacle, not in a held bowl
        if not objects:
            return None

        def cost(obj: str) -> tuple:
            return (prefer_ready is not None and not prefer_ready(obj), located[inside[obj]] != here, name[obj])

        chosen = min(objects, key=cost)
        return reach(inside[chosen]) or f"take {name[chosen]} from {name[inside[chosen]]}"


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


class HandcodedExpert:
    """ALFWorld's ``HandCodedTWAgent`` (seeded per episode), fed every step in order (see the module docstring)."""

    def __init__(self) -> None:
        from alfworld.agents.expert import HandCodedTWAgent

        self._proxy = _install_expert_random()
        self._agent = HandCodedTWAgent(max_steps=200)
        self._rng = random.Random(0)
        self._pending: list[tuple[Any, str]] = []
        self._answer: str | None = None
        self._failed = False

    def reset(self, gamefile: str, seed: str, intro: str) -> str:
        """Start an episode; its first answer is ``look``, as ALFWorld's ``AlfredExpert``."""
        self._rng.seed(seed)
        self._pending, self._failed, self._answer = [], False, "look"
        self._agent.reset(gamefile)
        self._agent.observe(intro)
        return "look"

    def observe(self, state: Any, action: str) -> None:
        """Queue a step (the engine's ``GameState`` after ``action``) for the expert."""
        self._pending.append((state, action))

    def next_action(self) -> str | None:
        """Feed the queued steps in order; the answer after the last one (None once the expert gave up)."""
        from alfworld.agents.expert import HandCodedAgentFailed, HandCodedAgentTimeout

        self._proxy._local.rng = self._rng
        try:
            while self._pending and not self._failed:
                state, action = self._pending.pop(0)
                try:
                    command = self._agent.act(state, 0, state["won"], action)
                except (HandCodedAgentTimeout, HandCodedAgentFailed):
                    self._failed, self._answer = True, None
                    break
                self._answer = command if command in (state["admissible_commands"] or []) else "look"
        finally:
            self._proxy._local.rng = None
        self._pending.clear()
        return self._answer


class PlannerExpert:
    """fast-downward's plan from the current state, in a forked child (see the module docstring)."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self._rest: list[str] | None = None  # the rest of the plan while the agent follows it

    def reset(self) -> None:
        self._rest = None

    def observe(self, action: str, valid: bool) -> None:
        """Follow the agent's step (every step, asked for or not): the plan's step leaves the rest of the plan;
        an invalid command changes nothing; any other step needs a new plan."""
        if valid:
            following = self._rest and self._rest[0] == action.strip()
            self._rest = self._rest[1:] if following else None

    def next_action(self, pddl_state: Any, entity_infos: Any) -> str | None:
        """The next step of the plan from this state (planned now unless the agent followed the last one)."""
        if self._rest is None:
            self._rest = plan_in_child(pddl_state, entity_infos, self.timeout) or []
        return self._rest[0] if self._rest else None


def plan_in_child(pddl_state: Any, entity_infos: Any, timeout: float) -> list[str] | None:
    """``pddl_state.replan(entity_infos)`` run in a child made by ``os.fork`` (it inherits the loaded engine),
    abandoned (killed) after ``timeout`` seconds; None on a timeout or a failure."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: plan, write the pickled plan, leave without running the parent's exit handlers
        status = 1
        try:
            os.close(reader)
            with os.fdopen(writer, "wb") as out:
                out.write(pickle.dumps(pddl_state.replan(entity_infos)))
            status = 0
        finally:
            os._exit(status)
    os.close(writer)
    data = b""
    try:
        with os.fdopen(reader, "rb") as incoming:
            if select.select([incoming], [], [], timeout)[0]:
                data = incoming.read()  # the child writes the whole plan, then exits (EOF)
    finally:
        if not data:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    try:
        plan = pickle.loads(data) if data else None
    except (pickle.UnpicklingError, EOFError):
        return None
    return plan if isinstance(plan, list) else None
