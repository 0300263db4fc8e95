"""Rollout throughput with 1 and 2 env worker processes (goal: 2 workers >= 1.8x one, on 2 cores).

Steady state: each pool is started and warmed up before it is timed (a trainer keeps one pool for all
its updates); the pool's start-up (process spawn, imports, engine start) is not counted.

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
from agentgym.rollout import EnvPool, rollout


def _steady_rate(pool: EnvPool, specs, warm_up: int, barrier=None) -> tuple[int, float]:
    """(steps, seconds) of playing ``specs`` on ``pool`` after ``warm_up`` untimed episodes (and, with a
    ``barrier``, once every process sharing it has warmed up too, so their clocks start together)."""
    agent = RandomAgent(seed=0)
    rollout(pool, agent, specs[:warm_up])
    if barrier is not None:
        barrier.wait()
    start = time.perf_counter()
    steps = sum(len(t.turns) for t in rollout(pool, agent, specs))
    return steps, time.perf_counter() - start


def measure(factory, specs, workers: int) -> float:
    """Steady-state steps/s of ``workers`` worker processes: the pool is started and warmed up (an
    episode per worker) before the clock starts, as a trainer keeps one pool for all its updates."""
    with EnvPool(factory, workers, info_keys=RandomAgent.info_keys) as pool:
        steps, seconds = _steady_rate(pool, specs, warm_up=workers)
    return steps / seconds


def _play_alone(job: tuple) -> tuple[int, float]:
    """(steps, seconds) of one process playing ``specs`` in-process, after a warm-up episode."""
    factory, specs, barrier = job
    with EnvPool(factory, 1, in_process=True, info_keys=RandomAgent.info_keys) as pool:
        return _steady_rate(pool, specs, warm_up=1, barrier=barrier)


def machine_ceiling(factory, specs) -> float:
    """Speed-up of two independent processes (no pool) over one, each playing its share in-process:
    what the machine itself allows, against which the pool's speed-up is judged."""
    import multiprocessing as mp

    steps, seconds = _play_alone((factory, specs, None))
    one = steps / seconds
    context = mp.get_context("spawn")
    with context.Manager() as manager, context.Pool(2) as pool:
        barrier = manager.Barrier(2)
        halves = pool.map(_play_alone, [(factory, specs[0::2], barrier), (factory, specs[1::2], barrier)])
    two = sum(steps / seconds for steps, seconds in halves)  # the two rates, measured side by side
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
    print(
        f"two independent processes vs one, no pool (the machine's ceiling): {ceiling:.2f}x; "
        f"the pool reaches {two / one / ceiling:.0%} of it"
    )


if __name__ == "__main__":
    main()
