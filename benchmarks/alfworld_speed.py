"""ALFWorld speed: game generation, reset, steps/s of agentgym vs ALFWorld's own env class, 1 vs 2 workers.

Everything is measured in this one run, on the same generated games (exported to an ``alfworld-download``
folder so ALFWorld's own loader reads them) and the same actions (a seeded choice among the admissible
commands, with an invalid command every 7th step). Each side runs in its own fresh process:

* ``alfworld``: ALFWorld's ``AlfredTWEnv(config).init_env(batch_size=1)`` (stock textworld engine, its
  textworld.gym worker process), as ALFWorld's own training scripts use it;
* ``engine``: the same engine stack (``PddlEnv`` + ``AlfredDemangler`` + ``AlfredInfos``) in process, with
  agentgym's exact engine speedups installed, i.e. everything agentgym runs except agentgym itself;
* ``agentgym``: ``ALFWorldEnv(data_dir=<folder>, expert=None)``.

It checks that all three give identical observations and admissible commands, then prints load+reset ms,
step ms and steps/s, the agentgym/engine overhead ratio (goal < 1.05) and the speedup over ALFWorld's own
class; then steps/s with 1 and 2 rollout workers, and the handcoded expert's success rate.

    OMP_NUM_THREADS=1 python benchmarks/alfworld_speed.py                # about 5 minutes on 2 cores
    python benchmarks/alfworld_speed.py --games 6 --expert-games 12      # quicker
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

        digest, timings = _actions_played(
            infos["admissible_commands"][0], take_step, steps, _seed_of(gamefile)
        )
        results[Path(gamefile).parent.name] = {
            "reset_s": reset_s,
            "steps": timings,
            "digest": digest,
            "intro": hashlib.sha256(obs[0].encode()).hexdigest(),
        }
    env.close()
    return results


def role_engine(folder: Path, steps: int) -> dict:
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos
    from textworld.envs.pddl import PddlEnv

    from agentgym.envs.alfworld.env import PLANNER_SLOT, install_engine_speedups, official_tasks

    install_engine_speedups()
    PLANNER_SLOT.wanted = False  # as agentgym with expert=None
    env = AlfredInfos(
        AlfredDemangler(PddlEnv(textworld.EnvInfos(admissible_commands=True, won=True, extras=["gamefile"])))
    )
    results = {}
    for _, path in official_tasks(folder, "valid_unseen"):
        start = time.perf_counter()
        env.load(str(path))
        state = env.reset()
        reset_s = time.perf_counter() - start

        def take_step(action):
            state, _, done = env.step(action)
            return state.feedback, state["admissible_commands"], done

        digest, timings = _actions_played(state["admissible_commands"], take_step, steps, _seed_of(str(path)))
        results[path.parent.name] = {
            "reset_s": reset_s,
            "steps": timings,
            "digest": digest,
            "intro": hashlib.sha256(state.feedback.encode()).hexdigest(),
        }
    return results


def role_agentgym(folder: Path, steps: int) -> dict:
    from agentgym.envs.alfworld import ALFWorldEnv

    env = ALFWorldEnv(split="valid_unseen", data_dir=folder, expert=None, max_turns=10_000)
    results = {}
    for task_id in env.task_ids:
        start = time.perf_counter()
        obs, info = env.reset(options={"task_id": task_id})
        reset_s = time.perf_counter() - start

        def take_step(action):
            obs, _, terminated, truncated, info = env.step(action)
            return obs, info["admissible_actions"], terminated or truncated

        gamefile = info["alfworld"]["gamefile"]
        digest, timings = _actions_played(info["admissible_actions"], take_step, steps, _seed_of(gamefile))
        results[Path(gamefile).parent.name] = {
            "reset_s": reset_s,
            "steps": timings,
            "digest": digest,
            "intro": hashlib.sha256(obs.encode()).hexdigest(),
        }
    env.close()
    return results


ROLES = {"alfworld": role_alfworld, "engine": role_engine, "agentgym": role_agentgym}


def _run_role(role: str, folder: Path, steps: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--role", role, "--folder", str(folder), "--steps", str(steps)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _summary(results: dict) -> dict:
    steps = [t for r in results.values() for t in r["steps"]]
    resets = [r["reset_s"] for r in results.values()]
    total = sum(steps) + sum(resets)
    return {
        "reset_ms": 1000 * statistics.mean(resets),
        "step_ms": 1000 * statistics.mean(steps),
        "steps_per_s": len(steps) / sum(steps),
        "steps_per_s_with_reset": len(steps) / total,
    }


def bench_generation(count: int) -> None:
    from agentgym.envs.alfworld import games

    triples = games.split_triples("train")[:: max(1, 3553 // count)][:count]
    games.generate(*triples[0])  # imports
    start = time.perf_counter()
    for triple in triples:
        games.generate(*triple)
    in_memory = len(triples) / (time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["AGENTGYM_CACHE"] = cache
        start = time.perf_counter()
        for triple in triples:
            games.game_path(games.task_id(*triple))
        on_disk = len(triples) / (time.perf_counter() - start)
        del os.environ["AGENTGYM_CACHE"]
    print(
        f"generation: {in_memory:,.0f} games/s in memory, {on_disk:,.0f} games/s written to the cache "
        f"({len(triples)} train games)"
    )


def bench_workers(folder: Path, episodes: int, turns: int) -> None:
    import gymnasium as gym

    import agentgym  # noqa: F401
    from agentgym.agents import RandomAgent
    from agentgym.rollout import group_specs, rollout

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
    rates = {}
    for workers in (1, 2):
        start = time.perf_counter()
        trajectories = rollout(env_fn, RandomAgent(seed=0), specs, num_workers=workers)
        elapsed = time.perf_counter() - start
        rates[workers] = sum(len(t.turns) for t in trajectories) / elapsed
    print(
        f"rollout, random agent, {episodes} episodes x {turns} turns (incl. load+reset): "
        f"1 worker {rates[1]:.1f} steps/s, 2 workers {rates[2]:.1f} steps/s ({rates[2] / rates[1]:.2f}x)"
    )


def bench_expert(count: int) -> None:
    from agentgym.envs.alfworld import ALFWorldEnv

    env = ALFWorldEnv(split="valid_unseen", expert="handcoded", max_turns=50)
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
    print(
        f"handcoded expert, generated valid_unseen, <= 50 turns: {sum(total)}/{len(total)} won ({per_type})"
    )
    if lengths:
        print(
            f"  when it wins it takes {statistics.mean(lengths):.1f} steps more than the walkthrough (mean)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=8, help="games for the agentgym-vs-ALFWorld comparison")
    parser.add_argument("--steps", type=int, default=30, help="scripted steps per game")
    parser.add_argument("--generate", type=int, default=200, help="games for the generation rate")
    parser.add_argument("--episodes", type=int, default=16, help="episodes per worker setting")
    parser.add_argument(
        "--expert-games", type=int, default=24, help="games for the expert's success rate (0: skip)"
    )
    parser.add_argument("--role", choices=sorted(ROLES), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        print(json.dumps(ROLES[args.role](args.folder, args.steps)))
        return

    from agentgym.envs.alfworld import games

    print(f"load average before the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    bench_generation(args.generate)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        games.export_official_layout("valid_unseen", folder, limit=None)
        # keep an evenly spread subset of the exported games
        trials = sorted((folder / "json_2.1.1" / "valid_unseen").glob("*/trial_*"))
        keep = set(trials[:: max(1, len(trials) // args.games)][: args.games])
        for trial in trials:
            if trial not in keep:
                for file in trial.iterdir():
                    file.unlink()
                trial.rmdir()
        results = {role: _run_role(role, folder, args.steps) for role in ("alfworld", "engine", "agentgym")}
        names = set(results["agentgym"])
        identical = all(set(r) == names for r in results.values()) and all(
            len({(results[role][n]["digest"], results[role][n]["intro"]) for role in results}) == 1
            for n in names
        )
        print(
            f"same {len(names)} games, same actions: observations and admissible commands identical "
            f"across the three: {identical}"
        )
        summary = {role: _summary(r) for role, r in results.items()}
        for role, s in summary.items():
            print(
                f"  {role:9s} load+reset {s['reset_ms']:7.1f} ms  step {s['step_ms']:6.2f} ms  "
                f"{s['steps_per_s']:7.1f} steps/s ({s['steps_per_s_with_reset']:.1f} incl. load+reset)"
            )
        a, e, stock = summary["agentgym"], summary["engine"], summary["alfworld"]
        print(
            f"agentgym overhead over the same engine: step time x{a['step_ms'] / e['step_ms']:.3f}, "
            f"load+reset x{a['reset_ms'] / e['reset_ms']:.3f} (goal < 1.05)"
        )
        print(
            f"agentgym vs ALFWorld's AlfredTWEnv: {a['steps_per_s'] / stock['steps_per_s']:.1f}x steps/s, "
            f"{stock['reset_ms'] / a['reset_ms']:.1f}x faster load+reset, "
            f"{a['steps_per_s_with_reset'] / stock['steps_per_s_with_reset']:.1f}x end to end"
        )
        bench_workers(folder, args.episodes, args.steps)
    if args.expert_games:
        bench_expert(args.expert_games)


if __name__ == "__main__":
    main()
