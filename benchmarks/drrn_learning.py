"""DRRN learning curve on the embedded TextWorld coin-collector games (train split, 10 games, level 5).

Trains with ``baselines/train_drrn.py``'s defaults (CPU, one torch thread), evaluating the greedy agent
on the 10 training games (and the 2 coin-collector games of the valid split) every ``--eval-every``
env steps. Time is this process's CPU time (the TextWorld engine runs in-process, so it is counted, and
other load on the machine does not inflate it). Writes ``benchmarks/results/drrn_learning.csv`` (the
run's metrics.csv) and ``drrn_learning.png``, and prints the first evaluation at or above 90% success.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/drrn_learning.py [--total-steps 5000] [--seed 1]
"""

from __future__ import annotations

import argparse
import csv
import shutil
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from agentgym.baselines import train_drrn  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def plot(rows: list[dict[str, str]], path: Path, title: str) -> None:
    steps = [int(r["step"]) for r in rows]
    cpu = [float(r["cpu_s"]) for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [float(r["eval/train_success"]) for r in rows], "o-", label="greedy, 10 train games")
    explore = [float(r["charts/train_success"]) for r in rows]
    ax.plot(steps, explore, "--", label="training episodes (last 100, exploring)")
    valid = [r.get("eval/valid_success") for r in rows]
    if all(valid):
        ax.plot(steps, [float(v) for v in valid], ":", label="greedy, 2 valid games (unseen)")
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
    parser.add_argument("--replot", action="store_true", help="only redraw the PNG from the CSV")
    cli = parser.parse_args()
    args = train_drrn.Args(
        seed=cli.seed, total_steps=cli.total_steps, eval_every=cli.eval_every, kind="coin_collector",
        output_dir="results/runs", progress=False,
    )
    if not cli.replot:
        final = train_drrn.main(args)
        RESULTS.mkdir(exist_ok=True)
        shutil.copy(Path(final["run_dir"]) / "metrics.csv", RESULTS / "drrn_learning.csv")
    with open(RESULTS / "drrn_learning.csv") as file:
        rows = list(csv.DictReader(file))
    title = (f"DRRN on TextWorld coin_collector (train split, 10 games), seed {cli.seed}, "
             f"{args.num_envs} envs, 1 CPU thread")
    plot(rows, RESULTS / "drrn_learning.png", title)
    reached = next((r for r in rows if float(r["eval/train_success"]) >= 0.9), None)
    if reached:
        print(f"greedy success >= 90% first at {reached['step']} env steps, {reached['updates']} updates, "
              f"{reached['cpu_s']} CPU s ({reached['wall_s']} s wall): {reached['eval/train_success']}")
    else:
        print("greedy success never reached 90%")
    last = rows[-1]
    print(f"final: {last['step']} env steps, {last['episodes']} episodes, {last['cpu_s']} CPU s: "
          f"train {last['eval/train_success']}, valid {last['eval/valid_success']}")
    print(f"wrote {RESULTS / 'drrn_learning.csv'} and {RESULTS / 'drrn_learning.png'}")


if __name__ == "__main__":
    main()
