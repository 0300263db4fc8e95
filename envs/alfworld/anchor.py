"""ALFWorld's ``info["anchor_obs"]``: a key of the engine's state, not of its last message.

GiGPO groups turns by anchor, so an anchor must name the state the action was taken in: revisiting a state
gives the same anchor, different states give different anchors. ALFWorld's messages do neither ("Nothing
happens." after any failed command, "You pick up the mug 1 from the countertop 1." once), so the anchor is
rendered from the PDDL facts of the engine state, in the entities' display names::

    at: fridge 1 (open)
    seen: apple 1, cup 2
    holding: bread 2
    changed: +opened(fridge 1) -inreceptacle(bread 2, countertop 1) -objectatlocation(bread 2, countertop 1)

* ``at``: the receptacles at the agent's location (``the middle of the room`` where there is none: the
  start), each openable one followed by ``(open)`` or ``(closed)``;
* ``seen``: what lies in or on them where they can be seen into (not openable, or open), sorted;
* ``holding``: what the agent holds, sorted;
* ``changed`` (only when something else changed): every fact of the domain's other dynamic predicates that
  differs from the episode's start, ``+`` added and ``-`` removed, sorted; a location is named by the
  receptacles there.

The start state is fixed per task, so these lines determine the state. Two dynamic predicates are left
out, because no state that differs only in them behaves differently: ``checked`` (set by look, examine
and open; no precondition, goal or message reads it) and ``holdsany`` (true exactly when ``holding`` is
not empty). So is textworld's residue of removed facts (it keeps ``not_inreceptacle(o, r)`` and the like
after an effect removes a fact): that is history, not state, and ALFWorld's text reads it in one corner only
(an object taken from a receptacle and put into another at the same location is also listed as "on the
floor"). The fast path and ``exact_stock=True`` run the same ``PddlState`` code, so they give the same
anchors (tests/envs/test_alfworld_identity.py compares them).

Cost: per step a few set lookups and a comparison of each dynamic predicate's facts with the start's
(the engine already keeps facts per predicate), no extra engine call.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

#: Dynamic predicates that are not part of the anchor (see the module docstring).
LEFT_OUT = frozenset({"checked", "holdsany"})
START = "the middle of the room"


def dynamic_predicates(task: Any) -> set[str]:
    """Predicates some action effect (or axiom) of the translated PDDL task can change; every other fact
    is the same in all states of a game. (Also what the fast path's template analysis reads; it lives here
    so that the anchor, which the stock engine computes too, runs no code of :mod:`.fast`.)"""
    names = {effect.literal.predicate for action in task.actions for effect in action.effects}
    names.update(axiom.name for axiom in getattr(task, "axioms", ()))
    return {str(name) for name in names}


class StateAnchor:
    """The anchor text of the states of one episode, built from its start state.

    Args:
        pddl_state: the engine's ``PddlState`` right after ``reset()`` (textworld's ``PddlEnv._pddl_state``).
        entity_infos: the engine's entity infos (``PddlEnv._entity_infos``), for display names.
    """

    def __init__(self, pddl_state: Any, entity_infos: Mapping[str, Any]):
        from textworld.logic import Signature

        self._names = {key: (info.name or key).strip() for key, info in entity_infos.items()}
        dynamic = dynamic_predicates(pddl_state.task) - LEFT_OUT
        # ALFWorld's types are flat, so a fact's signature is its predicate's declared parameter types
        signatures = {p.name: Signature(p.name, [a.type_name for a in p.arguments]) for p in pddl_state.task.predicates}
        self._at, self._holds = signatures["atlocation"], signatures["holds"]
        self._opened, self._inside = signatures["opened"], signatures["inreceptacle"]
        self._tracked = [signatures[name] for name in sorted(dynamic - {"atlocation", "holds"})]
        self._start = {sig: frozenset(pddl_state.facts_with_signature(sig)) for sig in self._tracked}
        self._openable = {fact.arguments[0].name for fact in pddl_state.facts_with_signature(signatures["openable"])}
        here: dict[str, list[str]] = defaultdict(list)
        for fact in pddl_state.facts_with_signature(signatures["receptacleatlocation"]):
            here[fact.arguments[1].name].append(fact.arguments[0].name)
        self._here = {
            location: sorted(receptacles, key=lambda r: self._names.get(r, r)) for location, receptacles in here.items()
        }
        for location, receptacles in self._here.items():  # a location is named by what stands there
            self._names[location] = "/".join(self._names[r] for r in receptacles)

    def __call__(self, pddl_state: Any) -> str:
        facts = pddl_state.facts_with_signature
        names = self._names
        location = next(iter(facts(self._at))).arguments[1].name
        receptacles = self._here.get(location, ())
        opened = {fact.arguments[0].name for fact in facts(self._opened)}
        at = []
        for receptacle in receptacles:
            if receptacle in self._openable:
                at.append(names[receptacle] + (" (open)" if receptacle in opened else " (closed)"))
            else:
                at.append(names[receptacle])
        visible = {r for r in receptacles if r not in self._openable or r in opened}
        seen = sorted(
            names[fact.arguments[0].name] for fact in facts(self._inside) if fact.arguments[1].name in visible
        )
        holding = sorted(names[fact.arguments[1].name] for fact in facts(self._holds))
        lines = [
            f"at: {', '.join(at) or START}",
            f"seen: {', '.join(seen) or 'nothing'}",
            f"holding: {', '.join(holding) or 'nothing'}",
        ]
        changed = []
        for signature in self._tracked:
            now, start = facts(signature), self._start[signature]
            if now != start:
                changed += ["+" + self._text(fact) for fact in now - start]
                changed += ["-" + self._text(fact) for fact in start - now]
        if changed:
            lines.append("changed: " + " ".join(sorted(changed)))
        return "\n".join(lines)

    def _text(self, fact: Any) -> str:
        return f"{fact.name}({', '.join(self._names.get(v.name, v.name) for v in fact.arguments)})"
