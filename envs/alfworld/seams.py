"""The seams ALFWorld's fast engine path relies on, checked once at import (:data:`AVAILABLE`).

The fast path (:mod:`.patches`, :mod:`.engine`) was verified output-identical to stock against the package
versions of :data:`PINNED` and the source of every function in :data:`SOURCES` that it replaces or relies on.
:func:`seam_problems` compares both with what is installed; if anything differs, :data:`AVAILABLE` is
``False``, :func:`warn_unavailable` names what is missing, and ``ALFWorldEnv`` runs the stock engine.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import warnings
from importlib import metadata
from typing import Any

#: Package versions the fast path was verified against (output-identical to stock).
PINNED = {"alfworld": "0.4.2", "textworld": "1.7.0", "fast-downward-textworld": "20.6.4"}

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
