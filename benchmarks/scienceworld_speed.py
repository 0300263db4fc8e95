"""ScienceWorld speed: the fast engine path vs the stock ``scienceworld.ScienceWorldEnv``, in one run.

A script of random valid actions (seeded; no ``focus on``/``wait``, so episodes go on) is recorded
once, then every variant replays it in its own fresh process (fresh JVM): a warm-up pass (JIT), then
a timed pass. Variants:

1. ``stock``: the raw ``scienceworld.ScienceWorldEnv`` with default JVM flags (its ``step`` lists the
   valid actions every time, one py4j round trip per action);
2. ``agentgym exact_stock``: ``agentgym/ScienceWorld-v0`` with ``exact_stock=True`` (the same stock
   path under agentgym, plus ``-XX:hashCode=2``);
3. ``fast, read``: agentgym's default path, ``info["admissible_actions"]`` computed every step (the
   default ``info_keys=None``);
4. ``fast, not read``: the same with ``info_keys=()``, so they are never listed (each step still runs the listing's two
   name resolutions, which draw from the simulator's random number generator, so the episode stays
   identical to stock's: about 80% of a listing's JVM time).

Per variant: steps/s, load+reset ms (fast read: including the first listing), CPU time per step
(Python + JVM, all threads), and the memory of one env: peak RSS of its Python process plus its JVM. Then aggregate steps/s of ``EnvPool`` with 1 and 2
worker processes (``info_keys`` chooses read or not read), and, for context, what two independent
processes (no pool) get over one on this machine. Goals (issue 11): fast read >= 4x stock, fast not
read >= 10x stock, < 200 MB per env, 2 workers >= 1.8x one.

Also counts the states where stock (default JVM flags) and the fast path disagree: under default
flags the engine depends on the JVM's call history, so a different call pattern changes them.

Usage: ``python benchmarks/scienceworld_speed.py [--steps 40] [--seconds 15]``.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing as mp
import os
import threading
import time
from typing import Any

import numpy as np

from agentgym.envs.scienceworld import ScienceWorldEnv
from agentgym.rollout import EnvPool

TASKS = ["boil/21", "find-animal/225", "use-thermometer/405", "chemistry-mix/24", "grow-plant/93"]
Script = list[tuple[str, list[str]]]


def _peak_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time of a process, all its threads (JIT and GC threads of a JVM included)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def record_script(steps: int, seed: int) -> Script:
    """Per task, a sequence of random valid actions (stopping where the episode ends)."""
    rng = np.random.default_rng(seed)
    env = ScienceWorldEnv(split="test", max_turns=10_000, expert=False)
    script = []
    try:
        for task_id in TASKS:
            _, info = env.reset(options={"task_id": task_id})
            actions: list[str] = []
            for _ in range(steps):
                valid = [a for a in info["admissible_actions"] if not a.startswith(("focus on", "wait"))]
                actions.append(str(valid[int(rng.integers(len(valid)))]))
                _, _, terminated, _, info = env.step(actions[-1])
                if terminated:
                    break
            script.append((task_id, actions))
    finally:
        env.close()
    return script


class _Stock:
    """The raw stock env behind the same replay interface as agentgym's."""

    def __init__(self) -> None:
        from scienceworld import ScienceWorldEnv as StockEnv

        self.env = StockEnv("", envStepLimit=10**9)
        self.jvm_pid = self.env._gateway.java_process.pid

    def reset(self, task_id: str) -> None:
        name, variation = task_id.split("/")
        self.env.load(name, int(variation), "")
        self.env.reset()

    def step(self, action: str) -> tuple[str, bool]:
        observation, _, done, _ = self.env.step(action)
        return observation, done

    def close(self) -> None:
        self.env.close()
        self.env._gateway.java_process.wait(timeout=30)  # so the stock env's __del__ has nothing left to do


