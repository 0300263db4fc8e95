"""ScienceWorld speed: agentgym's env vs the raw ``scienceworld.ScienceWorldEnv`` on the same actions.

Records a script of random valid actions once (seeded), then replays it, in this one run:

1. the raw ``ScienceWorldEnv`` (its ``step`` lists the valid actions every time);
2. ``agentgym/ScienceWorld-v0`` when the agent does not read ``info["admissible_actions"]``;
3. the same when the agent reads them at every step;
4. agentgym in 1 and in 2 worker processes (``EnvPool``), aggregate steps/s. A worker sends each
   step's whole ``info`` back through a pipe, and pickling it computes the admissible actions, so
   this measures the reading case.

Prints steps/s, reset time and the ratios. Usage: ``python benchmarks/scienceworld_speed.py [--steps 40]``.
"""

from __future__ import annotations

import argparse
import functools
import threading
import time

import numpy as np

from agentgym.envs.scienceworld import ScienceWorldEnv
from agentgym.rollout import EnvPool

TASKS = ["boil/21", "find-animal/225", "use-thermometer/405", "chemistry-mix/24"]


def record_script(raw, steps: int, seed: int) -> list[tuple[str, list[str]]]:
    """Per task, a sequence of random valid actions (played on the raw env, stopping when it ends)."""
    rng = np.random.default_rng(seed)
    script = []
    for task_id in TASKS:
        name, variation = task_id.split("/")
        raw.load(name, int(variation), "")
        _, info = raw.reset()
        actions = []
        for _ in range(steps):
            valid = [a for a in info["valid"] if not a.startswith(("focus on", "wait"))]  # keep episodes going
            actions.append(str(valid[int(rng.integers(len(valid)))]))
            _, _, done, info = raw.step(actions[-1])
            if done:
                break
        script.append((task_id, actions))
    return script


def run_raw(raw, script) -> tuple[float, float, int]:
    """(seconds stepping, mean reset seconds, steps)."""
    step_time = reset_time = 0.0
    steps = 0
    for task_id, actions in script:
        name, variation = task_id.split("/")
        started = time.perf_counter()
        raw.load(name, int(variation), "")
        raw.reset()
        reset_time += time.perf_counter() - started
        started = time.perf_counter()
        for action in actions:
            steps += 1
            if raw.step(action)[2]:
                break
        step_time += time.perf_counter() - started
    return step_time, reset_time / len(script), steps


def run_agentgym(env, script, read: bool) -> tuple[float, float, int]:
    step_time = reset_time = 0.0
    steps = 0
    for task_id, actions in script:
        started = time.perf_counter()
        _, info = env.reset(options={"task_id": task_id})
        if read:
            info["admissible_actions"]
        reset_time += time.perf_counter() - started
        started = time.perf_counter()
        for action in actions:
            _, _, terminated, truncated, info = env.step(action)
            steps += 1
            if read:
                info["admissible_actions"]
            if terminated or truncated:
                break
        step_time += time.perf_counter() - started
    return step_time, reset_time / len(script), steps


def run_pool(num_workers: int, script, seconds: float) -> float:
    """Aggregate steps/s of ``num_workers`` worker processes replaying the script for ``seconds``."""
    factory = functools.partial(ScienceWorldEnv, split="test", max_turns=10_000, expert=False)
    with EnvPool(factory, num_workers) as pool:
        for index in range(num_workers):  # warm up: JVM start and JIT
            task_id, actions = script[0]
            pool.send_reset(index, 0, {"task_id": task_id})
            pool.receive(index)
            for action in actions[:10]:
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
                    if result[2] or result[3]:
                        break

        started = time.perf_counter()
        threads = [threading.Thread(target=drive, args=(i,)) for i in range(num_workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(counts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="actions per task in the script")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each worker-pool measurement")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from scienceworld import ScienceWorldEnv as RawEnv

    raw = RawEnv("", envStepLimit=10**6)
    env = ScienceWorldEnv(split="test", max_turns=10_000, expert=False)
    try:
        script = record_script(raw, args.steps, args.seed)
        run_raw(raw, script)  # warm-up passes (JIT) for both
        run_agentgym(env, script, read=True)
        rows = {}
        rows["raw ScienceWorldEnv"] = run_raw(raw, script)
        rows["agentgym, admissible not read"] = run_agentgym(env, script, read=False)
        rows["agentgym, admissible read every step"] = run_agentgym(env, script, read=True)
    finally:
        raw.close()
        env.close()
    base = rows["raw ScienceWorldEnv"][2] / rows["raw ScienceWorldEnv"][0]
    print(f"{'variant':40s} {'steps/s':>9s} {'x raw':>7s} {'reset ms':>9s} {'steps':>6s}")
    for name, (seconds, reset, steps) in rows.items():
        print(f"{name:40s} {steps / seconds:9.1f} {steps / seconds / base:7.2f} {1000 * reset:9.1f} {steps:6d}")
    one = run_pool(1, script, args.seconds)
    two = run_pool(2, script, args.seconds)
    print(f"EnvPool (info pickled, so admissible listed): 1 worker {one:.1f} steps/s, 2 workers {two:.1f} steps/s "
          f"(x{two / one:.2f})")


if __name__ == "__main__":
    main()
