"""SWEGym's observation texts and test-run info: what the agent reads, kept apart from what the tools do.

The reset prompt (:func:`prompt`), the observation limit (:func:`truncate`), the family info of a test
run (:func:`tests_info`, also used at ``submit``) and the one-line summaries of ``run_tests`` and
``submit`` (:func:`run_summary`, :func:`verdict`). All are pure functions of their arguments, so equal
episodes give equal observations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentgym.envs.swegym import engine, tools


def truncate(text: str, limit: int) -> tuple[str, bool]:
    """Keep the first and last halves of ``text`` around a marker when it exceeds ``limit``."""
    if len(text) <= limit:
        return text, False
    half = limit // 2
    cut = len(text) - 2 * half
    return f"{text[:half]}\n[... {cut} characters truncated (observation limit {limit}) ...]\n{text[-half:]}", True


def prompt(instance: Mapping[str, Any], mount: str) -> str:
    """The reset observation: where the repository is, the issue text, and the tool syntax."""
    return (
        f"<uploaded_files>\n{mount}\n</uploaded_files>\nI've uploaded a Python code repository in the folder "
        f"{mount} (repository {instance['repo']}). Consider the following issue:\n\n<issue_description>\n"
        f"{instance['problem_statement'].strip()}\n</issue_description>\n\nMake the minimal changes to non-test "
        "files in the repository so that the issue is resolved. Do not modify the tests: test files are "
        "restored before grading. Paths are relative to the repository root. When you are done, submit.\n\n"
        + tools.SYNTAX
    )


def tests_info(instance: Mapping[str, Any], run: engine.TestRun, grade: engine.Grade) -> dict[str, Any]:
    """The family info of a test run: each FAIL_TO_PASS / PASS_TO_PASS id's status, the grade's
    fractions, and the run's output with pytest's wall time and object addresses taken out
    (``output``; the time is kept in ``pytest_seconds``)."""
    statuses = {
        t: engine.status_of(t, run.statuses) or "MISSING"
        for t in [*instance["FAIL_TO_PASS"], *instance["PASS_TO_PASS"]]
    }
    output, seconds = engine.stable_test_output(run.output)
    return {
        "tests": statuses,
        "fraction": grade.fraction,
        "f2p_fraction": grade.f2p_fraction,
        "resolved": grade.resolved,
        "exit_code": run.exit_code,
        "timed_out": run.result.timed_out,
        "exceeded": run.result.exceeded,
        "duration": run.result.duration,
        "pytest_seconds": seconds,
        "problem": run.problem,
        "output": output,
    }


def run_summary(run: engine.TestRun) -> str:
    """The ``[tests: ...]`` line after a ``run_tests`` output: the run's problem, or its counts."""
    return run.problem or (
        f"{sum(s == 'PASSED' for s in run.statuses.values())} passed, "
        f"{sum(s in ('FAILED', 'ERROR') for s in run.statuses.values())} failed"
    )


def verdict(grade: engine.Grade | None, voided: str | None, resolved: bool) -> str:
    """The ``submit`` observation: why the submission is void, or the grade's counts."""
    if voided is not None:
        return f"Submitted. The submission is void: {voided}. Reward 0."
    assert grade is not None
    detail = f" ({grade.problem})" if grade.problem else ""
    return (
        f"Submitted. Grading: {'RESOLVED' if resolved else 'NOT RESOLVED'}{detail}: "
        f"{sum(grade.fail_to_pass.values())}/{len(grade.fail_to_pass)} failing tests fixed, "
        f"{sum(grade.pass_to_pass.values())}/{len(grade.pass_to_pass)} other tests pass."
    )
