"""SWEGym speed: sandbox overhead per command, test-run time per step, task synthesis rate.

Usage: ``python benchmarks/swegym_speed.py [--commands 30] [--candidates 12]`` (needs bubblewrap and the
built task set: ``python -m agentgym.envs.swegym.tasks``). Every number is measured in this one run.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym

import agentgym  # noqa: F401
from agentgym.envs.swegym import tasks as build
from agentgym.sandbox import Sandbox


def sandbox_overhead(n: int) -> None:
    work = Path(tempfile.mkdtemp())
    box = Sandbox(work)
    for label, argv in (("true", ["true"]), ("python -c pass", [sys.executable, "-c", "pass"])):
        direct, boxed = [], []
        for _ in range(n):
            start = time.perf_counter()
            subprocess.run(argv, check=True)
            direct.append(time.perf_counter() - start)
            start = time.perf_counter()
            box.run(argv)
            boxed.append(time.perf_counter() - start)
        d, b = statistics.median(direct) * 1e3, statistics.median(boxed) * 1e3
        print(
            f"sandbox overhead [{label}]: direct {d:.1f} ms, sandboxed {b:.1f} ms (median of {n}); "
            f"ratio {b / d:.2f}x, +{b - d:.1f} ms per command"
        )
    shutil.rmtree(work)


def test_run_time() -> None:
    env = gym.make("agentgym/SWEGym-v0", split="test")
    base = env.unwrapped
    by_repo: dict[str, str] = {}
    for task_id in base.task_ids:
        by_repo.setdefault(task_id.split(".")[0], task_id)
    for repo, task_id in sorted(by_repo.items()):
        env.reset(options={"task_id": task_id})
        start = time.perf_counter()
        _, _, _, _, info = env.step("run_tests")
        run = time.perf_counter() - start
        start = time.perf_counter()
        env.step("bash ls")
        command = time.perf_counter() - start
        print(
            f"step time [{repo}]: run_tests {run:.2f} s ({len(info['swegym']['tests'])} graded tests), "
            f"bash ls {command * 1e3:.0f} ms; ratio {run / command:.0f}x"
        )
    env.close()


def synthesis_rate(count: int) -> None:
    project = next(p for p in build.PROJECTS if p.name == "toolz")
    tree = build.fetch(project)
    module = "toolz/itertoolz.py"
    stable = build._baseline_job((project.name, module, str(tree)))["stable"]
    cands = [c for c in build.candidates(project, tree, seed=12345, per_module=count) if c["module"] == module]
    out = Path(tempfile.mkdtemp())
    jobs = [(project.name, c, str(tree), str(out / f"{c['id']}.json"), stable) for c in cands]
    start = time.perf_counter()
    results = build._parallel(build._validate_job, jobs, 2, "benchmark validation")
    minutes = (time.perf_counter() - start) / 60
    kept = sum(1 for r in results if r["FAIL_TO_PASS"] and r["PASS_TO_PASS"] and r["valid_run"])
    print(
        f"task synthesis: {kept}/{len(jobs)} candidates validated in {minutes * 60:.1f} s with 2 workers "
        f"= {kept / minutes:.1f} validated tasks per minute ({len(jobs) / minutes:.1f} candidates per minute)"
    )
    shutil.rmtree(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=30)
    parser.add_argument("--candidates", type=int, default=12)
    args = parser.parse_args()
    sandbox_overhead(args.commands)
    test_run_time()
    synthesis_rate(args.candidates)


if __name__ == "__main__":
    main()
