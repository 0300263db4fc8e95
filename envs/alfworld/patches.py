"""Process-wide patches of textworld's text grammar and fast-downward's translation, for ALFWorld's fast path.

Why process-wide: the functions sped up here are module functions and class attributes that textworld's own
``PddlEnv``/``GameLogic``/``ContextSensitiveGrammar`` call by name, so the only seam is the attribute itself. So
that no other caller changes, every patch **dispatches on a per-thread flag**: only code running inside
:func:`engaged` (the methods of :class:`~.engine.FastPddlEnv`) takes the fast branch; everything else,
including a stock ``PddlEnv`` in the same process, calls the unmodified original (kept as ``__wrapped__``).

The fast branches: grammar strings parsed once and handed out as structural clones (no deep copies),
conjunctive queries parsed once, contexts copied shallowly (derivation only re-assigns them), the grammar
document parse and fast-downward's translation memoised in memory and on disk (:mod:`.caches`), the
planner's second (``optimize=True``) translation made only when the env uses the planner, and ``sys.argv``
restored after the translator overwrites it. :func:`install` applies them once (idempotent), only when
:data:`~.seams.AVAILABLE`.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from agentgym.envs.alfworld.caches import MEMO, digest, disk_memo

_LOCAL = threading.local()


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


def copy_context(context: dict[str, Any]) -> dict[str, Any]:
    # derivation re-assigns and adds keys to ``variables``/``mapping`` but never mutates their values
    return {
        "state": context["state"],
        "facts": context["facts"],
        "variables": dict(context["variables"]),
        "mapping": dict(context["mapping"]),
        "entity_infos": context["entity_infos"],
    }


@functools.cache
def install() -> None:
    """Install the dispatching patches (idempotent). Only called when :data:`~.seams.AVAILABLE`."""
    import fast_downward
    import textworld.envs.pddl.logic as pddl_logic
    import textworld.envs.pddl.textgen as textgen
    from textworld.logic import Rule

    # textgen: memoised parses handed out as clones
    parse_symbols = textgen._parse_and_convert
    parsed_symbols = MEMO["symbols"]

    def fast_parse_symbols(text: str, rule_name: str | None = None, trace: bool = False) -> Any:
        if trace:
            return parse_symbols(text, rule_name=rule_name, trace=trace)
        key = (text, rule_name)
        symbols = parsed_symbols.recall(key)
        if symbols is None:
            symbols = parsed_symbols.remember(key, parse_symbols(text, rule_name=rule_name))
        return [_clone(symbol) for symbol in symbols]

    query_rule = Rule.parse_conjunctive_query.__func__
    queries = MEMO["queries"]

    def fast_query_rule(cls: type, expression: str) -> Any:
        rule = queries.recall(expression)
        return rule if rule is not None else queries.remember(expression, query_rule(cls, expression))

    def fast_symbol_copy(self: Any, context: dict[str, Any]) -> Any:
        clone = _clone(self)
        clone.context = copy_context(context)
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
            symbol.context = copy_context(start.context)
        return symbols

    # logic: the grammar document parse (per game), in memory and on disk
    parse_document = pddl_logic._parse_and_convert
    documents = MEMO["documents"]

    def fast_parse_document(text: str, rule_name: str | None = None, **kwargs: Any) -> Any:
        if kwargs:
            return parse_document(text, rule_name=rule_name, **kwargs)
        key = digest("document", str(rule_name), text)
        found = documents.recall(key)
        if found is None:
            found = documents.remember(
                key, disk_memo("grammar", key, lambda: parse_document(text, rule_name=rule_name))
            )
        return found

    # fast-downward: translations, in memory and on disk; the planner's translation only when wanted
    translate = fast_downward.pddl2sas
    translations = MEMO["translations"]

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
        key = digest("sas", str(optimize), domain, problem)
        found = translations.recall(key)
        if found is None:
            compute = functools.partial(restoring_argv, domain, problem, optimize=optimize)
            found = translations.remember(key, disk_memo("sas", key, compute))
        return found

    textgen._parse_and_convert = _dispatch(parse_symbols, fast_parse_symbols)
    textgen.copy_context = _dispatch(textgen.copy_context, copy_context)
    textgen.Symbol.copy = _dispatch(textgen.Symbol.copy, fast_symbol_copy)
    textgen.ContextSensitiveGrammar.replace = _dispatch(grammar_replace, fast_replace)
    Rule.parse_conjunctive_query = classmethod(_dispatch(query_rule, fast_query_rule))
    pddl_logic._parse_and_convert = _dispatch(parse_document, fast_parse_document)
    fast_downward.pddl2sas = _dispatch(translate, fast_translate)
