"""DRRN learning curve on the embedded TextWorld coin-collector games (train split, 10 games, level 5).

Trains with ``baselines/train_drrn.py``'s defaults (CPU, one torch thread), evaluating the greedy agent
on the 10 training games (and the 2 coin-collector games of the valid split) every ``--eval-every``
env steps. Time is this process's CPU time (the TextWorld engine runs in-process, so it is counted, and
other load on the machine does not inflate it). Writes ``<results>/drrn_learning/`` (the run's
``config.json`` and ``metrics.jsonl``, metric names of :mod:`agentgym.baselines.runs`; ``scripts/plot_metrics.py``
plots it too) and ``<results>/drrn_learning.png``, and prints the first evaluation at or above 90% success.

The stored ``benchmarks/results/drrn_learning.csv`` (and the PNG drawn from it) come from a run before the
metric names were unified; its columns are the old names: ``step`` (env steps), ``episodes``
(now ``rollout/episodes``), ``updates`` (``train/updates``), ``cpu_s``/``wall_s`` (``perf/cpu_s``/``perf/wall_s``),
``epsilon`` (``train/epsilon``), ``loss`` (``train/loss``), ``charts/train_success``
(``rollout/success_rate``), ``eval/train_success`` and ``eval/valid_success``
(``eval/train/success_rate``, ``eval/valid/success_rate``). A new run writes the folder above instead.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/drrn_learning.py [--total-steps 5000] [--seed 1]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from agentgym.baselines import train_drrn  # noqa: E402
from agentgym.baselines.runs import read_metrics  # noqa: E402

RESULTS = Path(__file__).parent / "results"
TRAIN, VALID = "eval/train/success_rate", "eval/valid/success_rate"


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    steps = [row["step"] for row in rows]
    cpu = [row["perf/cpu_s"] for row in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [row[TRAIN] for row in rows], "o-", label="greedy, 10 train games")
    ax.plot(steps, [row["rollout/success_rate"] for row in rows], "--", label="training episodes (last 100, exploring)")
    if all(VALID in row for row in rows):
        ax.plot(steps, [row[VALID] for row in rows], ":", label="greedy, 2 valid games (unseen)")
    ax.axhline(0.9, color="grey", lw=0.8)
    ax.set_xlabel("env steps")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.03, 1.03)
    to_cpu, to_steps = (lambda s: np.interp(s, steps, cpu)), (lambda c: np.interp(c, cpu, steps))
    top = ax.secondary_xaxis("top", functions=(to_cpu, to_steps))
    top.set_xlabel("CPU seconds (one thread)")
    fig.suptitle(title, fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total-steps", type=int, default=5000)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the run folder and PNG go")
    parser.add_argument("--replot", action="store_true", help="only redraw the PNG from <results>/drrn_learning/")
    cli = parser.parse_args()
    stored = cli.results / "drrn_learning"
    args = train_drrn.Args(
        seed=cli.seed,
        total_steps=cli.total_steps,
        eval_every=cli.eval_every,
        kind="coin_collector",
        output_dir="results/runs",
        progress=False,
    )
    if not cli.replot:
        result = train_drrn.train(args)
        stored.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "metrics.jsonl"):
            shutil.copy(result.run_dir / name, stored / name)
    rows = read_metrics(stored)
    if not rows:
        raise SystemExit(f"no metrics in {stored}/metrics.jsonl: run without --replot first")
    title = (
        f"DRRN on TextWorld coin_collector (train split, 10 games), seed {cli.seed}, {args.num_envs} envs, 1 CPU thread"
    )
    plot(rows, cli.results / "drrn_learning.png", title)
    reached = next((row for row in rows if row[TRAIN] >= 0.9), None)
    if reached:
        print(
            f"greedy success >= 90% first at {reached['step']} env steps, {reached['train/updates']:.0f} "
            f"updates, {reached['perf/cpu_s']} CPU s ({reached['perf/wall_s']} s wall): {reached[TRAIN]}"
        )
    else:
        print("greedy success never reached 90%")
    last = rows[-1]
    print(
        f"final: {last['step']} env steps, {last['rollout/episodes']:.0f} episodes, {last['perf/cpu_s']} CPU s: "
        f"train {last[TRAIN]}, valid {last.get(VALID)}"
    )
    print(f"wrote {stored} and {cli.results / 'drrn_learning.png'}")


if __name__ == "__main__":
    main()