class _Agentgym:
    def __init__(self, read: bool, **kwargs: Any) -> None:
        self.env = ScienceWorldEnv(
            split="test", max_turns=10_000, expert=False, info_keys=None if read else (), **kwargs
        )
        self.read = read
        self.jvm_pid: int | None = None

    def reset(self, task_id: str) -> None:
        info = self.env.reset(options={"task_id": task_id})[1]
        if self.read:
            info["admissible_actions"]
        self.jvm_pid = self.env.jvm_pid

    def step(self, action: str) -> tuple[str, bool]:
        observation, _, terminated, truncated, info = self.env.step(action)
        if self.read:
            info["admissible_actions"]
        return observation, terminated or truncated

    def close(self) -> None:
        self.env.close()


def _replay(env: Any, script: Script) -> tuple[float, float, int, list[str]]:
    """(seconds stepping, mean load+reset seconds, steps, observations)."""
    step_time = reset_time = 0.0
    observations: list[str] = []
    for task_id, actions in script:
        started = time.perf_counter()
        env.reset(task_id)
        reset_time += time.perf_counter() - started
        started = time.perf_counter()
        for action in actions:
            observation, done = env.step(action)
            observations.append(observation)
            if done:
                break
        step_time += time.perf_counter() - started
    return step_time, reset_time / len(script), len(observations), observations


def measure_variant(variant: str, script: Script) -> dict[str, Any]:
    """Run in a fresh process: a warm-up pass, then a timed pass; the memory of this one env."""
    env = (
        _Stock()
        if variant == "stock"
        else _Agentgym(read=variant != "fast, not read", exact_stock=variant == "agentgym exact_stock")
    )
    try:
        _replay(env, script)
        cpu = _cpu_seconds() + _cpu_seconds(env.jvm_pid)
        seconds, reset, steps, observations = _replay(env, script)
        cpu = _cpu_seconds() + _cpu_seconds(env.jvm_pid) - cpu
        memory = _peak_mb(), _peak_mb(env.jvm_pid)
    finally:
        env.close()
    return {
        "steps/s": steps / seconds,
        "reset ms": 1000 * reset,
        "steps": steps,
        "cpu ms": 1000 * cpu / steps,
        "py MB": memory[0],
        "jvm MB": memory[1],
        "observations": observations,
    }


