"""Exact acceleration of ALFWorld's TextWorld-PDDL engine (``/work/shared/specs/engine-perf.md`` §1.3).

Nothing here forks the packages. The seams, all in textworld 1.7.0 / alfworld 0.4.2 / fast-downward-textworld
20.6.4, are:

* :class:`FastPddlEnv`, a subclass of textworld's ``PddlEnv`` that overrides ``load``, ``reset``, ``step``
  and ``_gather_infos``:

  - **translation reuse**: ``reset()`` right after ``load()`` reuses the ``PddlState`` that ``load()`` built
    (stock builds a second one, translating the problem twice more);
  - **on-disk translation cache**: fast-downward's PDDL->SAS translation and the TatSu parse of the game's
    grammar document are pure functions of the game's text; they are kept in memory (LRU) and on disk under
    ``agentgym.cache.cache_root()/alfworld-engine/v<N>/``, keyed by the sha256 of the inputs and the
    package versions, written atomically;
  - the planner's second (``optimize=True``) translation is only made when the env uses the planner;
  - GC is paused during ``load`` (30% of a translation is GC scanning);
  - applicable actions are built from a per-game cache of each operator's name (decoded from C) and
    argument mapping instead of decoding and rebuilding them every step;
  - **cached command derivation**: a command template whose text depends only on the action's arguments
    and on static predicates (no ``#nonterminal#``, no ``state``/``facts`` in expressions, every ``| given``
    query over predicates that no action effect touches; for ALFWorld all of them) is derived once per
    (game, entity names, operator) and reused;
  - **lazy admissible commands**: when every template is static, ``admissible_commands`` and
    ``_valid_commands`` are derived when first read. Derivation then only reads static facts, so deriving
    later is exact. (Stock ``step`` still reads the previous state's ``_valid_commands`` to look the command
    up; with the command cache that is one dictionary lookup per applicable action.)
* process-wide patches of textworld's text grammar and fast-downward that **dispatch on a per-thread
  flag**: only code running inside :func:`engaged` (the methods of :class:`FastPddlEnv`) takes the fast
  branch; everything else, including a stock ``PddlEnv`` in the same process, calls the unmodified
  originals. The fast branches: grammar strings parsed once and handed out as structural clones (no deep
  copies), conjunctive queries parsed once, contexts copied shallowly (derivation only re-assigns them).

:func:`seam_problems` checks at import that every seam exists with the pinned package versions and the
pinned source of each function the fast path replaces or relies on. If anything differs, :data:`AVAILABLE`
is ``False``, a warning names what is missing, and ``ALFWorldEnv`` runs the stock engine (stock speed).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import inspect
import os
import pickle
import sys
import tempfile
import threading
import warnings
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from agentgym.cache import cache_root
from agentgym.envs.alfworld.anchor import dynamic_predicates

#: Package versions the fast path was verified against (output-identical to stock).
PINNED = {"alfworld": "0.4.2", "textworld": "1.7.0", "fast-downward-textworld": "20.6.4"}
#: Version of the on-disk cache layout; bump it when what is stored changes.
DISK_CACHE_VERSION = 1
#: ``AGENTGYM_ALFWORLD_DISK_CACHE=0`` turns the on-disk translation cache off (benchmarks, read-only caches).
DISK_CACHE_VARIABLE = "AGENTGYM_ALFWORLD_DISK_CACHE"

#: sha256 (first 16 hex digits) of the source of every function the fast path replaces or relies on.
SOURCES = {
    "textworld.envs.pddl.PddlEnv.load": "3280f48a2d5b468e",
    "textworld.envs.pddl.PddlEnv.reset": "a80cae96e20a3b86",
    "textworld.envs.pddl.PddlEnv.step": "5befa47f8c981867",
    "textworld.envs.pddl.PddlEnv._gather_infos": "18e60b8a5a6c86c9",
    "textworld.envs.pddl.logic.PddlState.__init__": "e94c2d7361e302c7",
    "textworld.envs.pddl.logic.PddlState.all_applicable_actions": "f122cefa75c6f89c",
    "textworld.envs.pddl.logic.GameLogic.__init__": "8eb1547d426d3913",
    "textworld.envs.pddl.logic._parse_and_convert": "4d0401d024e4b974",
    "textworld.envs.pddl.textgen._parse_and_convert": "449a494829320c03",
    "textworld.envs.pddl.textgen.copy_context": "ab04ca2ab859dd9e",
    "textworld.envs.pddl.textgen.query": "f7fc025a1b1690b3",
    "textworld.envs.pddl.textgen.Symbol.copy": "478141a250791bba",
    "textworld.envs.pddl.textgen.ConditionalSymbol.derive": "38000cd89a5e899a",
    "textworld.envs.pddl.textgen.ListSymbol.derive": "3817456fa2f7ef30",
    "textworld.envs.pddl.textgen.EvalSymbol.derive": "ece4891c1afc0c3f",
    "textworld.envs.pddl.textgen.ContextSensitiveGrammar.replace": "f27034356235ad2d",
    "textworld.envs.pddl.textgen.ContextSensitiveGrammar.derive": "65bc95319fadbad0",
    "textworld.logic.Rule.parse_conjunctive_query": "f0c0f15f1edbec89",
    "fast_downward.pddl2sas": "3b8ca044f0a32379",
}

_LOCAL = threading.local()


# ------------------------------------------------------------------------------------------ the seam check
def _resolve(dotted: str) -> Any:
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            is_class = isinstance(target, type)  # a class attribute as stored: a classmethod stays one
            target = inspect.getattr_static(target, name) if is_class else getattr(target, name)
        return target
    raise ImportError(dotted)


def source_digest(function: Any) -> str:
    function = getattr(function, "__func__", function)  # classmethod / staticmethod
    function = inspect.unwrap(function)  # through our own dispatching patches to the original
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


def seam_problems() -> list[str]:
    """What is missing or different from the versions the fast path was verified on (empty: all present)."""
    problems = []
    for package, pinned in PINNED.items():
        try:
            installed = metadata.version(package)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != pinned:
            problems.append(f"{package} {installed or 'not installed'} (fast path pinned to {pinned})")
    for dotted, digest in SOURCES.items():
        try:
            seam = _resolve(dotted)
        except (ImportError, AttributeError) as exc:
            problems.append(f"{dotted} is missing ({type(exc).__name__}: {exc})")
            continue
        try:
            found = source_digest(seam)
        except (OSError, TypeError) as exc:
            problems.append(f"{dotted} changed (its source cannot be read: {exc})")
            continue
        if found != digest:
            problems.append(f"{dotted} changed (source sha256 {found}, pinned {digest})")
    return problems


#: Why the fast path is off (empty when it is available); checked once, at import.
PROBLEMS: list[str] = seam_problems()
#: Whether the fast engine path can be used in this process.
AVAILABLE = not PROBLEMS


@functools.cache
def warn_unavailable() -> None:
    """Warn once per process that ALFWorld runs at stock speed, naming every missing seam."""
    warnings.warn(
        "agentgym ALFWorld: the fast engine path is off, running the stock engine (stock speed) because "
        "these seams are missing or changed: " + "; ".join(PROBLEMS),
        RuntimeWarning,
        stacklevel=3,
    )


# ------------------------------------------------------------------------------------------ dispatch
@contextlib.contextmanager
def engaged(planner: bool | None = None) -> Iterator[None]:
    """Run the fast branches of the patched engine functions in this thread (nests)."""
    saved = getattr(_LOCAL, "engaged", False), getattr(_LOCAL, "planner", True)
    _LOCAL.engaged = True
    if planner is not None:
        _LOCAL.planner = planner
    try:
        yield
    finally:
        _LOCAL.engaged, _LOCAL.planner = saved


def _dispatch(original: Callable[..., Any], fast: Callable[..., Any]) -> Callable[..., Any]:
    """``fast`` inside :func:`engaged`, else the unmodified ``original``."""

    @functools.wraps(original)
    def call(*args: Any, **kwargs: Any) -> Any:
        if getattr(_LOCAL, "engaged", False):
            return fast(*args, **kwargs)
        return original(*args, **kwargs)

    call.__wrapped__ = original
    return call


class _LRU(OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def remember(self, key: Any, value: Any) -> Any:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)
        return value

    def recall(self, key: Any) -> Any:
        try:
            self.move_to_end(key)
            return self[key]
        except KeyError:  # not there, or dropped by another thread meanwhile
            return None


# ------------------------------------------------------------------------------------------ disk cache
def disk_cache_enabled() -> bool:
    return os.environ.get(DISK_CACHE_VARIABLE, "1") != "0"


def _digest(*parts: str) -> str:
    hasher = hashlib.sha256(repr(sorted(PINNED.items())).encode())
    for part in parts:
        hasher.update(b"\0" + part.encode())
    return hasher.hexdigest()


def disk_cache_dir() -> Path:
    return cache_root() / "alfworld-engine" / f"v{DISK_CACHE_VERSION}"


def _disk_memo(kind: str, key: str, compute: Callable[[], Any]) -> Any:
    if not disk_cache_enabled():
        return compute()
    path = disk_cache_dir() / kind / key[:2] / f"{key}.pkl.z"
    with contextlib.suppress(OSError, pickle.UnpicklingError, zlib.error, EOFError, AttributeError):
        return pickle.loads(zlib.decompress(path.read_bytes()))
    value = compute()
    with contextlib.suppress(OSError, pickle.PicklingError):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, scratch = tempfile.mkstemp(prefix=".writing-", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(zlib.compress(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), 1))
            os.replace(scratch, path)  # atomic: a reader sees a whole entry or none
        finally:
            with contextlib.suppress(OSError):
                os.unlink(scratch)
    return value


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# ------------------------------------------------------------------------------------------ the patches
def _clone(symbol: Any) -> Any:
    """A structural copy of a freshly parsed grammar symbol (what ``deepcopy`` gives, without its memo
    bookkeeping): symbol attributes are strings except the nested ``expression``/``symbol`` symbols."""
    from textworld.envs.pddl.textgen import Symbol

    clone = object.__new__(type(symbol))
    state = dict(symbol.__dict__)
    state["context"] = {}  # contexts are always re-assigned before a symbol is derived
    for name in ("expression", "symbol"):
        if isinstance(state.get(name), Symbol):
            state[name] = _clone(state[name])
    clone.__dict__.update(state)
    return clone


def _copy_context(context: dict[str, Any]) -> dict[str, Any]:
    # derivation re-assigns and adds keys to ``variables``/``mapping`` but never mutates their values
    return {
        "state": context["state"],
        "facts": context["facts"],
        "variables": dict(context["variables"]),
        "mapping": dict(context["mapping"]),
        "entity_infos": context["entity_infos"],
    }


#: The in-process memos of the fast branches (bounded): grammar strings -> parsed symbols, query strings ->
#: rules, game grammar documents -> (actions, grammar), (domain, problem) -> translation, and per game the
#: derived commands.
_MEMO = {
    "symbols": _LRU(8192),
    "queries": _LRU(4096),
    "documents": _LRU(16),
    "translations": _LRU(16),
    "commands": _LRU(256),
}


def clear_memory_caches() -> None:
    """Forget everything memoised in this process (the on-disk cache stays): the next load is cold."""
    for memo in _MEMO.values():
        memo.clear()
    _static_flags.cache_clear()


@functools.cache
def install() -> None:
    """Install the dispatching patches (idempotent). Only called when :data:`AVAILABLE`."""
    import fast_downward
    import textworld.envs.pddl.logic as pddl_logic
    import textworld.envs.pddl.textgen as textgen
    from textworld.logic import Rule

    # textgen: memoised parses handed out as clones
    parse_symbols = textgen._parse_and_convert
    parsed_symbols = _MEMO["symbols"]

    def fast_parse_symbols(text: str, rule_name: str | None = None, trace: bool = False) -> Any:
        if trace:
            return parse_symbols(text, rule_name=rule_name, trace=trace)
        key = (text, rule_name)
        symbols = parsed_symbols.recall(key)
        if symbols is None:
            symbols = parsed_symbols.remember(key, parse_symbols(text, rule_name=rule_name))
        return [_clone(symbol) for symbol in symbols]

    query_rule = Rule.parse_conjunctive_query.__func__
    queries = _MEMO["queries"]

    def fast_query_rule(cls: type, expression: str) -> Any:
        rule = queries.recall(expression)
        return rule if rule is not None else queries.remember(expression, query_rule(cls, expression))

    def fast_symbol_copy(self: Any, context: dict[str, Any]) -> Any:
        clone = _clone(self)
        clone.context = _copy_context(context)
        return clone

    grammar_replace = textgen.ContextSensitiveGrammar.replace

    def fast_replace(self: Any, start: Any) -> list[Any]:
        rules = self._rules.get(str(start))
        if not rules:
            raise textgen.CSGUnknownSymbolError(start)
        for rule in rules:  # stock: the first rule whose condition holds (IndexError when none does)
            if not rule.condition:
                break
            condition = Rule.parse_conjunctive_query(rule.condition)
            if any(True for _ in start.context["state"].all_assignments(condition, start.context["mapping"])):
                break
        else:
            raise IndexError("list index out of range")
        symbols = [_clone(symbol) for symbol in rule.rhs]
        for symbol in symbols:
            symbol.context = _copy_context(start.context)
        return symbols

    # logic: the grammar document parse (per game), in memory and on disk
    parse_document = pddl_logic._parse_and_convert
    documents = _MEMO["documents"]

    def fast_parse_document(text: str, rule_name: str | None = None, **kwargs: Any) -> Any:
        if kwargs:
            return parse_document(text, rule_name=rule_name, **kwargs)
        key = _digest("document", str(rule_name), text)
        found = documents.recall(key)
        if found is None:
            found = documents.remember(
                key, _disk_memo("grammar", key, lambda: parse_document(text, rule_name=rule_name))
            )
        return found

    # fast-downward: translations, in memory and on disk; the planner's translation only when wanted
    translate = fast_downward.pddl2sas
    translations = _MEMO["translations"]

    def restoring_argv(*args: Any, **kwargs: Any) -> Any:
        argv = sys.argv
        try:
            return translate(*args, **kwargs)
        finally:
            sys.argv = argv  # fast-downward overwrites the process's sys.argv for its option parser

    def fast_translate(domain: str, problem: str, verbose: bool = False, optimize: bool = False) -> Any:
        if optimize and not getattr(_LOCAL, "planner", True):
            optimize = False  # the planner's slot gets the plain translation: valid, and never used
        if verbose:
            return restoring_argv(domain, problem, verbose=verbose, optimize=optimize)
        key = _digest("sas", str(optimize), domain, problem)
        found = translations.recall(key)
        if found is None:

            compute = functools.partial(restoring_argv, domain, problem, optimize=optimize)
            found = translations.remember(key, _disk_memo("sas", key, compute))
        return found

    textgen._parse_and_convert = _dispatch(parse_symbols, fast_parse_symbols)
    textgen.copy_context = _dispatch(textgen.copy_context, _copy_context)
    textgen.Symbol.copy = _dispatch(textgen.Symbol.copy, fast_symbol_copy)
    textgen.ContextSensitiveGrammar.replace = _dispatch(grammar_replace, fast_replace)
    Rule.parse_conjunctive_query = classmethod(_dispatch(query_rule, fast_query_rule))
    pddl_logic._parse_and_convert = _dispatch(parse_document, fast_parse_document)
    fast_downward.pddl2sas = _dispatch(translate, fast_translate)


# ------------------------------------------------------------------------------------------ static templates
def _static_symbols(symbols: list[Any], dynamic: set[str]) -> bool:
    from textworld.envs.pddl import textgen
    from textworld.logic import Rule

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


@functools.lru_cache(maxsize=64)
def _static_flags(templates: tuple[str, ...], dynamic: frozenset[str]) -> list[bool]:
    from textworld.envs.pddl import textgen

    flags = []
    with engaged():
        for template in templates:
            try:
                symbols = textgen._parse_and_convert(template, rule_name="symbols")
                flags.append(_static_symbols(symbols, set(dynamic)))
            except Exception:  # anything unexpected: derive it every time, as stock does
                flags.append(False)
    return flags


# ------------------------------------------------------------------------------------------ the env
_COMMANDS = _MEMO["commands"]  # (game, entity names) -> {operator: (derived template, command)}
_LAZY_KEYS = ("_valid_commands", "admissible_commands")


def _make_lazy_state_class() -> type:
    from textworld.core import GameState

    class LazyGameState(GameState):
        """A ``GameState`` whose ``_valid_commands`` and ``admissible_commands`` are derived on first read."""

        def _materialize(self) -> None:
            compute = self.__dict__.pop("_compute", None)
            if compute is not None:
                valid = compute()
                dict.__setitem__(self, "_valid_commands", valid)
                dict.__setitem__(self, "admissible_commands", sorted(set(valid)))

        def __missing__(self, key: Any) -> Any:
            if key in _LAZY_KEYS and "_compute" in self.__dict__:
                self._materialize()
                return dict.__getitem__(self, key)
            raise KeyError(key)

        def get(self, key: Any, default: Any = None) -> Any:
            if key in _LAZY_KEYS:
                self._materialize()
            return dict.get(self, key, default)

        def __setitem__(self, key: Any, value: Any) -> None:
            if key in _LAZY_KEYS:
                self._materialize()
            dict.__setitem__(self, key, value)

        def __delitem__(self, key: Any) -> None:
            if key in _LAZY_KEYS:
                self._materialize()
            dict.__delitem__(self, key)

        def __contains__(self, key: object) -> bool:
            return (key in _LAZY_KEYS and "_compute" in self.__dict__) or dict.__contains__(self, key)

        def __len__(self) -> int:
            self._materialize()
            return dict.__len__(self)

        def __reduce_ex__(self, protocol: Any) -> Any:
            self._materialize()
            return GameState, (dict(dict.items(self)),)

        def __reduce__(self) -> Any:
            return self.__reduce_ex__(2)

    def resolving(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def whole(self: Any, *args: Any, **kwargs: Any) -> Any:
            self._materialize()
            return method(self, *args, **kwargs)

        return whole

    for name in ("__iter__", "__reversed__", "keys", "items", "values", "__repr__", "__eq__", "__ne__",
                 "__or__", "__ror__", "__ior__", "pop", "popitem", "setdefault", "update", "clear", "copy"):
        base = getattr(GameState, name, None) or getattr(dict, name)
        setattr(LazyGameState, name, resolving(base))
    return LazyGameState


@functools.cache
def _lazy_state_class() -> type:
    return _make_lazy_state_class()


def _derive_commands(
    actions: list[Any], grammar: Any, pddl_state: Any, entity_infos: Any, static: dict[str, bool], cache: dict
) -> list[str]:
    """``_valid_commands`` exactly as ``PddlEnv._gather_infos`` derives them, from ``cache`` for static
    templates. Sets each action's ``command_template`` to its derived template, as stock does."""
    mapping = {k: info.name for k, info in entity_infos.items()}
    commands = []
    facts = None
    with engaged():
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


