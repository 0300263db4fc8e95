"""The ``agentgym`` command: list envs, play one, evaluate agents, show the leaderboard, prepare tasks."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym

import agentgym
from agentgym.agents import AGENTS, make_agent
from agentgym.error import AgentGymError
from agentgym.registration import check_env_id
from agentgym.store import DEFAULT_DB, ResultStore, format_leaderboard


def _env_kwargs(text: str | None) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--env-kwargs must be a JSON object, e.g. '{{\"max_turns\": 30}}': {exc}") from None
    if not isinstance(value, dict):
        raise SystemExit(f"--env-kwargs must be a JSON object, got {type(value).__name__}")
    return value


def _agent_name(text: str) -> str:
    """A registered agent name or a checkpoint folder (one holding an ``agent.json``)."""
    if text in AGENTS or (Path(text) / "agent.json").is_file():
        return text
    raise argparse.ArgumentTypeError(
        f"unknown agent {text!r}: expected one of {', '.join(sorted(AGENTS))} "
        "or a checkpoint folder with an agent.json"
    )


def cmd_list(args: argparse.Namespace) -> int:
    """Env ids with their splits and task counts."""
    print(f"{'env id':<32} {'split':<14} {'tasks':>6}  manifest      engine")
    for env_id in agentgym.registered_ids():
        for split in _env_class(gym.spec(env_id)).splits:
            try:
                env = gym.make(env_id, split=split)
            except AgentGymError as exc:  # e.g. a task set that is not built yet: say so, list the rest
                print(f"{env_id:<32} {split:<14} {'-':>6}  {exc}")
                continue
            base = env.unwrapped
            manifest = base.manifest
            print(f"{env_id:<32} {split:<14} {len(base.task_ids):>6}  {manifest.hash[:12]}  {manifest.engine_version}")
            env.close()
    return 0


def _env_class(spec: gym.envs.registration.EnvSpec) -> type:
    module, _, name = str(spec.entry_point).partition(":")
    return getattr(__import__(module, fromlist=[name]), name)


def cmd_play(args: argparse.Namespace) -> int:
    """A person plays in the terminal: goal, observation and numbered admissible actions each turn.

    An empty line, or a number that picks no listed action, asks again without spending a turn."""
    env = gym.make(check_env_id(args.env_id), split=args.split, **_env_kwargs(args.env_kwargs))
    options = {"task_id": args.task} if args.task else None
    try:
        obs, info = env.reset(seed=args.seed, options=options)
        print(f"Task {info['task_id']}\nGoal: {info['goal']}\n\n{obs}")
        total = 0.0
        while True:
            actions = info.get("admissible_actions") or []
            if actions:
                print("\nAdmissible actions: " + "  ".join(f"[{i}] {a}" for i, a in enumerate(actions, 1)))
            try:
                line = input("> ").strip()
            except EOFError:
                line = "quit"
            if line in ("quit", "exit", ":q"):
                print("Bye.")
                return 0
            if not line:
                continue
            if line.isdigit() and actions:
                if not 1 <= int(line) <= len(actions):
                    print(f"Pick an action by its number, 1 to {len(actions)}, or type one.")
                    continue
                line = actions[int(line) - 1]
            obs, reward, terminated, truncated, info = env.step(line)
            total += reward
            print(f"\n{obs}\n[turn {info['turn']}  reward {reward:+g}  score {info['score']:.2f}"
                  f"{'' if info['action_valid'] else '  (not an admissible action)'}]")
            if terminated or truncated:
                outcome = "You won!" if info["won"] else ("Turn limit reached." if truncated else "Game over.")
                print(f"\n{outcome} Total reward {total:g}, score {info['score']:.2f}.")
                return 0
    finally:
        env.close()


def cmd_eval(args: argparse.Namespace) -> int:
    """Run (or resume) the evaluation protocol and store every episode."""
    from agentgym.evaluation import evaluate

    check_env_id(args.env)
    agent = make_agent(args.agent, seed=args.seed)
    try:
        summary = evaluate(
            args.env,
            agent,
            split=args.split,
            episodes=args.episodes,
            seed=args.seed,
            max_turns=args.max_turns,
            db=args.db,
            num_workers=args.workers,
            env_kwargs=_env_kwargs(args.env_kwargs),
            progress=not args.quiet,
        )
    except KeyboardInterrupt:
        print(f"\nInterrupted. Finished episodes are stored in {args.db}; run the same command again to resume.",
              file=sys.stderr)
        return 130
    print(
        f"{summary.agent} on {args.env} ({args.split}): {len(summary.results)} episodes "
        f"({summary.already_done} already stored, {summary.played} played), "
        f"success {summary.success_rate:.1%} -> {args.db}"
    )
    return 0


#: ``algo`` in a training config -> the trainer module (it provides ``run_config(mapping) -> int``).
TRAINERS = {"pg": "agentgym.baselines.train_pg"}


def cmd_train(args: argparse.Namespace) -> int:
    """Train with the trainer named by the config's ``algo`` key (default ``pg``: PPO-clip with any estimator
    of agentgym.baselines.advantages and turn-level reward hooks); the other keys are the trainer's arguments,
    checked before any model loads."""
    import importlib

    import yaml

    with open(args.config, encoding="utf-8") as handle:
        config = yaml.safe_load(handle) or {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set needs KEY=VALUE, got {item!r}")
        config[key.strip()] = yaml.safe_load(value)
    algo = config.pop("algo", "pg")
    if algo not in TRAINERS:
        raise SystemExit(f"unknown algo {algo!r} in {args.config}; expected one of {sorted(TRAINERS)}")
    return importlib.import_module(TRAINERS[algo]).run_config(config)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """Success rate, mean score, mean turns, episodes and a 95% CI per (agent, env, split) and protocol.

    With --competitive: Elo ratings from stored multi-agent games instead.
    """
    if args.competitive:
        from agentgym.ratings import RatingStore, format_ratings

        with RatingStore(args.db) as store:
            print(format_ratings(store.ratings(args.env)))
        return 0
    with ResultStore(args.db) as store:
        print(format_leaderboard(store.leaderboard(args.env)))
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    """Generate and cache the task files of a split ahead of time (otherwise done on first use)."""
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    from agentgym.evaluation import describe

    _, task_ids = describe(args.env, args.split, None, _env_kwargs(args.env_kwargs))
    jobs = [(args.env, args.split, task_id) for task_id in task_ids]
    with ProcessPoolExecutor(args.workers) as pool:
        for _ in tqdm(pool.map(_prepare_one, jobs), total=len(jobs), desc=f"{args.env} {args.split}", unit="task"):
            pass
    return 0


def _prepare_one(job: tuple[str, str, str]) -> None:
    env_id, split, task_id = job
    env = gym.make(env_id, split=split)
    try:
        env.reset(options={"task_id": task_id})
    finally:
        env.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentgym",
        description="Gymnasium environments for LLM agents: list them, play one, evaluate agents, compare them.",
    )
    parser.add_argument("--version", action="version", version=f"agentgym {agentgym.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("list", help="env ids, splits and task counts", description=cmd_list.__doc__)
    p.set_defaults(func=cmd_list)

    p = commands.add_parser("play", help="play an env in the terminal", description=cmd_play.__doc__)
    p.add_argument("env_id", help="e.g. agentgym/TextWorld-v0")
    p.add_argument("--split", default="train", help="split to draw the task from (default: train)")
    p.add_argument("--task", help="task id to play (default: drawn by --seed)")
    p.add_argument("--seed", type=int, default=None, help="seed that picks the task")
    p.add_argument("--env-kwargs", help='extra constructor arguments as JSON, e.g. \'{"max_turns": 30}\'')
    p.set_defaults(func=cmd_play)

    p = commands.add_parser("eval", help="evaluate an agent under the fixed protocol", description=cmd_eval.__doc__)
    p.add_argument("--env", required=True, help="env id, e.g. agentgym/TextWorld-v0")
    p.add_argument("--agent", required=True, type=_agent_name,
                   help=f"agent to evaluate: {', '.join(sorted(AGENTS))}, or a trained checkpoint folder")
    p.add_argument("--split", default="test", help="split to evaluate on (default: test)")
    p.add_argument("--episodes", type=int, default=20, help="number of episodes (default: 20)")
    p.add_argument("--seed", type=int, default=0, help="base seed of the episode plan (default: 0)")
    p.add_argument("--max-turns", type=int, default=None, help="turn limit (default: the env's)")
    p.add_argument("--workers", type=int, default=2, help="env worker processes (default: 2)")
    p.add_argument("--db", default=DEFAULT_DB, help=f"results database (default: {DEFAULT_DB})")
    p.add_argument("--env-kwargs", help="extra constructor arguments as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)

    p = commands.add_parser("train", help="train an agent from a YAML config", description=cmd_train.__doc__)
    p.add_argument("config", help="YAML file, e.g. baselines/configs/textworld_grpo.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (VALUE is parsed as YAML), e.g. --set num_steps=5")
    p.set_defaults(func=cmd_train)

    p = commands.add_parser("leaderboard", help="compare stored results", description=cmd_leaderboard.__doc__)
    p.add_argument("--db", default=DEFAULT_DB, help=f"results database (default: {DEFAULT_DB})")
    p.add_argument("--env", help="only this env id")
    p.add_argument(
        "--competitive",
        action="store_true",
        help="Elo ratings from multi-agent games (played with python -m agentgym.envs.multiagent.matches)",
    )
    p.set_defaults(func=cmd_leaderboard)

    p = commands.add_parser("prepare", help="generate a split's task files ahead of time", description=cmd_prepare.__doc__)
    p.add_argument("--env", required=True, help="env id")
    p.add_argument("--split", default="train", help="split (default: train)")
    p.add_argument("--workers", type=int, default=2, help="generator processes (default: 2)")
    p.add_argument("--env-kwargs", help="extra constructor arguments as JSON")
    p.set_defaults(func=cmd_prepare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except AgentGymError as exc:
        print(f"agentgym {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
