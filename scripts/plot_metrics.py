"""Plot a training run's learning curves from its metrics.csv (written by agentgym.baselines.train_pg).

Usage: python scripts/plot_metrics.py runs/<run name> [OUT.png] [--keys charts/success eval/success ...]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

DEFAULT_KEYS = ["charts/mean_reward", "charts/success", "eval/success", "losses/approx_kl"]


def plot(run_dir: str | Path, out: str | Path | None = None, keys: list[str] | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    with open(run_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    keys = [k for k in (keys or DEFAULT_KEYS) if any(row.get(k) not in (None, "") for row in rows)]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        points = [(int(row["step"]), float(row[key])) for row in rows if row.get(key) not in (None, "")]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3)
        ax.set_title(key)
        ax.set_xlabel("update step")
        ax.grid(alpha=0.3)
    fig.suptitle(run_dir.name, fontsize=9)
    fig.tight_layout()
    out = Path(out) if out else run_dir / "curves.png"
    fig.savefig(out, dpi=110)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("out", nargs="?")
    parser.add_argument("--keys", nargs="*")
    ns = parser.parse_args()
    print(plot(ns.run_dir, ns.out, ns.keys))
