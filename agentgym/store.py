"""The results store: one SQLite row per finished evaluation episode.

Rows are keyed by protocol (env id, engine version, task manifest hash, split, turn limit), agent,
base seed and episode index. Each episode is committed on its own as it finishes (WAL journal), so a
run killed at any moment keeps every finished episode and the next run skips them. The leaderboard
only puts rows that share a protocol key in one table.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

#: Default database, relative to the working directory.
DEFAULT_DB = "results/agentgym.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS episodes (
    protocol_key   TEXT    NOT NULL,
    env_id         TEXT    NOT NULL,
    engine_version TEXT    NOT NULL,
    manifest_hash  TEXT    NOT NULL,
    split          TEXT    NOT NULL,
    max_turns      INTEGER NOT NULL,
    agent          TEXT    NOT NULL,
    seed           INTEGER NOT NULL,
    episode_index  INTEGER NOT NULL,
    task_id        TEXT    NOT NULL,
    episode_seed   INTEGER NOT NULL,
    won            INTEGER NOT NULL,
    score          REAL    NOT NULL,
    total_reward   REAL    NOT NULL,
    turns          INTEGER NOT NULL,
    truncated      INTEGER NOT NULL,
    seconds        REAL    NOT NULL,
    finished_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (protocol_key, agent, seed, episode_index)
);
"""


@dataclasses.dataclass(frozen=True)
class Protocol:
    """What must match for two results to be comparable."""

    env_id: str
    engine_version: str
    manifest_hash: str
    split: str
    max_turns: int

    @property
    def key(self) -> str:
        canonical = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class EpisodeResult:
    episode_index: int
    task_id: str
    episode_seed: int
    won: bool
    score: float
    total_reward: float
    turns: int
    truncated: bool
    seconds: float


@dataclasses.dataclass(frozen=True)
class LeaderboardRow:
    protocol: Protocol
    agent: str
    episodes: int
    success_rate: float
    success_ci: tuple[float, float]
    mean_score: float
    mean_turns: float


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95% Wilson score interval for a success rate (sound at 0% and 100%, unlike the normal one)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


class ResultStore:
    """A SQLite database of evaluation episodes (created on first use)."""

    def __init__(self, path: str | os.PathLike = DEFAULT_DB):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def finished_indices(self, protocol: Protocol, agent: str, seed: int) -> set[int]:
        rows = self._db.execute(
            "SELECT episode_index FROM episodes WHERE protocol_key=? AND agent=? AND seed=?",
            (protocol.key, agent, seed),
        )
        return {index for (index,) in rows}

    def add(self, protocol: Protocol, agent: str, seed: int, result: EpisodeResult) -> None:
        """Record one finished episode (committed at once; a duplicate is ignored)."""
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO episodes (protocol_key, env_id, engine_version, manifest_hash, split, "
                "max_turns, agent, seed, episode_index, task_id, episode_seed, won, score, total_reward, turns, "
                "truncated, seconds) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    protocol.key,
                    protocol.env_id,
                    protocol.engine_version,
                    protocol.manifest_hash,
                    protocol.split,
                    protocol.max_turns,
                    agent,
                    seed,
                    result.episode_index,
                    result.task_id,
                    result.episode_seed,
                    int(result.won),
                    result.score,
                    result.total_reward,
                    result.turns,
                    int(result.truncated),
                    result.seconds,
                ),
            )

    def episodes(self, protocol: Protocol, agent: str, seed: int) -> list[EpisodeResult]:
        rows = self._db.execute(
            "SELECT episode_index, task_id, episode_seed, won, score, total_reward, turns, truncated, seconds "
            "FROM episodes WHERE protocol_key=? AND agent=? AND seed=? ORDER BY episode_index",
            (protocol.key, agent, seed),
        )
        return [
            EpisodeResult(i, task, eseed, bool(won), score, reward, turns, bool(trunc), secs)
            for i, task, eseed, won, score, reward, turns, trunc, secs in rows
        ]

    def leaderboard(self, env_id: str | None = None) -> list[LeaderboardRow]:
        """One row per (protocol, agent), best success rate first within each protocol."""
        query = (
            "SELECT env_id, engine_version, manifest_hash, split, max_turns, agent, COUNT(*), SUM(won), "
            "AVG(score), AVG(turns) FROM episodes"
            + (" WHERE env_id=?" if env_id else "")
            + " GROUP BY protocol_key, agent"
        )
        rows = []
        for env, engine, manifest, split, max_turns, agent, n, wins, score, turns in self._db.execute(
            query, (env_id,) if env_id else ()
        ):
            protocol = Protocol(env, engine, manifest, split, max_turns)
            rows.append(
                LeaderboardRow(protocol, agent, n, wins / n, wilson_interval(wins, n), score, turns)
            )
        rows.sort(key=lambda r: (r.protocol.env_id, r.protocol.split, r.protocol.key, -r.success_rate, r.agent))
        return rows


def format_leaderboard(rows: Iterable[LeaderboardRow]) -> str:
    """A plain-text table per protocol: rows are only compared within one protocol key."""
    out: list[str] = []
    current = None
    header = f"{'agent':<16} {'success':>8} {'95% CI':>15} {'score':>7} {'turns':>7} {'episodes':>9}"
    for row in rows:
        if row.protocol != current:
            current = row.protocol
            p = row.protocol
            out += [
                "",
                f"{p.env_id}  split={p.split}  max_turns={p.max_turns}  engine={p.engine_version}  "
                f"manifest={p.manifest_hash[:12]}  protocol={p.key}",
                header,
                "-" * len(header),
            ]
        low, high = row.success_ci
        out.append(
            f"{row.agent:<16} {row.success_rate:>8.1%} {f'[{low:.1%}, {high:.1%}]':>15} "
            f"{row.mean_score:>7.3f} {row.mean_turns:>7.1f} {row.episodes:>9d}"
        )
    return "\n".join(out).lstrip("\n") if out else "No results yet: run `agentgym eval` first."
