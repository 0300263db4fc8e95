"""The sandboxed test runs of the SWEGym task-set build (:mod:`.tasks`): steps 2 and 4.

Step 2 (:func:`baseline_job`) finds each module's stable tests on the clean tree; step 4
(:func:`validate_job`) runs one candidate bug's module tests on the mutated tree and keeps its verdict on
disk. Each run happens in :mod:`agentgym.sandbox` on a scratch copy of the tree, under grader 2's runner
(:func:`.engine.run_tests`), so the tests that define a task are those the env's grading will see.
The jobs take and return plain data, so :func:`parallel` can hand them to worker processes.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentgym.envs.swegym import engine
from agentgym.envs.swegym.sdists import PROJECTS, Project


def run_module_tests(
    tree: Path, project: Project, files: Sequence[str], replace: tuple[str, str] | None, keep_failures: bool = False
) -> engine.TestRun:
    """Run ``files`` of a project in the sandbox on a scratch copy of ``tree``, with ``replace`` (a module's
    path and its mutated source) written into the copy first."""
    from agentgym.sandbox import Sandbox

    work = Path(tempfile.mkdtemp(prefix="agentgym-swegym-"))
    try:
        shutil.copytree(tree, work / "repo", symlinks=True)
        if replace is not None:
            (work / "repo" / replace[0]).write_text(replace[1])
        box = Sandbox(work / "repo")
        return engine.run_tests(
            box,
            files,
            python=sys.executable,
            env=dict(project.test_env),
            limits=dataclasses.replace(engine.TEST_LIMITS, wall_seconds=120),
            keep_failures=keep_failures,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def baseline_job(args: tuple[str, str, str]) -> dict[str, Any]:
    """Build step 2 for one module, ``(project name, module, tree)``: its tests run twice on the clean
    tree; the stable tests are those passing both times."""
    name, module, tree = args
    project = next(p for p in PROJECTS if p.name == name)
    files = dict(project.modules)[module]
    runs = [run_module_tests(Path(tree), project, files, None) for _ in range(2)]
    stable = sorted(t for t, s in runs[0].statuses.items() if s == "PASSED" and runs[1].statuses.get(t) == "PASSED")
    problem = next((r.problem for r in runs if r.problem), None)
    return {
        "stable": stable,
        "valid": all(r.valid for r in runs),
        "problem": problem,
        "output": runs[0].result.output[-2000:],
    }


def validate_job(args: tuple[str, dict[str, Any], str, str, list[str]]) -> dict[str, Any]:
    """Build step 4 for one candidate, ``(project name, candidate, tree, result path, stable tests)``: its
    module's tests on the mutated tree; the result (FAIL_TO_PASS, PASS_TO_PASS, the first failures' reports)
    is written atomically to the result path, so an interrupted build resumes."""
    name, candidate, tree, out_path, stable = args
    project = next(p for p in PROJECTS if p.name == name)
    files = dict(project.modules)[candidate["module"]]
    run = run_module_tests(Path(tree), project, files, (candidate["module"], candidate["mutated"]), keep_failures=True)
    f2p = sorted(t for t in stable if run.statuses.get(t) in ("FAILED", "ERROR"))
    p2p = sorted(t for t in stable if run.statuses.get(t) == "PASSED")
    result = {
        "valid_run": run.valid or run.exit_code == 1 and bool(run.statuses),
        "problem": run.problem,
        "killed": run.result.killed,
        "FAIL_TO_PASS": f2p,
        "PASS_TO_PASS": p2p,
        "failures": {t: run.failures.get(t, "")[-3000:] for t in f2p[:3]},
    }
    tmp = out_path + ".tmp"
    Path(tmp).write_text(json.dumps(result))
    os.replace(tmp, out_path)
    return result


def parallel(fn: Any, jobs: list[Any], workers: int, desc: str) -> list[Any]:
    """``[fn(job) for job in jobs]`` over ``workers`` processes (in order), with a progress bar."""
    from tqdm import tqdm

    if workers <= 1:
        return [fn(job) for job in tqdm(jobs, desc=desc, unit="run")]
    results: list[Any] = [None] * len(jobs)
    with concurrent.futures.ProcessPoolExecutor(workers) as pool:
        futures = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
        for future in tqdm(concurrent.futures.as_completed(futures), total=len(jobs), desc=desc, unit="run"):
            results[futures[future]] = future.result()
    return results
