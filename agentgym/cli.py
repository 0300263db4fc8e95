"""The ``agentgym`` command: list envs, play one, evaluate agents, show the leaderboard, prepare tasks."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import gymnasium as gym

import agentgym
from agentgym.agents import AGENTS, make_agent
from agentgym.error import AgentGymError
from agentgym.registration import check_env_id
from agentgym.store import DEFAULT_DB, ResultStore


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
    """An ``--agent`` spec (agentgym.agent_specs lists the forms), checked before any env starts."""
    from agentgym.agent_specs import parse_agent_spec

    try:
        parse_agent_spec(text, AGENTS)
    except AgentGymError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _agent_kwargs(text: str) -> dict:
    """``--agent-kwargs``: a JSON object of the agent's keyword arguments."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON, e.g. '{{\"temperature\": 0.7}}': {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {type(value).__name__}")
    return value


def _positive_int(text: str) -> int:
    """A count of at least 1 (``--envs-per-worker``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def cmd_list(args: argparse.Namespace) -> int:
    """Env ids with their splits and task counts."""
    print(f"{'env id':<32} {'split':<14} {'tasks':>6}  manifest      engine")
    for env_id in agentgym.registered_ids():
        try:
            splits = _env_class(gym.spec(env_id)).splits
        except AgentGymError as exc:  # a family whose extra is not installed: say which, list the rest
            print(f"{env_id:<32} {'-':<14} {'-':>6}  {exc}")
            continue
        for split in splits:
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
            print(
                f"\n{obs}\n[turn {info['turn']}  reward {reward:+g}  score {info['score']:.2f}"
                f"{'' if info['action_valid'] else '  (not an admissible action)'}]"
            )
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
    agent = make_agent(args.agent, seed=args.seed, **args.agent_kwargs)
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
            envs_per_worker=args.envs_per_worker,
            env_kwargs=_env_kwargs(args.env_kwargs),
            progress=not args.quiet,
            save_trajectories=args.save_trajectories,
        )
    except KeyboardInterrupt:
        print(
            f"\nInterrupted. Finished episodes are stored in {args.db}; run the same command again to resume.",
            file=sys.stderr,
        )
        return 130
    print(
        f"{summary.agent} on {args.env} ({args.split}): {len(summary.results)} episodes "
        f"({summary.already_done} already stored, {summary.played} played), "
        f"success {summary.success_rate:.1%} -> {args.db}"
    )
    return 0


#: ``algo`` in a training config -> the trainer module (it provides ``load_config(mapping) -> Args`` and
#: ``run_config(mapping) -> TrainResult``, :class:`agentgym.baselines.runs.TrainResult`).
TRAINERS = {"pg": "agentgym.baselines.train_pg", "drrn": "agentgym.baselines.train_drrn"}


def cmd_train(args: argparse.Namespace) -> int:
    """Train with the trainer named by the config's ``algo`` key (default ``pg``: PPO-clip with any estimator
    of agentgym.baselines.advantages and turn-level reward hooks; ``drrn``: a DRRN with Q-learning); the other
    keys are the trainer's arguments, checked before any model loads. Every trainer writes
    ``<output_dir>/<run_name>/`` with config.json, metrics.jsonl and checkpoint-NNNNNN/ folders."""
    import importlib

    from agentgym.extras import needs

    with needs("train"):
        import yaml

    with open(args.config, encoding="utf-8") as handle:
        config = yaml.safe_load(handle) or {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set needs KEY=VALUE, got {item!r}")
        config[key.strip()] = yaml.safe_load(value)
    if args.no_progress:
        config["progress"] = False
    algo = config.pop("algo", "pg")
    if algo not in TRAINERS:
        raise SystemExit(f"unknown algo {algo!r} in {args.config}; expected one of {sorted(TRAINERS)}")
    if args.save_trajectories:
        if algo != "pg":  # DRRN learns from single transitions in a replay buffer, not from rollouts
            raise SystemExit(f"--save-trajectories records the rollouts of the pg trainer; {args.config} trains {algo}")
        config["save_trajectories"] = args.save_trajectories
    result = importlib.import_module(TRAINERS[algo]).run_config(config)
    shown = {
        key: value
        for key, value in result.metrics.items()
        if key == "step" or key.endswith("success_rate") or key == "train/loss"
    }
    print(f"run folder: {result.run_dir}; last checkpoint: {result.checkpoint}; last metrics: {shown}")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """Success rate with its 95% Wilson interval, mean score and turns, episodes and seeds per agent under each
    protocol key (env id, engine, task manifest, split, turn limit; rows are compared only within one).

    --format picks text, markdown, csv, latex or json; --task-types adds the per-task-type breakdown; --compare A B
    the paired difference of two agents on the same episodes (seeded bootstrap interval); --html DIR writes a
    self-contained site (tables, error bars, heat map, learning curves of --runs, trajectory viewer).
    With --competitive: Elo ratings from stored multi-agent games instead.
    """
    from agentgym import report
    from agentgym.store import require_db

    require_db(args.db)
    if args.competitive:
        from agentgym.ratings import RatingStore, format_ratings

        with RatingStore(args.db) as store:
            print(format_ratings(store.ratings(args.env)))
        return 0
    with ResultStore(args.db, create=False) as store:
        report.check_env_filter(args.env, store.env_ids(), args.db)
        rows = store.leaderboard(args.env, by_seed=args.by_seed)
        episodes = list(store.stored(args.env, trajectories=False))
    if args.html:
        from agentgym.site import write_site

        page = write_site(args.db, args.html, env_id=args.env, runs=args.runs, by_seed=args.by_seed)
        print(f"Leaderboard site written to {page.resolve()} (open it in a browser; it needs no network).")
        return 0
    breakdown = report.task_type_breakdown(episodes)
    print(report.render(rows, args.format, breakdown).rstrip("\n"))
    if args.task_types and args.format == "text":
        print("\n" + report.format_breakdown(breakdown))
    if args.compare:
        comparisons = report.paired_comparison(episodes, *args.compare, metric=args.metric, seed=args.bootstrap_seed)
        if not comparisons:
            raise AgentGymError(
                f"{args.compare[0]!r} and {args.compare[1]!r} share no episodes (same protocol, "
                f"--seed and episode index) in {args.db}"
            )
        print(
            "\n"
            + "\n".join(
                f"{c.protocol.env_id} ({c.protocol.split}, protocol {c.protocol.key}): {c.line()}" for c in comparisons
            )
        )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write the stored trajectories of a results database for offline training and analysis: jsonl (one
    Trajectory per line, agentgym.trajectory.load_jsonl reads it), messages (one chat example per turn for
    TRL/SFT) or parquet (one row per turn; needs pyarrow)."""
    from agentgym.export import export

    written, missing = export(
        args.db, args.format, args.output, env_id=args.env, agent=args.agent, won_only=args.won_only
    )
    note = (
        f" ({missing} stored episodes have no trajectory: evaluated before trajectories were kept)" if missing else ""
    )
    print(f"{written} episodes as {args.format} -> {args.output or 'standard output'}{note}", file=sys.stderr)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Replay every stored trajectory of a deterministic family through its env and confirm the stored result;
    exit status 1 when any episode disagrees (a tampered or version-drifted result)."""
    from agentgym.verify import summary, verify

    def show(verdict) -> None:
        if verdict.status != "ok" or args.verbose:
            print(verdict.line(), flush=True)

    verdicts = verify(args.db, env_id=args.env, agent=args.agent, on_verdict=show)
    print(summary(verdicts))
    return 1 if any(v.status == "mismatch" for v in verdicts) else 0


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
    p.add_argument("--env-kwargs", help="extra constructor arguments as JSON, e.g. '{\"max_turns\": 30}'")
    p.set_defaults(func=cmd_play)

    p = commands.add_parser("eval", help="evaluate an agent under the fixed protocol", description=cmd_eval.__doc__)
    p.add_argument("--env", required=True, help="env id, e.g. agentgym/TextWorld-v0")
    p.add_argument(
        "--agent",
        required=True,
        type=_agent_name,
        help=f"agent to evaluate: {', '.join(sorted(AGENTS))}, a checkpoint folder of agentgym train, a "
        "Hugging Face model folder, package.module:Class (an agentgym.agents.Agent) or "
        "openai:BASE_URL#MODEL (an OpenAI-compatible server)",
    )
    p.add_argument(
        "--agent-kwargs",
        type=_agent_kwargs,
        default={},
        help='the agent\'s keyword arguments as JSON, e.g. \'{"output_format": "react", "temperature": 0.7}\'',
    )
    p.add_argument("--split", default="test", help="split to evaluate on (default: test)")
    p.add_argument("--episodes", type=int, default=20, help="number of episodes (default: 20)")
    p.add_argument("--seed", type=int, default=0, help="base seed of the episode plan (default: 0)")
    p.add_argument("--max-turns", type=int, default=None, help="turn limit (default: the env's)")
    p.add_argument("--workers", type=int, default=2, help="env worker processes (default: 2)")
    p.add_argument(
        "--envs-per-worker",
        type=_positive_int,
        default=1,
        metavar="K",
        help="envs each worker process holds: workers x K episodes in flight, and an LLM agent generates for "
        "every waiting one in one batch (default: 1)",
    )
    p.add_argument("--db", default=DEFAULT_DB, help=f"results database (default: {DEFAULT_DB})")
    p.add_argument("--env-kwargs", help="extra constructor arguments as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--save-trajectories",
        metavar="FILE.jsonl",
        help="also write the run's trajectories to this JSONL file (they are always stored in --db)",
    )
    p.set_defaults(func=cmd_eval)

    p = commands.add_parser("train", help="train an agent from a YAML config", description=cmd_train.__doc__)
    p.add_argument("config", help="YAML file, e.g. baselines/configs/textworld.yaml (algo: pg) or textworld_drrn.yaml")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (VALUE is parsed as YAML), e.g. --set num_steps=5",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars (same as --set progress=false)")
    p.add_argument(
        "--save-trajectories",
        metavar="FILE.jsonl",
        help="append every training rollout's trajectories (hook rewards, token ids) to this JSONL file (pg)",
    )
    p.set_defaults(func=cmd_train)

    p = commands.add_parser("leaderboard", help="compare stored results", description=cmd_leaderboard.__doc__)
    p.add_argument("--db", default=DEFAULT_DB, help=f"results database (default: {DEFAULT_DB})")
    p.add_argument("--env", help="only this env id")
    p.add_argument(
        "--format",
        default="text",
        choices=("text", "markdown", "csv", "latex", "json"),
        help="table format (default: text; json includes the task-type breakdown)",
    )
    p.add_argument("--by-seed", action="store_true", help="one row per --seed instead of pooling an agent's seeds")
    p.add_argument("--task-types", action="store_true", help="also the success rate per task type (text format)")
    p.add_argument(
        "--compare",
        nargs=2,
        metavar=("AGENT_A", "AGENT_B"),
        help="paired difference A - B on the episodes both played, with a bootstrap 95%% interval",
    )
    p.add_argument("--metric", default="success", choices=("success", "score"), help="metric of --compare")
    p.add_argument("--bootstrap-seed", type=int, default=0, help="seed of --compare's bootstrap (default: 0)")
    p.add_argument("--html", metavar="DIR", help="write a self-contained leaderboard site to DIR/index.html")
    p.add_argument(
        "--runs",
        metavar="DIR",
        help="training runs for the site's learning curves (metrics.jsonl or metrics.csv under DIR)",
    )
    p.add_argument(
        "--competitive",
        action="store_true",
        help="Elo ratings from multi-agent games (played with python -m agentgym.matches)",
    )
    p.set_defaults(func=cmd_leaderboard)

    p = commands.add_parser(
        "export", help="write stored trajectories (jsonl, messages, parquet)", description=cmd_export.__doc__
    )
    p.add_argument("--db", default=DEFAULT_DB, help=f"results database (default: {DEFAULT_DB})")
    p.add_argument("--format", default="jsonl", choices=("jsonl", "messages", "parquet"), help="default: jsonl")
    p.add_argument("--output", "-o", help="output file (default: standard output; parquet needs a file)")
    p.add_argument("--env", help="only this env id")
    p.add_argument("--agent", help="only this agent (its stored name)")
    p.add_argument("--won-only", action="store_true", help="only won episodes (e.g. for SFT on successes)")
    p.set_defaults(func=cmd_export)

    p = commands.add_parser(
        "verify", help="replay stored trajectories and confirm their scores", description=cmd_verify.__doc__
    )
    p.add_argument("--db", default=DEFAULT_DB, help=f"results database (default: {DEFAULT_DB})")
    p.add_argument("--env", help="only this env id")
    p.add_argument("--agent", help="only this agent (its stored name)")
    p.add_argument("--verbose", "-v", action="store_true", help="also list the episodes that verify")
    p.set_defaults(func=cmd_verify)

    p = commands.add_parser(
        "prepare", help="generate a split's task files ahead of time", description=cmd_prepare.__doc__
    )
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
