"""Rollout throughput with 1 and 2 env worker processes (goal: 2 workers >= 1.8x one, on 2 cores).

A seeded random agent plays the same episode plan on the embedded TextWorld train split through
``agentgym.rollout.rollout``; steps per second count env steps across all workers.

Run: .venv/bin/python benchmarks/vector_throughput.py [--episodes 40] [--max-turns 50]
"""

from __future__ import annotations

import argparse
import functools
import time

import gymnasium as gym

import agentgym  # noqa: F401
from agentgym.agents import RandomAgent
from agentgym.evaluation import episode_plan
from agentgym.rollout import rollout


def measure(factory, specs, workers: int) -> float:
    start = time.perf_counter()
    trajectories = rollout(factory, RandomAgent(seed=0), specs, num_workers=workers)
    elapsed = time.perf_counter() - start
    return sum(len(t.turns) for t in trajectories) / elapsed


def _build(factory) -> None:
    factory().close()


def _play_alone(job: tuple) -> int:
    factory, specs = job
    return sum(len(t.turns) for t in rollout(factory, RandomAgent(seed=0), specs, in_process=True))


def machine_ceiling(factory, specs) -> float:
    """Speed-up of two independent processes (no pool) over one, each playing its share in-process:
    what the machine itself allows, against which the pool's speed-up is judged."""
    import multiprocessing as mp

    start = time.perf_counter()
    steps = _play_alone((factory, specs))
    one = steps / (time.perf_counter() - start)
    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(_build, [factory, factory])  # process start-up and imports stay out of the timing
        start = time.perf_counter()
        steps = sum(pool.map(_play_alone, [(factory, specs[0::2]), (factory, specs[1::2])]))
        two = steps / (time.perf_counter() - start)
    return two / one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--max-turns", type=int, default=50)
    parser.add_argument("--split", default="train")
    args = parser.parse_args()
    factory = functools.partial(gym.make, "agentgym/TextWorld-v0", split=args.split, max_turns=args.max_turns)
    specs = episode_plan(factory().unwrapped.task_ids, args.episodes, seed=0)
    env = factory()
    for task_id in sorted({spec.task_id for spec in specs}):  # generate and cache every game first
        env.reset(options={"task_id": task_id})
    env.close()
    measure(factory, specs[:4], 2)  # warm-up: worker start-up paths, page cache
    one = measure(factory, specs, 1)
    two = measure(factory, specs, 2)
    print(f"episodes: {args.episodes}  max_turns: {args.max_turns}  split: {args.split}")
    print(f"1 worker : {one:8.1f} steps/s")
    print(f"2 workers: {two:8.1f} steps/s")
    print(f"speed-up 2 vs 1 workers: {two / one:.2f}x  (goal >= 1.8x on 2 cores)")
    ceiling = machine_ceiling(factory, specs)
    print(f"two independent processes vs one, no pool (the machine's ceiling): {ceiling:.2f}x; "
          f"the pool reaches {two / one / ceiling:.0%} of it")


if __name__ == "__main__":
    main()
