"""The adapter to ALFWorld's engine: textworld's ``PddlEnv`` in ALFWorld's wrappers, as ``AlfredTWEnv`` builds it.

:class:`Engine` is what ``ALFWorldEnv`` talks to: it builds the stack (``AlfredInfos(AlfredDemangler(...))``
around :class:`FastPddlEnv` or, with ``exact_stock=True`` or a missing seam, textworld's own ``PddlEnv``),
loads, resets and steps it, and hands out the engine state the experts and the anchor read.

:class:`FastPddlEnv` is textworld's ``PddlEnv`` with exact speedups at documented seams (engine-perf.md §1.3),
all in textworld 1.7.0 / alfworld 0.4.2 / fast-downward-textworld 20.6.4 (checked by :mod:`.seams`):

* **translation reuse**: ``reset()`` right after ``load()`` reuses the ``PddlState`` that ``load()`` built
  (stock builds a second one, translating the problem twice more);
* translations and grammar parses are memoised in memory and on disk (:mod:`.caches`, through the patches of
  :mod:`.patches`, which its methods engage); GC is paused during ``load`` (30% of a translation is GC scanning);
* applicable actions are built from a per-game cache of each operator's name (decoded from C) and argument
  mapping instead of decoding and rebuilding them every step;
* **cached command derivation**: a command template whose text depends only on the action's arguments and on
  static predicates (no ``#nonterminal#``, no ``state``/``facts`` in expressions, every ``| given`` query over
  predicates that no action effect touches; for ALFWorld all of them) is derived once per (game, entity
  names, operator) and reused. Admissible commands are derived every step (the next step looks the command
  up among them, as stock does); with the cache that is one dictionary lookup per applicable action.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fast_downward
import textworld
import textworld.envs.pddl.logic as pddl_logic
from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos
from textworld.core import GameState
from textworld.envs.pddl import PddlEnv, textgen
from textworld.logic import Action, Placeholder, Rule, Variable

from agentgym.envs.alfworld import patches
from agentgym.envs.alfworld.anchor import dynamic_predicates
from agentgym.envs.alfworld.caches import MEMO, digest

_COMMANDS = MEMO["commands"]  # (game, entity names) -> {operator: (derived template, command)}


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _static_symbols(symbols: list[Any], dynamic: set[str]) -> bool:
    for symbol in symbols:
        if isinstance(symbol, textgen.TerminalSymbol):
            continue
        if isinstance(symbol, textgen.EvalSymbol):
            names = set(compile(symbol.expression, "<template>", "eval").co_names)
            if names & {"state", "facts", "context", "self"}:
                return False
        elif isinstance(symbol, textgen.ConditionalSymbol):
            if symbol.given:
                predicates = {p.name for p in Rule.parse_conjunctive_query(symbol.given).preconditions}
                if {p[4:] if p.startswith("not_") else p for p in predicates} & dynamic:
                    return False
            if not _static_symbols([symbol.expression], dynamic):
                return False
        elif isinstance(symbol, textgen.ListSymbol):
            if not _static_symbols([symbol.symbol], dynamic):
                return False
        else:  # a #nonterminal# (its rules may test the state) or an unknown symbol
            return False
    return True


def static_templates(logic: Any, task: Any) -> dict[str, bool]:
    """For each command template of a game: is its derivation a function of the action's arguments and the
    static facts only?"""
    dynamic = dynamic_predicates(task)
    templates = sorted({action.template for action in logic.actions.values()})
    return dict(zip(templates, _static_flags(tuple(templates), frozenset(dynamic))))


def _static_flags(templates: tuple[str, ...], dynamic: frozenset[str]) -> list[bool]:
    memo = MEMO["static_flags"]
    flags = memo.recall((templates, dynamic))
    if flags is not None:
        return flags
    flags = []
    with patches.engaged():
        for template in templates:
            try:
                symbols = textgen._parse_and_convert(template, rule_name="symbols")
                flags.append(_static_symbols(symbols, set(dynamic)))
            except Exception:  # anything unexpected: derive it every time, as stock does
                flags.append(False)
    return memo.remember((templates, dynamic), flags)


def _derive_commands(
    actions: list[Any], grammar: Any, pddl_state: Any, entity_infos: Any, static: dict[str, bool], cache: dict
) -> list[str]:
    """``_valid_commands`` exactly as ``PddlEnv._gather_infos`` derives them, from ``cache`` for static
    templates. Sets each action's ``command_template`` to its derived template, as stock does."""
    mapping = {k: info.name for k, info in entity_infos.items()}
    commands = []
    facts = None
    with patches.engaged():
        for action in actions:
            template = action.command_template
            cached = static.get(template, False)
            key = (action.name, *(v.name for v in action.mapping.values())) if cached else None
            hit = cache.get(key) if cached else None
            if hit is None:
                if facts is None:
                    facts = list(pddl_state.facts)
                context = {
                    "state": pddl_state,
                    "facts": list(facts),
                    "variables": {ph.name: entity_infos[var.name] for ph, var in action.mapping.items()},
                    "mapping": action.mapping,
                    "entity_infos": entity_infos,
                }
                derived = grammar.derive(template, context)
                action.command_template = derived
                hit = derived, action.format_command(mapping)
                if cached:
                    cache[key] = hit
            else:
                action.command_template = hit[0]
            commands.append(hit[1])
    return commands


