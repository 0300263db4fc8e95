"""WebShop: catalog generation, BM25 index build, query latency (p50/p99) and env steps per second.

For each catalog size (default 10,000 and 100,000 products) the catalog is generated into a fresh
cache directory, the ``bm25s`` index is built from scratch and then loaded from its disk cache, and
the goals' instructions (the queries an agent would type, price text removed) are searched one at a
time. Env throughput is measured on the smaller catalog with the oracle's actions and with a random
agent's. Times are this process's CPU time (the machine may be shared). Goals (issue 5): query p50 under 5 ms and index build under 30 s at 100k products.

Run: .venv/bin/python benchmarks/webshop_search.py [--sizes 10000 100000] [--queries 2000]
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time

import numpy as np

#: This process's CPU time: other load on a shared machine does not inflate it.
clock = time.process_time


def measure_size(num_products: int, queries: int) -> dict[str, float]:
    from agentgym.envs.webshop.search import SearchEngine
    from agentgym.envs.webshop.tasks import generated_catalog

    start = clock()
    catalog = generated_catalog(0, num_products)
    generate = clock() - start
    start = clock()
    engine = SearchEngine(catalog)
    build = clock() - start
    assert engine.built
    start = clock()
    assert not SearchEngine(catalog).built
    load = clock() - start
    texts = [re.sub(r", and price lower than .*$", "", g["instruction_text"]) for g in catalog.goals[:queries]]
    for text in texts[:50]:  # warm up
        engine.bm25_hits(text)
    latencies = []
    for text in texts:
        start = clock()
        engine.bm25_hits(text)
        latencies.append(clock() - start)
    ms = np.array(latencies) * 1000
    return {
        "products": len(catalog.products),
        "goals": len(catalog.goals),
        "generate_s": generate,
        "build_s": build,
        "load_s": load,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def measure_steps(episodes: int) -> dict[str, float]:
    import gymnasium as gym

    import agentgym  # noqa: F401
    from agentgym.agents import RandomAgent

    env = gym.make("agentgym/WebShop-v0", split="test")
    rates = {}
    for name in ("expert", "random"):
        agent, steps, start = RandomAgent(0), 0, clock()
        for episode in range(episodes):
            obs, info = env.reset(seed=episode)
            done = False
            while not done:
                action = info["expert_action"] if name == "expert" else agent.act(obs, info, episode_id=str(episode))
                obs, _, terminated, truncated, info = env.step(action)
                steps += 1
                done = terminated or truncated
        rates[f"{name}_steps_per_s"] = steps / (clock() - start)
    env.close()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--episodes", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["AGENTGYM_CACHE"] = cache
        rows = [measure_size(size, args.queries) for size in args.sizes]
        steps = measure_steps(args.episodes)
    print(
        f"{'products':>9} {'goals':>7} {'generate s':>10} {'index build s':>13} {'index load s':>12} "
        f"{'query p50 ms':>12} {'query p99 ms':>12}"
    )
    for row in rows:
        print(
            f"{row['products']:>9} {row['goals']:>7} {row['generate_s']:>10.2f} {row['build_s']:>13.2f} "
            f"{row['load_s']:>12.3f} {row['p50_ms']:>12.3f} {row['p99_ms']:>12.3f}"
        )
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        print(
            f"ratio {last['products']}/{first['products']} products: build x{last['build_s'] / first['build_s']:.1f}, "
            f"query p50 x{last['p50_ms'] / first['p50_ms']:.1f}"
        )
    largest = rows[-1]
    print(
        f"goals at {largest['products']} products: query p50 {largest['p50_ms']:.2f} ms (< 5: "
        f"{largest['p50_ms'] < 5}), index build {largest['build_s']:.1f} s (< 30: {largest['build_s'] < 30})"
    )
    print(
        f"env steps/s at {rows[0]['products']} products (text mode, this process): "
        f"oracle {steps['expert_steps_per_s']:.0f}, random agent {steps['random_steps_per_s']:.0f}"
    )


if __name__ == "__main__":
    main()
