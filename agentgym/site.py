"""``agentgym leaderboard --html DIR``: a self-contained static leaderboard site.

``DIR/index.html`` is one file: the data (as JSON), the script and the style sheet are inlined, nothing
is fetched at view time (no CDN, no fonts, no network). It shows, per protocol key, a sortable table with
the 95% Wilson intervals drawn as error bars, a heat map of success per task type and agent, the
learning curves of training runs (``--runs DIR``: every ``metrics.jsonl`` — one JSON object per step —
or ``metrics.csv`` found under it), and a trajectory viewer (turn by turn: observation, action, reward,
hook rewards) over the stored trajectories.

The page's script and style live in ``agentgym/site_assets/`` (``site.js``, ``site.css``) and are copied
into the page; ``site.js`` renders everything from the embedded ``DATA`` object.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
from pathlib import Path
from typing import Any

from agentgym.report import records, task_type_breakdown
from agentgym.store import ResultStore, StoredEpisode, seeds_text

ASSETS = Path(__file__).with_name("site_assets")

#: Trajectories embedded per (protocol, agent, seed): enough to inspect, bounded page size.
MAX_TRAJECTORIES = 40
#: Characters of one observation kept in the page (the end is cut, marked with an ellipsis).
MAX_OBSERVATION_CHARS = 4000


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def read_metrics(path: Path) -> list[dict[str, float]]:
    """One dict per logged step from ``metrics.jsonl`` or ``metrics.csv`` (non-numeric values dropped)."""
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as handle:
        if path.suffix == ".jsonl":
            rows = [json.loads(line) for line in handle if line.strip()]
        else:
            rows = list(csv.DictReader(handle))
    cleaned = []
    for row in rows:
        numbers = {key: _number(value) for key, value in row.items() if key is not None}
        cleaned.append({key: value for key, value in numbers.items() if value is not None})
    return [row for row in cleaned if "step" in row]


def find_runs(root: str | os.PathLike) -> list[dict[str, Any]]:
    """Every training run under ``root``: its name (folder relative to ``root``) and metric rows. A folder with
    both files is read from ``metrics.jsonl``."""
    root = Path(root)
    runs = []
    folders = sorted({p.parent for pattern in ("metrics.jsonl", "metrics.csv") for p in root.rglob(pattern)})
    for folder in folders:
        path = folder / "metrics.jsonl" if (folder / "metrics.jsonl").is_file() else folder / "metrics.csv"
        rows = read_metrics(path)
        if rows:
            name = str(folder.relative_to(root)) if folder != root else folder.name
            runs.append({"name": name, "file": str(path), "rows": rows})
    return runs


def _short(text: str) -> str:
    return text if len(text) <= MAX_OBSERVATION_CHARS else text[:MAX_OBSERVATION_CHARS] + " …"


def _trajectory_view(stored: StoredEpisode) -> dict[str, Any]:
    t = stored.trajectory
    return {
        "protocol": stored.protocol.key,
        "agent": stored.agent,
        "seed": stored.seed,
        "episode": stored.result.episode_index,
        "task_id": stored.result.task_id,
        "task_type": stored.result.task_type,
        "won": stored.result.won,
        "score": stored.result.score,
        "goal": str(t.initial_info.get("goal") or ""),
        "initial": _short(t.initial_observation),
        "turns": [
            {
                "action": turn.action,
                "reply": turn.reply if turn.reply != turn.action else None,
                "observation": _short(turn.observation),
                "reward": turn.reward,
                "hooks": turn.turn_rewards,
                "done": turn.terminated or turn.truncated,
            }
            for turn in t.turns
        ],
    }


def site_data(
    store: ResultStore, env_id: str | None = None, runs: str | os.PathLike | None = None, by_seed: bool = False
) -> dict[str, Any]:
    """Everything the page shows, as JSON types."""
    rows = store.leaderboard(env_id, by_seed=by_seed)
    episodes = list(store.stored(env_id))
    protocols: dict[str, dict[str, Any]] = {}
    for record, row in zip(records(rows), rows):
        section = protocols.setdefault(
            row.protocol.key,
            {
                "key": row.protocol.key,
                "env_id": row.protocol.env_id,
                "split": row.protocol.split,
                "max_turns": row.protocol.max_turns,
                "engine_version": row.protocol.engine_version,
                "manifest_hash": row.protocol.manifest_hash,
                "rows": [],
                "task_types": [],
            },
        )
        section["rows"].append({**record, "seeds_text": seeds_text(row.seeds)})
    for t in task_type_breakdown(episodes):
        protocols[t.protocol.key]["task_types"].append(
            {
                "agent": t.agent,
                "task_type": t.task_type,
                "episodes": t.episodes,
                "success": t.success_rate,
                "ci_low": t.success_ci[0],
                "ci_high": t.success_ci[1],
            }
        )
    shown: dict[tuple[str, str, int], int] = {}
    trajectories = []
    for stored in episodes:
        key = (stored.protocol.key, stored.agent, stored.seed)
        if stored.trajectory is not None and shown.get(key, 0) < MAX_TRAJECTORIES:
            shown[key] = shown.get(key, 0) + 1
            trajectories.append(_trajectory_view(stored))
    return {
        "generated": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "db": str(store.path),
        "protocols": list(protocols.values()),
        "trajectories": trajectories,
        "runs": find_runs(runs) if runs is not None else [],
        "max_trajectories": MAX_TRAJECTORIES,
    }


def _inline_json(data: Any) -> str:
    """JSON safe inside a <script> element (no ``</script>`` or ``<!--`` can end it early)."""
    return (
        json.dumps(data, ensure_ascii=False)
        .replace("<", "\\u003c")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def render_page(data: dict[str, Any]) -> str:
    style = (ASSETS / "site.css").read_text(encoding="utf-8")
    script = (ASSETS / "site.js").read_text(encoding="utf-8")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>agentgym leaderboard</title>\n"
        f"<style>\n{style}</style>\n</head>\n<body>\n"
        '<header><h1>agentgym leaderboard</h1><p id="meta"></p><nav id="nav"></nav></header>\n'
        '<main id="main"><noscript>This page draws its tables with JavaScript (inline, no network).</noscript></main>\n'
        f'<script id="data" type="application/json">{_inline_json(data)}</script>\n'
        f"<script>\n{script}</script>\n</body>\n</html>\n"
    )


def write_site(
    db: str | os.PathLike,
    directory: str | os.PathLike,
    *,
    env_id: str | None = None,
    runs: str | os.PathLike | None = None,
    by_seed: bool = False,
) -> Path:
    """Write ``directory/index.html`` from the results database ``db``; returns its path."""
    with ResultStore(db, create=False) as store:
        data = site_data(store, env_id, runs, by_seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    page = directory / "index.html"
    page.write_text(render_page(data), encoding="utf-8")
    return page
