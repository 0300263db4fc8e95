"""ALFWorld speed, stock vs fast engine path (issue 11): steps/s, load+reset with and without the disk
cache, memory per env, 1 vs 2 workers; plus game generation and the experts' success rates (the default
oracle, ALFWorld's handcoded).

Everything is measured in this one run, on the same generated games (exported to an ``alfworld-download``
folder so ALFWorld's own loader reads them) and the same actions (a seeded choice among the admissible
commands, read every step, with an invalid command every 7th step). Each side runs in its own fresh process:

* ``alfworld``: ALFWorld's ``AlfredTWEnv(config).init_env(batch_size=1)`` (stock textworld engine, its
  textworld.gym worker process), as ALFWorld's own training scripts use it;
* ``stock``: ``ALFWorldEnv(exact_stock=True)``, the unmodified engine;
* ``fast``: ``ALFWorldEnv()`` with the disk cache off: pass 1 visits every game for the first time (cold),
  pass 2 revisits them (warm in-memory memos);
* ``fast_disk``: ``ALFWorldEnv()`` in a fresh process after another one (``fast_disk_build``) has filled
  the disk cache: each game is new to the process, its translation and grammar parse are read from disk;
* ``engine``: the fast engine stack alone (``FastPddlEnv`` + ALFWorld's wrappers), for agentgym's overhead.

Per-episode numbers leave out the first game each process plays: its load+reset also pays the process's
one-time start-up (imports, compiled parsers), printed on its own. It checks that all runs give identical
observations and admissible commands and prints the ratios against the goals (>= 30x stock steps/s,
>= 6x faster load+reset without the disk cache, >= 20x with it, 2 workers >= 1.8x one, next to the
machine's own 2-process ceiling measured in the same run). The machine's speed drifts between minutes,
so every measurement runs ``--repeat`` times (default 3) and the medians are printed.

    OMP_NUM_THREADS=1 python benchmarks/alfworld_speed.py                # several minutes on 2 cores
    python benchmarks/alfworld_speed.py --games 6 --expert-games 0       # quicker
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from functools import partial
from pathlib import Path

INVALID = "jump around the kitchen"


def _actions_played(first_admissible, take_step, steps, seed):
    """Play ``steps`` scripted actions; return the digest of everything seen and the per-step seconds."""
    rng = random.Random(seed)
    digest = hashlib.sha256()
    admissible, timings = first_admissible, []
    for turn in range(steps):
        action = INVALID if turn % 7 == 6 else rng.choice(sorted(admissible))
        start = time.perf_counter()
        observation, admissible, done = take_step(action)
        timings.append(time.perf_counter() - start)
        digest.update(json.dumps([action, observation, sorted(admissible)]).encode())
        if done:
            break
    return digest.hexdigest(), timings


def _seed_of(gamefile: str) -> int:
    return int(hashlib.sha256(Path(gamefile).parent.name.encode()).hexdigest()[:8], 16)


def role_alfworld(folder: Path, steps: int) -> dict:
    from alfworld.agents.environment.alfred_tw_env import AlfredTWEnv

    config = {
        "env": {
            "goal_desc_human_anns_prob": 0,
            "task_types": [1, 2, 3, 4, 5, 6],
            "domain_randomization": False,
            "expert_type": "handcoded",
        },
        "dataset": {"eval_ood_data_path": str(folder / "json_2.1.1" / "valid_unseen"), "num_eval_games": -1},
        "general": {"training_method": "dagger"},
        "dagger": {"training": {"max_nb_steps_per_episode": 1000}},
    }
    alf = AlfredTWEnv(config, train_eval="eval_out_of_distribution")
    env = alf.init_env(batch_size=1)
    results = {}
    for _ in range(alf.num_games):
        start = time.perf_counter()
        obs, infos = env.reset()
        reset_s = time.perf_counter() - start
        gamefile = infos["extra.gamefile"][0]

        def take_step(action):
            obs, _, dones, infos = env.step([action])
            return obs[0], infos["admissible_commands"][0], dones[0]

        digest, timings = _actions_played(infos["admissible_commands"][0], take_step, steps, _seed_of(gamefile))
        results[Path(gamefile).parent.name] = {
            "reset_s": reset_s,
            "steps": timings,
            "digest": digest,
            "intro": hashlib.sha256(obs[0].encode()).hexdigest(),
        }
    env.close()
    return results


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def _play_games(env_reset, env_step, paths, steps: int) -> dict:
    results = {}
    for path in paths:
        start = time.perf_counter()
        obs, admissible = env_reset(path)
        reset_s = time.perf_counter() - start
        digest, timings = _actions_played(admissible, env_step, steps, _seed_of(str(path)))
        results[Path(path).parent.name] = {
            "reset_s": reset_s,
            "steps": timings,
            "digest": digest,
            "intro": hashlib.sha256(obs.encode()).hexdigest(),
        }
    return results


def role_engine(folder: Path, steps: int) -> dict:
    """The fast engine stack alone (``FastPddlEnv`` + ALFWorld's wrappers), as agentgym runs it."""
    os.environ["AGENTGYM_ALFWORLD_DISK_CACHE"] = "0"
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos

    from agentgym.envs.alfworld import patches
    from agentgym.envs.alfworld.engine import FastPddlEnv
    from agentgym.envs.alfworld.tasks import official_tasks

    patches.install()
    infos = textworld.EnvInfos(admissible_commands=True, won=True, extras=["gamefile"])
    env = AlfredInfos(AlfredDemangler(FastPddlEnv(infos)))

    def reset(path):
        env.load(str(path))
        state = env.reset()
        return state.feedback, state["admissible_commands"]

    def step(action):
        state, _, done = env.step(action)
        return state.feedback, state["admissible_commands"], done

    return _play_games(reset, step, [p for _, p in official_tasks(folder, "valid_unseen")], steps)


def _agentgym(folder: Path, steps: int, exact_stock: bool, passes: int = 1) -> dict:
    from agentgym.envs.alfworld import ALFWorldEnv

    rss_start = _rss_mb()
    env = ALFWorldEnv(split="valid_unseen", data_dir=folder, expert=None, max_turns=10_000, exact_stock=exact_stock)
    ids = {Path(env.game_file(env.tasks.get(t))).as_posix(): t for t in env.task_ids}

    def reset(path):
        obs, info = env.reset(options={"task_id": ids[Path(path).as_posix()]})
        return obs, info["admissible_actions"]

    def step(action):
        obs, _, terminated, truncated, info = env.step(action)
        return obs, info["admissible_actions"], terminated or truncated

    runs = [_play_games(reset, step, list(ids), steps) for _ in range(passes)]
    env.close()
    return {"passes": runs, "rss_mb": _rss_mb() - rss_start}


def role_stock(folder: Path, steps: int) -> dict:
    return _agentgym(folder, steps, exact_stock=True)


def role_fast(folder: Path, steps: int) -> dict:
    """No disk cache: pass 1 is cold (every game new to the process), pass 2 warm (revisits)."""
    os.environ["AGENTGYM_ALFWORLD_DISK_CACHE"] = "0"
    return _agentgym(folder, steps, exact_stock=False, passes=2)


def role_fast_disk_build(folder: Path, steps: int) -> dict:
    """Fills the disk cache (another process than the one measured)."""
    os.environ["AGENTGYM_CACHE"] = str(folder / "cache")
    return _agentgym(folder, 0, exact_stock=False)


def role_fast_disk(folder: Path, steps: int) -> dict:
    """A fresh process with the disk cache prebuilt: every game is new to the process, its translation and
    grammar parse come from disk."""
    os.environ["AGENTGYM_CACHE"] = str(folder / "cache")
    return _agentgym(folder, steps, exact_stock=False)


ROLES = {
    "alfworld": role_alfworld,
    "engine": role_engine,
    "stock": role_stock,
    "fast": role_fast,
    "fast_disk_build": role_fast_disk_build,
    "fast_disk": role_fast_disk,
}


def _run_role(role: str, folder: Path, steps: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--role", role, "--folder", str(folder), "--steps", str(steps)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _summary(results: dict) -> dict:
    """Per-episode costs over every game but the first one a process plays: that first load+reset also
    pays the process's one-time start-up (imports, TatSu's compiled parsers, libdownward), which is not a
    per-episode cost; it is reported on its own as ``first_reset_ms``."""
    first, *rest = results.values()
    steps = [t for r in rest for t in r["steps"]]
    resets = [r["reset_s"] for r in rest]
    total = sum(steps) + sum(resets)
    return {
        "first_reset_ms": 1000 * first["reset_s"],
        "reset_ms": 1000 * statistics.mean(resets),
        "step_ms": 1000 * statistics.mean(steps),
        "steps_per_s": len(steps) / sum(steps),
        "steps_per_s_with_reset": len(steps) / total,
    }


def bench_generation(count: int) -> None:
    from agentgym.envs.alfworld import generator, tasks

    triples = tasks.split_triples("train")[:: max(1, 3553 // count)][:count]
    generator.generate(*triples[0])  # imports
    start = time.perf_counter()
    for triple in triples:
        generator.generate(*triple)
    in_memory = len(triples) / (time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["AGENTGYM_CACHE"] = cache
        start = time.perf_counter()
        for triple in triples:
            tasks.game_path(tasks.task_id(*triple))
        on_disk = len(triples) / (time.perf_counter() - start)
        del os.environ["AGENTGYM_CACHE"]
    print(
        f"generation: {in_memory:,.0f} games/s in memory, {on_disk:,.0f} games/s written to the cache "
        f"({len(triples)} train games)"
    )


def bench_workers(folder: Path, episodes: int, turns: int, repeat: int = 1) -> None:
    import gymnasium as gym

    import agentgym  # noqa: F401
    from agentgym.rollout import group_specs

    sys.path.insert(0, str(Path(__file__).parent))
    from vector_throughput import machine_ceiling, measure

    os.environ["AGENTGYM_CACHE"] = str(folder / "cache")  # the workers find the translations on disk
    env_fn = partial(
        gym.make,
        "agentgym/ALFWorld-v0",
        split="valid_unseen",
        data_dir=str(folder),
        expert=None,
        max_turns=turns,
    )
    task_ids = env_fn().unwrapped.task_ids
    specs = group_specs((task_ids * episodes)[:episodes], range(episodes), group_size=1)
    measure(env_fn, specs[:2], 2)  # warm-up: worker start-up paths, page cache
    rates = [(measure(env_fn, specs, 1), measure(env_fn, specs, 2)) for _ in range(repeat)]
    one, two = statistics.median(r[0] for r in rates), statistics.median(r[1] for r in rates)
    ceiling = statistics.median(machine_ceiling(env_fn, specs) for _ in range(repeat))
    print(
        f"rollout, random agent, {episodes} episodes x {turns} turns (incl. load+reset, disk cache; steady-state "
        f"pools; medians of {repeat}): 1 worker {one:.1f} steps/s, 2 workers {two:.1f} steps/s: {two / one:.2f}x "
        f"(goal >= 1.8x; per repeat {', '.join(f'{b / a:.2f}x' for a, b in rates)}); two independent processes "
        f"vs one, no pool (this machine now): {ceiling:.2f}x"
    )


def bench_expert(count: int, expert: str) -> None:
    from agentgym.envs.alfworld import ALFWorldEnv

    env = ALFWorldEnv(split="valid_unseen", expert=expert, max_turns=50)
    wins, lengths = defaultdict(list), []
    for task_id in env.task_ids[:: max(1, len(env.task_ids) // count)][:count]:
        obs, info = env.reset(options={"task_id": task_id})
        walkthrough = info["alfworld"]["walkthrough"] or []
        done = False
        while not done and info["expert_action"] is not None:
            obs, _, terminated, truncated, info = env.step(info["expert_action"])
            done = terminated or truncated
        wins[task_id.split("/")[1]].append(info["won"])
        if info["won"]:
            lengths.append(info["turn"] - len(walkthrough))
    env.close()
    total = [w for ws in wins.values() for w in ws]
    per_type = ", ".join(f"{t}: {sum(w)}/{len(w)}" for t, w in sorted(wins.items()))
    print(f"{expert} expert, generated valid_unseen, <= 50 turns: {sum(total)}/{len(total)} won ({per_type})")
    if lengths:
        print(f"  when it wins it takes {statistics.mean(lengths):.1f} steps more than the walkthrough (mean)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--games", type=int, default=8, help="games measured (plus one played first in each process, as its warm-up)"
    )
    parser.add_argument("--steps", type=int, default=40, help="scripted steps per game (the spec's protocol: 40)")
    parser.add_argument("--generate", type=int, default=200, help="games for the generation rate")
    parser.add_argument("--episodes", type=int, default=16, help="episodes per worker setting")
    parser.add_argument("--expert-games", type=int, default=24, help="games for the expert's success rate (0: skip)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of every measurement (medians are printed)")
    parser.add_argument("--role", choices=sorted(ROLES), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        print(json.dumps(ROLES[args.role](args.folder, args.steps)))
        return

    from agentgym.envs.alfworld import tasks

    print(f"load average before the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    bench_generation(args.generate)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tasks.export_official_layout("valid_unseen", folder, limit=None)
        # keep an evenly spread subset of the exported games
        trials = sorted((folder / "json_2.1.1" / "valid_unseen").glob("*/trial_*"))
        keep = set(trials[:: max(1, len(trials) // (args.games + 1))][: args.games + 1])  # + the warm-up game
        for trial in trials:
            if trial not in keep:
                for file in trial.iterdir():
                    file.unlink()
                trial.rmdir()
        # every role in a fresh process, all roles once per repeat: this shared machine's speed drifts by
        # tens of percent between minutes, so each figure is the median over the repeats
        repeats = [{role: _run_role(role, folder, args.steps) for role in ROLES} for _ in range(args.repeat)]
        views = [
            {
                "ALFWorld's AlfredTWEnv": raw["alfworld"],
                "agentgym exact_stock=True": raw["stock"]["passes"][0],
                "fast engine stack alone": raw["engine"],
                "agentgym fast, cold, no disk cache": raw["fast"]["passes"][0],
                "agentgym fast, warm (revisits)": raw["fast"]["passes"][1],
                "agentgym fast, disk cache": raw["fast_disk"]["passes"][0],
            }
            for raw in repeats
        ]
        seen = [{n: (g["digest"], g["intro"]) for n, g in r.items()} for runs in views for r in runs.values()]
        names = set(seen[0])
        identical = all(games == seen[0] for games in seen)
        print(
            f"same {len(names)} games, same actions ({args.steps} steps each): observations and admissible "
            f"commands identical across all {len(views[0])} runs x {args.repeat} repeats: {identical}"
        )
        print(
            f"per-episode means over the {len(names) - 1} games after each process's first (warm-up) game, "
            f"median of {args.repeat} repeats:"
        )
        summary = {}
        for name in views[0]:
            per_repeat = [_summary(runs[name]) for runs in views]
            summary[name] = {key: statistics.median(s[key] for s in per_repeat) for key in per_repeat[0]}
        for name, s in summary.items():
            print(
                f"  {name:36s} load+reset {s['reset_ms']:7.1f} ms (first in the process {s['first_reset_ms']:6.0f})"
                f"  step {s['step_ms']:7.2f} ms  {s['steps_per_s']:8.1f} steps/s "
                f"({s['steps_per_s_with_reset']:.1f} incl. load+reset)"
            )
        stock = summary["agentgym exact_stock=True"]
        cold, warm = summary["agentgym fast, cold, no disk cache"], summary["agentgym fast, warm (revisits)"]
        disk, engine = summary["agentgym fast, disk cache"], summary["fast engine stack alone"]

        def verdict(value, goal):
            return f"{value:.1f}x (goal >= {goal}x: {'met' if value >= goal else 'MISSED'})"

        print(
            f"fast vs stock, step rate: cold {verdict(cold['steps_per_s'] / stock['steps_per_s'], 30)}, "
            f"warm {verdict(warm['steps_per_s'] / stock['steps_per_s'], 30)}"
        )
        print(
            "fast vs stock, load+reset without disk cache: "
            f"{verdict(stock['reset_ms'] / cold['reset_ms'], 6)}; "
            f"with it: {verdict(stock['reset_ms'] / disk['reset_ms'], 20)}; "
            f"revisit: {stock['reset_ms'] / warm['reset_ms']:.1f}x"
        )
        print(
            f"fast vs stock, end to end (steps incl. load+reset): cold "
            f"{cold['steps_per_s_with_reset'] / stock['steps_per_s_with_reset']:.1f}x, disk cache "
            f"{disk['steps_per_s_with_reset'] / stock['steps_per_s_with_reset']:.1f}x"
        )
        alf = summary["ALFWorld's AlfredTWEnv"]
        print(
            "agentgym fast vs ALFWorld's AlfredTWEnv: "
            f"{cold['steps_per_s'] / alf['steps_per_s']:.1f}x steps/s, "
            f"{alf['reset_ms'] / cold['reset_ms']:.1f}x load+reset (cold)"
        )
        print(
            f"agentgym overhead over the same fast engine (cold, no disk cache): step x"
            f"{cold['step_ms'] / engine['step_ms']:.3f}, "
            f"load+reset x{cold['reset_ms'] / engine['reset_ms']:.3f}"
        )
        rss = {
            role: statistics.median(raw[role]["rss_mb"] for raw in repeats) for role in ("stock", "fast", "fast_disk")
        }
        print(
            f"memory per env (RSS growth of a fresh process over {len(names)} games, caches included): "
            f"stock {rss['stock']:.1f} MB, fast {rss['fast']:.1f} MB, fast with disk cache {rss['fast_disk']:.1f} MB"
        )
        bench_workers(folder, args.episodes, args.steps, args.repeat)
    if args.expert_games:
        for expert in ("oracle", "handcoded"):
            bench_expert(args.expert_games, expert)


if __name__ == "__main__":
    main()
