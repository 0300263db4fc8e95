"""The ``Example:`` blocks of the docstrings run as doctests (every module with a ``>>>`` line is picked up).

An example marked ``# doctest: +SKIP`` is one that needs what a test cannot have (a downloaded model, a
user's file); everything else runs, engines included."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Source folder -> the package it is installed as (setup.cfg's package_dir).
PACKAGE_ROOTS = {
    "agentgym": "agentgym",
    "envs": "agentgym.envs",
    "wrappers": "agentgym.wrappers",
    "baselines": "agentgym.baselines",
}


def modules_with_examples() -> list[str]:
    names = []
    for folder, package in PACKAGE_ROOTS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            if ">>> " in path.read_text(encoding="utf-8"):
                parts = path.relative_to(ROOT / folder).with_suffix("").parts
                names.append(".".join((package, *(p for p in parts if p != "__init__"))))
    return names


def test_examples_are_found():
    assert {"agentgym.actions", "agentgym.extras", "agentgym.baselines.tokens"} <= set(modules_with_examples())


@pytest.mark.parametrize("module", modules_with_examples())
def test_docstring_examples_run(module):
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(importlib.import_module(module))
    report: list[str] = []
    for test in tests:
        runner.run(test, out=report.append)
    assert sum(len(test.examples) for test in tests) > 0, f"{module} has '>>> ' but doctest finds no example"
    assert runner.failures == 0, "".join(report)
