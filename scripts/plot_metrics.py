"""Plot a training run's learning curves from its metrics.jsonl (any trainer of agentgym.baselines).

Usage: python scripts/plot_metrics.py runs/<run name> [OUT.png] [--keys rollout/success_rate train/loss ...]

The run folder is :mod:`agentgym.baselines.runs`'s; a key a run never logged is left out (the defaults
cover both trainers: pg has ``rollout/task_return`` and ``train/approx_kl``, drrn ``train/epsilon``).
The x axis is the run's ``step`` (PPO updates for pg, env steps for drrn).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agentgym.baselines.runs import read_metrics

DEFAULT_KEYS = [
    "rollout/task_return",
    "rollout/success_rate",
    "eval/*/success_rate",
    "train/loss",
    "train/approx_kl",
    "train/epsilon",
]


def present_keys(rows: list[dict], keys: list[str]) -> list[str]:
    """``keys`` that some row has, in order; ``eval/*/...`` stands for that metric of every evaluated split."""
    logged = list(dict.fromkeys(key for row in rows for key in row if key != "step"))
    found: list[str] = []
    for key in keys:
        if key.startswith("eval/*/"):
            found += [k for k in logged if k.startswith("eval/") and k.endswith(key[len("eval/*") :])]
        elif key in logged:
            found.append(key)
    return list(dict.fromkeys(found))


def plot(run_dir: str | Path, out: str | Path | None = None, keys: list[str] | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    rows = read_metrics(run_dir)
    keys = present_keys(rows, keys or DEFAULT_KEYS)
    if not keys:
        raise SystemExit(f"{run_dir / 'metrics.jsonl'}: none of the keys was logged (or the file is missing)")
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        points = [(row["step"], row[key]) for row in rows if key in row]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.suptitle(run_dir.name, fontsize=9)
    fig.tight_layout()
    out = Path(out) if out else run_dir / "curves.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("out", nargs="?")
    parser.add_argument("--keys", nargs="*")
    ns = parser.parse_args()
    print(plot(ns.run_dir, ns.out, ns.keys))
