"""Which pip extra installs what: the one place that turns a missing optional package into a message.

``pip install agentgym-rl`` installs the core only (gymnasium, numpy, tqdm): ``import agentgym``, the
registry, the rollout pool, the evaluator and the results store. Each env family, and each role
(training, tests), is an extra, declared in ``setup.cfg`` (``make`` installs every one from
``requirements.lock``)::

    pip install "agentgym-rl[scienceworld]"        # one family
    pip install "agentgym-rl[textworld,train]"     # a family and the trainers
    pip install "agentgym-rl[all]"                 # everything (what make installs)
    pip install "agentgym-rl[vllm]"                # on a GPU machine: the trainers with the vLLM backend

``[vllm]`` is not in ``[all]`` (CPU CI never installs it): it lists ``[train]``'s requirements except torch
and transformers, which vLLM pins itself (a CUDA torch), so it takes the place of ``[train]`` there.

A family package opens with ``with needs("<extra>"):`` around its imports, so making or importing an env
whose extra is missing fails at once with one line naming the extra (a
:class:`~agentgym.error.DependencyNotInstalled`), before any engine starts; the same context manager
wraps an import done later, inside a function.

Example:
    >>> from agentgym.extras import install_hint, needs
    >>> install_hint("scienceworld")
    'pip install "agentgym-rl[scienceworld]"'
    >>> with needs("train"):
    ...     import yaml
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator

from agentgym.error import DependencyNotInstalled, InvalidArgumentError

DISTRIBUTION = "agentgym-rl"

#: Extra -> the top-level modules its code cannot run without. :func:`needs` looks them up (without
#: importing them) before the guarded imports run. tests/test_packaging.py checks that each module's
#: distribution is declared in that extra in setup.cfg.
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "textworld": ("textworld",),
    "alfworld": ("alfworld", "textworld", "fast_downward"),
    "scienceworld": ("scienceworld", "py4j"),
    "webshop": ("bm25s", "Stemmer", "rapidfuzz"),
    "swegym": ("pytest", "pluggy"),
    "kernelgym": ("torch",),
    "multiagent": ("pettingzoo",),
    "train": ("torch", "transformers", "peft", "yaml", "tyro"),
    # The vLLM generation backend, on a GPU machine: [train] with vLLM's own torch and transformers pins.
    "vllm": ("vllm",),
    "parquet": ("pyarrow",),
    "test": ("pytest", "hypothesis"),
}


def install_hint(extra: str) -> str:
    """The pip command that installs ``extra``."""
    if extra not in EXTRA_MODULES:
        raise InvalidArgumentError(f"unknown extra {extra!r}; expected one of {sorted(EXTRA_MODULES)}")
    return f'pip install "{DISTRIBUTION}[{extra}]"'


def _missing(extra: str, module: str) -> DependencyNotInstalled:
    return DependencyNotInstalled(
        f"module {module!r} is not installed; it comes with the [{extra}] extra: {install_hint(extra)}"
    )


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module hidden or half-installed
        return False


@contextlib.contextmanager
def needs(extra: str) -> Iterator[None]:
    """Check that ``extra``'s modules are installed, then run the block; a module the block fails to import
    (one not under agentgym) is reported the same way: ``DependencyNotInstalled`` naming the extra."""
    install_hint(extra)  # an unknown extra is a bug of the caller: say so
    missing = [module for module in EXTRA_MODULES[extra] if not _importable(module)]
    if missing:
        raise _missing(extra, missing[0])
    try:
        yield
    except ModuleNotFoundError as exc:
        name = (exc.name or "").partition(".")[0]
        if not name or name == "agentgym":
            raise
        raise _missing(extra, name) from exc