def run_pool(num_workers: int, script: Script, seconds: float, info_keys: tuple[str, ...]) -> float:
    """Aggregate steps/s of ``num_workers`` worker processes replaying the script for ``seconds``."""
    factory = functools.partial(ScienceWorldEnv, split="test", max_turns=10_000, expert=False)
    with EnvPool(factory, num_workers, info_keys=info_keys) as pool:
        for index in range(num_workers):  # warm up: JVM start and JIT (a whole pass of the script)
            for task_id, actions in script:
                pool.send_reset(index, 0, {"task_id": task_id})
                pool.receive(index)
                for action in actions:
                    pool.send_step(index, action)
                    pool.receive(index)
        counts = [0] * num_workers
        stop = time.perf_counter() + seconds

        def drive(index: int) -> None:
            position = index
            while time.perf_counter() < stop:
                task_id, actions = script[position % len(script)]
                position += 1
                pool.send_reset(index, 0, {"task_id": task_id})
                pool.receive(index)
                for action in actions:
                    pool.send_step(index, action)
                    result = pool.receive(index)
                    counts[index] += 1
                    if result[2] or result[3] or time.perf_counter() >= stop:
                        break

        started = time.perf_counter()
        threads = [threading.Thread(target=drive, args=(i,)) for i in range(num_workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(counts) / (time.perf_counter() - started)


def _alone(script: Script, seconds: float, barrier: Any, results: Any) -> None:
    """One independent process: warm up, wait for the others, replay in-process for ``seconds``."""
    env = _Agentgym(read=False)
    try:
        _replay(env, script)  # warm up: JVM start and JIT, as the pool's workers do
        barrier.wait()
        steps, stop = 0, time.perf_counter() + seconds
        started = time.perf_counter()
        while time.perf_counter() < stop:
            for task_id, actions in script:
                env.reset(task_id)
                for action in actions:
                    steps += 1
                    if env.step(action)[1] or time.perf_counter() >= stop:
                        break
                if time.perf_counter() >= stop:
                    break
        results.put(steps / (time.perf_counter() - started))
    finally:
        env.close()


def independent_processes(count: int, script: Script, seconds: float) -> float:
    """Aggregate steps/s of ``count`` independent processes, each with its own env (no pool)."""
    context = mp.get_context("spawn")
    barrier, results = context.Barrier(count), context.Queue()
    procs = [context.Process(target=_alone, args=(script, seconds, barrier, results)) for _ in range(count)]
    for proc in procs:
        proc.start()
    rates = [results.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    return sum(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="actions per task in the script")
    parser.add_argument("--seconds", type=float, default=15.0, help="duration of each multi-process measurement")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    script = record_script(args.steps, args.seed)
    context = mp.get_context("spawn")
    rows = {}
    with context.Pool(1, maxtasksperchild=1) as pool:  # a fresh process (and JVM) per variant
        for variant in ("stock", "agentgym exact_stock", "fast, read", "fast, not read"):
            rows[variant] = pool.apply(measure_variant, (variant, script))
    base = rows["stock"]["steps/s"]
    print(f"script: {sum(len(a) for _, a in script)} actions over {len(script)} tasks; timed pass after a warm-up pass")
    print(
        f"{'variant':22s} {'steps/s':>8s} {'x stock':>8s} {'load+reset ms':>14s} {'x stock':>8s} "
        f"{'CPU ms/step':>12s} {'x stock':>8s} {'py MB':>6s} {'JVM MB':>7s} {'env MB':>7s}"
    )
    for name, row in rows.items():
        print(
            f"{name:22s} {row['steps/s']:8.1f} {row['steps/s'] / base:8.2f} {row['reset ms']:14.1f} "
            f"{rows['stock']['reset ms'] / row['reset ms']:8.2f} {row['cpu ms']:12.1f} "
            f"{rows['stock']['cpu ms'] / row['cpu ms']:8.2f} {row['py MB']:6.0f} {row['jvm MB']:7.0f} "
            f"{row['py MB'] + row['jvm MB']:7.0f}"
        )
    print(
        "CPU ms/step: Python + JVM CPU time (all threads, resets included) per step of the timed pass; "
        "it depends less on what else runs on the machine than steps/s"
    )
    read, unread = rows["fast, read"], rows["fast, not read"]
    print(
        f"goal: fast read >= 4x stock step rate: {read['steps/s'] / base:.2f}x; "
        f"fast not read >= 10x: {unread['steps/s'] / base:.2f}x; "
        f"< 200 MB per env: {max(read['py MB'] + read['jvm MB'], unread['py MB'] + unread['jvm MB']):.0f} MB"
    )
    reference = rows["agentgym exact_stock"]["observations"]
    for name in ("stock", "fast, read", "fast, not read"):
        observations = rows[name]["observations"]
        differ = sum(a != b for a, b in zip(reference, observations)) + abs(len(reference) - len(observations))
        print(
            f"observations differing from agentgym exact_stock (-XX:hashCode=2): {name}: {differ} of {len(reference)}"
        )

    for label, info_keys in (("not read", ()), ("read every step", ("admissible_actions",))):
        one = run_pool(1, script, args.seconds, info_keys)
        two = run_pool(2, script, args.seconds, info_keys)
        print(
            f"EnvPool, admissible {label} (info_keys={info_keys}): 1 worker {one:.1f} steps/s, "
            f"2 workers {two:.1f} steps/s: {two / one:.2f}x (goal >= 1.8x)"
        )
    one, two = independent_processes(1, script, args.seconds), independent_processes(2, script, args.seconds)
    print(
        f"context: 2 independent processes (no pool, not read) vs 1: {one:.1f} -> {two:.1f} steps/s, "
        f"{two / one:.2f}x (this machine's own ceiling; TextWorld's, benchmarks/vector_throughput.py: ~1.5-1.6x)"
    )


if __name__ == "__main__":
    main()