def _fast_pddl_env_class() -> type:
    import fast_downward
    import textworld.envs.pddl.logic as pddl_logic
    from textworld.core import GameState
    from textworld.envs.pddl import PddlEnv
    from textworld.logic import Action, Placeholder, Variable

    class FastPddlEnv(PddlEnv):
        """textworld's ``PddlEnv`` with the exact speedups of this module (see its docstring).

        Args:
            infos: as ``PddlEnv``.
            planner: make the planner's ``optimize=True`` translation for ``replan`` (always made when
                ``infos`` asks for ``policy_commands`` or the ``walkthrough`` extra); without it the
                planner's slot holds the plain translation, which nothing reads.
            lazy: derive admissible commands when first read (when every template is static).
        """

        def __init__(self, infos: Any = None, *, planner: bool = False, lazy: bool = True):
            super().__init__(infos)
            wanted = self.request_infos.policy_commands or "walkthrough" in self.request_infos.extras
            self._planner = planner or bool(wanted)  # these infos run the planner on its own translation
            self._lazy = lazy
            self._fresh_state: Any = None
            self._static: dict[str, bool] = {}
            self._commands: dict = {}
            self._templates: list[str] = []
            self._operators: dict[int, tuple] = {}
            self._game_key = ""

        def load(self, filename_or_data: Any) -> None:
            self._fresh_state = None
            with engaged(self._planner), _gc_paused():  # ~30% of a translation is GC scanning
                super().load(filename_or_data)
            data = self._game_data
            self._fresh_state = self._pddl_state
            self._game_key = _digest(data["pddl_domain"], data["pddl_problem"], data["grammar"])
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
                    made = known[operator.id] = (
                        text, name, mapping, logic_action.template, logic_action.feedback_rule
                    )
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
            with engaged(self._planner):
                if self._fresh_state is not None:
                    self._pddl_state, self._fresh_state = self._fresh_state, None
                else:
                    self._pddl_state = pddl_logic.PddlState(
                        self.downward_lib, self._game_data["pddl_problem"], self._logic
                    )
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
            with engaged(self._planner):
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
            derive = functools.partial(
                _derive_commands,
                actions,
                self._logic.grammar,
                self._pddl_state,
                self._entity_infos,
                self._static,
                self._commands,
            )
            if self._lazy and self._static and all(self._static.values()):
                lazy = _lazy_state_class()(state)
                lazy.__dict__["_compute"] = derive
                self.state = state = lazy
            else:
                state["_valid_commands"] = derive()
                state["admissible_commands"] = sorted(set(state["_valid_commands"]))
            if self.request_infos.moves:
                state["moves"] = self._moves
            if self.request_infos.policy_commands:
                state["policy_commands"] = self._pddl_state.replan(self._entity_infos)

    return FastPddlEnv


@functools.cache
def fast_pddl_env_class() -> type:
    """The :class:`FastPddlEnv` class (built on first use, so that importing this module stays cheap);
    installs the dispatching patches. Only when :data:`AVAILABLE`."""
    if not AVAILABLE:
        raise RuntimeError("the fast ALFWorld engine path is unavailable: " + "; ".join(PROBLEMS))
    install()
    return _fast_pddl_env_class()


__all__ = [
    "AVAILABLE",
    "clear_memory_caches",
    "PINNED",
    "PROBLEMS",
    "engaged",
    "fast_pddl_env_class",
    "seam_problems",
    "static_templates",
    "warn_unavailable",
]
