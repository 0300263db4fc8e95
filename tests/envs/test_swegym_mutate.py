"""SWE-smith-style mutations (agentgym.envs.swegym.mutate): one site, minimal diff, program changed."""

from __future__ import annotations

import ast
import difflib

from agentgym.envs.swegym import mutate
from agentgym.envs.swegym.tasks import problem_statement
from agentgym.envs.swegym.tools import ToolSyntaxError, parse

SOURCE = '''\
def window(seq, size, step=1):
    """Windows of seq."""
    out = []
    if size <= 0 or step < 1:
        raise ValueError("bad size")
    for i in range(0, len(seq) - size + 1, step):
        if not seq:
            break
        out.append(tuple(seq[i:i + size]))
    total = 0
    total += len(out)
    if total == 0:
        total = 1
    return out


def tiny(x):
    return x
'''


def _changed(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_every_kind_is_found_and_changes_one_line():
    sites = mutate.function_mutations(SOURCE)
    assert set(sites) == {"window"}  # tiny() is below the statement threshold
    kinds = {m.kind for m in sites["window"]}
    assert kinds == set(mutate.KINDS)
    for mut in sites["window"]:
        if not mutate.changes_program(SOURCE, mut):
            continue
        after = mut.apply(SOURCE)
        ast.parse(after)
        changed = _changed(SOURCE, after)
        assert 1 <= len(changed) <= 2 or mut.kind == "remove_branch", (mut, changed)
    examples = {(m.kind, _changed(SOURCE, m.apply(SOURCE))[-1][1:].strip()) for m in sites["window"]}
    assert ("flip_comparison", "if size < 0 or step < 1:") in examples
    assert ("swap_bool", "if size <= 0 and step < 1:") in examples
    assert ("flip_operator", "total -= len(out)") in examples
    assert ("swap_arguments", "for i in range(len(seq) - size + 1, 0, step):") in examples
    assert ("wrong_return", "return None") in examples
    assert ("drop_not", "if (seq):") in examples


def test_problem_statement_comes_from_the_test_report():
    import random

    text = problem_statement(
        ["tests/test_a.py::test_x", "tests/test_a.py::test_y"],
        {"tests/test_a.py::test_x": "assert 3 == 4\nE   assert 3 == 4"},
        "python -m pytest -rA",
        random.Random(0),
    )
    assert "`tests/test_a.py::test_x`" in text and "test_y" in text and "assert 3 == 4" in text
    assert "diff" not in text


def test_tool_syntax():
    assert parse("bash ls -la | head") == ("bash", {"command": "ls -la | head"})
    assert parse("view a.py 3 9") == ("view", {"path": "a.py", "start_line": 3, "end_line": 9})
    assert parse("search 'def f' src") == ("search", {"pattern": "def f", "path": "src"})
    assert parse('str_replace a.py "x\\n" "y \\"z\\""') == (
        "str_replace",
        {"path": "a.py", "old_str": "x\n", "new_str": 'y "z"'},
    )
    assert parse(
        '{"function": {"name": "create_file", "arguments": "{\\"path\\": \\"b.py\\", \\"content\\": \\"\\"}"}}'
    ) == ("create_file", {"path": "b.py", "content": ""})
    assert parse("run_tests t.py::test_a") == ("run_tests", {"paths": ["t.py::test_a"]})
    assert parse("submit") == ("submit", {})
    for bad in (
        "submit now",
        "view",
        "view a.py x",
        'str_replace a.py "only one"',
        "{",
        '{"name": "bash"}',
        '{"name": "view", "arguments": {"path": 3}}',
        '{"name": "view", "arguments": {"file": "a"}}',
        "ls",
    ):
        try:
            parse(bad)
        except ToolSyntaxError as exc:
            assert str(exc)
        else:
            raise AssertionError(f"{bad!r} should be refused")