def _entity_digest(entity_infos: dict[str, Any]) -> str:
    rows = []
    for key, info in entity_infos.items():  # every attribute a template may read (EntityInfo has slots)
        rows.append((key, [getattr(info, slot, None) for slot in type(info).__slots__]))
    return hashlib.sha256(repr(sorted(rows, key=lambda row: row[0])).encode()).hexdigest()


class FastPddlEnv(PddlEnv):
    """textworld's ``PddlEnv`` with the exact speedups of this module (see its docstring).

    Args:
        infos: as ``PddlEnv``.
        planner: make the planner's ``optimize=True`` translation for ``replan`` (always made when
            ``infos`` asks for ``policy_commands`` or the ``walkthrough`` extra); without it the
            planner's slot holds the plain translation, which nothing reads.
        lazy: derive admissible commands when first read (when every template is static).
    """

    def __init__(self, infos: Any = None, *, planner: bool = False):
        super().__init__(infos)
        wanted = self.request_infos.policy_commands or "walkthrough" in self.request_infos.extras
        self._planner = planner or bool(wanted)  # these infos run the planner on its own translation
        self._fresh_state: Any = None
        self._static: dict[str, bool] = {}
        self._commands: dict = {}
        self._templates: list[str] = []
        self._operators: dict[int, tuple] = {}
        self._game_key = ""

    def load(self, filename_or_data: Any) -> None:
        self._fresh_state = None
        with patches.engaged(self._planner), _gc_paused():  # ~30% of a translation is GC scanning
            super().load(filename_or_data)
        data = self._game_data
        self._fresh_state = self._pddl_state
        self._game_key = digest(data["pddl_domain"], data["pddl_problem"], data["grammar"])
        self._static = static_templates(self._logic, self._pddl_state.task)
        self._templates = sorted(set(action.template for action in self._logic.actions.values()))
        self._commands = {}
        self._operators: dict[int, tuple] = {}  # operator id -> what an action is built from

    def _applicable_actions(self) -> list[Any]:
        """``PddlState.all_applicable_actions()``, remembering per operator id (fixed for a loaded SAS
        task) the name decoded from C and the argument mapping instead of rebuilding them every step."""
        pddl_state, known = self._pddl_state, self._operators
        count = pddl_state.downward_lib.get_applicable_operators_count()
        operators = (fast_downward.Operator * count)()
        pddl_state.downward_lib.get_applicable_operators(operators)
        pddl_state._operators = {op.id: op for op in operators}
        actions, seen = [], set()
        for operator in operators:
            made = known.get(operator.id)
            if made is None:
                text = operator.name
                name, *arguments = text.split()
                mapping = {
                    Placeholder(p.name.strip("?"), p.type_name): Variable(arg, p.type_name)
                    for p, arg in zip(pddl_state._actions[name].parameters, arguments)
                }
                logic_action = self._logic.actions[name]
                made = known[operator.id] = (text, name, mapping, logic_action.template, logic_action.feedback_rule)
            text, name, mapping, template, feedback_rule = made
            if text in seen:
                continue
            seen.add(text)
            action = Action(name=name, preconditions=[], postconditions=[])
            action.id = operator.id
            action.mapping = dict(mapping)
            action.command_template = template
            action.feedback_rule = feedback_rule
            actions.append(action)
        return actions

    def reset(self) -> Any:
        # stock ``PddlEnv.reset``, reusing the state ``load`` has just built
        with patches.engaged(self._planner):
            if self._fresh_state is not None:
                self._pddl_state, self._fresh_state = self._fresh_state, None
            else:
                self._pddl_state = pddl_logic.PddlState(self.downward_lib, self._game_data["pddl_problem"], self._logic)
            key = self._game_key, _entity_digest(self._entity_infos)
            self._commands = _COMMANDS.recall(key) or _COMMANDS.remember(key, {})

            self.prev_state = None
            self.state = GameState()
            self._last_action = None
            self._moves = 0
            context = {
                "state": self._pddl_state,
                "facts": list(self._pddl_state.facts),
                "variables": {},
                "mapping": {},
                "entity_infos": self._entity_infos,
            }
            self.state.feedback = self._logic.grammar.derive("#intro#", context)
            self.state.raw = self.state.feedback
            self._gather_infos()
            if "walkthrough" in self.request_infos.extras:
                walkthrough = self.walkthrough or self._pddl_state.replan(self._entity_infos)
                self.state["extra.walkthrough"] = walkthrough
            return self.state

    def step(self, command: str) -> Any:
        self._fresh_state = None
        with patches.engaged(self._planner):
            return super().step(command)

    def _gather_infos(self) -> None:
        state = self.state
        state["command_templates"] = list(self._templates)
        state["won"] = self._pddl_state.check_goal()
        state["lost"] = False
        state["_entity_infos"] = dict(self._entity_infos)
        state["_facts"] = list(self._pddl_state.facts)
        if self.request_infos.facts:
            state["facts"] = list(map(self._get_human_readable_fact, state["_facts"]))
        state["last_action"] = None
        state["_last_action"] = self._last_action
        actions = self._applicable_actions()
        state["_valid_actions"] = actions
        state["_valid_commands"] = _derive_commands(
            actions, self._logic.grammar, self._pddl_state, self._entity_infos, self._static, self._commands
        )
        state["admissible_commands"] = sorted(set(state["_valid_commands"]))
        if self.request_infos.moves:
            state["moves"] = self._moves
        if self.request_infos.policy_commands:
            state["policy_commands"] = self._pddl_state.replan(self._entity_infos)


class Engine:
    """One env's engine stack (see the module docstring): load, reset, step, close, and the state it exposes.

    Args:
        fast: run :class:`FastPddlEnv` (else textworld's own ``PddlEnv``, every original unmodified).
        facts: ask the engine for human-readable facts (ALFWorld's handcoded expert reads them).
        planner: make the planner's translation at load (``expert="planner"``).
    """

    def __init__(self, fast: bool, facts: bool, planner: bool):
        infos = textworld.EnvInfos(admissible_commands=True, won=True, facts=facts, extras=["gamefile"])
        if fast:
            patches.install()
            inner: PddlEnv = FastPddlEnv(infos, planner=planner)
        else:
            inner = PddlEnv(infos)
        self.pddl_env = inner
        self._stack = AlfredInfos(AlfredDemangler(inner))
        #: The game file loaded (None before the first load).
        self.path: Path | None = None

    def reset(self, path: Path) -> GameState:
        """Start ``path``'s game (loading it unless it is the one loaded)."""
        argv = sys.argv
        try:
            if self.path != path:
                self.path = None
                self._stack.load(str(path))
                self.path = path
            return self._stack.reset()
        finally:
            sys.argv = argv  # fast-downward's translator overwrites the process's sys.argv

    def step(self, command: str) -> tuple[GameState, float, bool]:
        state, score, done = self._stack.step(command)
        return state, float(score or 0), bool(done)

    @property
    def pddl_state(self) -> Any:
        """textworld's ``PddlState`` of the current state (the anchor and the experts read its facts)."""
        return self.pddl_env._pddl_state

    @property
    def entity_infos(self) -> Any:
        return self.pddl_env._entity_infos

    @property
    def walkthrough(self) -> list[str] | None:
        """The game file's walkthrough, as ``PddlEnv`` read it."""
        return self.pddl_env.walkthrough

    def close(self) -> None:
        # libdownward is not dlclose'd: copies share a soname, so closing one can unload another's
        with contextlib.suppress(Exception):  # after an engine fault, freeing must not raise again
            self._stack.close()
        self.path = None
