"""The results store: one SQLite row per finished evaluation episode, with its trajectory beside it.

Rows are keyed by protocol (env id, engine version, task manifest hash, split, turn limit), agent,
base seed and episode index. Each episode is committed on its own as it finishes (WAL journal), so a
run killed at any moment keeps every finished episode and the next run skips them. The leaderboard
only puts rows that share a protocol key in one table, and lists the seeds it pooled.

Storage (schema version 2, ``PRAGMA user_version``):

* ``episodes``: the result row (one per episode), with the episode's ``task_type``
  (:mod:`agentgym.tasktypes`; NULL in rows written before the column existed: derived from the id).
* ``trajectories``: the episode's whole :class:`~agentgym.trajectory.Trajectory` (turns, actions,
  rewards, hook rewards, token ids and log-probs where the agent has them), as zlib-compressed JSON
  (``encoding = 'json+zlib'``), under the same key as its row and written in the same transaction; with
  ``env_kwargs``, the JSON constructor arguments the episode's env was made with (what ``agentgym verify``
  rebuilds it from). Episodes evaluated before version 2 have no trajectory.
* ``agents``: what each agent name stands for (``config``: the JSON of ``agent.identity``, the settings its
  name hashes: model, prompt format, sampling...), so a row's agent can be traced to its configuration.

A version-1 database (no ``task_type``, no ``trajectories``) is migrated in place when opened for writing
(one ``ALTER TABLE ... ADD COLUMN`` and a new table: no row is rewritten or lost).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sqlite3
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from agentgym.error import InvalidArgumentError, TaskFileError
from agentgym.tasktypes import task_type_from_id
from agentgym.trajectory import Trajectory, jsonable

#: Default database, relative to the working directory.
DEFAULT_DB = "results/agentgym.sqlite"

SCHEMA_VERSION = 2

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
CREATE TABLE IF NOT EXISTS trajectories (
    protocol_key   TEXT    NOT NULL,
    agent          TEXT    NOT NULL,
    seed           INTEGER NOT NULL,
    episode_index  INTEGER NOT NULL,
    env_kwargs     TEXT    NOT NULL,
    encoding       TEXT    NOT NULL,
    data           BLOB    NOT NULL,
    PRIMARY KEY (protocol_key, agent, seed, episode_index)
);
CREATE TABLE IF NOT EXISTS agents (
    name           TEXT    PRIMARY KEY,
    config         TEXT    NOT NULL
);
"""

_EPISODE_FIELDS = (
    "episode_index",
    "task_id",
    "episode_seed",
    "won",
    "score",
    "total_reward",
    "turns",
    "truncated",
    "seconds",
    "task_type",
)
_PROTOCOL_FIELDS = ("env_id", "engine_version", "manifest_hash", "split", "max_turns")


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
    #: :mod:`agentgym.tasktypes`; None: not recorded (read back as the type derived from the id).
    task_type: str | None = None


@dataclasses.dataclass(frozen=True)
class StoredEpisode:
    """One stored episode: its row, its key and (when recorded) its trajectory and env arguments."""

    protocol: Protocol
    agent: str
    seed: int
    result: EpisodeResult
    trajectory: Trajectory | None = None
    env_kwargs: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class LeaderboardRow:
    protocol: Protocol
    agent: str
    episodes: int
    success_rate: float
    success_ci: tuple[float, float]
    mean_score: float
    mean_turns: float
    #: The base seeds (``--seed``) whose episodes the row pools.
    seeds: tuple[int, ...] = ()


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95% Wilson score interval for a success rate (sound at 0% and 100%, unlike the normal one)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def require_db(path: str | os.PathLike) -> Path:
    """``path`` if it is an existing file; otherwise a clear error (reading never creates a database)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidArgumentError(
            f"results database {str(path)!r} does not exist; `agentgym eval --db {path}` writes one"
        )
    return path


def encode_trajectory(trajectory: Trajectory) -> bytes:
    return zlib.compress(json.dumps(trajectory.to_dict(), ensure_ascii=False).encode(), 6)


def decode_trajectory(data: bytes, encoding: str, where: str) -> Trajectory:
    if encoding != "json+zlib":
        raise TaskFileError(f"{where}: unknown trajectory encoding {encoding!r}; expected 'json+zlib'")
    try:
        return Trajectory.from_dict(json.loads(zlib.decompress(data)))
    except (zlib.error, ValueError, TypeError) as exc:
        raise TaskFileError(f"{where}: stored trajectory cannot be read: {exc}") from exc


class ResultStore:
    """A SQLite database of evaluation episodes.

    ``create=True`` (writers: the evaluator, the match runner) creates a missing database and migrates an
    old one; ``create=False`` (readers: leaderboard, export, verify) refuses a missing path instead of
    leaving an empty file behind, and reads an old database as it is.
    """

    def __init__(self, path: str | os.PathLike = DEFAULT_DB, *, create: bool = True):
        self.path = Path(path) if create else require_db(path)
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30)
        if create:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            self._migrate()
        elif not self._has_table("episodes"):
            self._db.close()
            raise InvalidArgumentError(f"{str(self.path)!r} is not an agentgym results database (no episodes table)")

    def _has_table(self, name: str) -> bool:
        return bool(self._db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone())

    def _columns(self, table: str) -> set[str]:
        return {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}

    def _migrate(self) -> None:
        """Version 1 -> 2: the ``task_type`` column (the trajectories table is created by SCHEMA)."""
        with self._db:
            if "task_type" not in self._columns("episodes"):
                self._db.execute("ALTER TABLE episodes ADD COLUMN task_type TEXT")
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------ writing
    def finished_indices(self, protocol: Protocol, agent: str, seed: int) -> set[int]:
        rows = self._db.execute(
            "SELECT episode_index FROM episodes WHERE protocol_key=? AND agent=? AND seed=?",
            (protocol.key, agent, seed),
        )
        return {index for (index,) in rows}

    def add(
        self,
        protocol: Protocol,
        agent: str,
        seed: int,
        result: EpisodeResult,
        trajectory: Trajectory | None = None,
        env_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        """Record one finished episode and its trajectory (one transaction, committed at once; a duplicate is
        ignored)."""
        key = (protocol.key, agent, seed, result.episode_index)
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO episodes (protocol_key, env_id, engine_version, manifest_hash, split, "
                "max_turns, agent, seed, episode_index, task_id, episode_seed, won, score, total_reward, turns, "
                "truncated, seconds, task_type) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
                    result.task_type,
                ),
            )
            if trajectory is not None:
                self._db.execute(
                    "INSERT OR IGNORE INTO trajectories VALUES (?,?,?,?,?,?,?)",
                    (
                        *key,
                        json.dumps(dict(env_kwargs or {}), sort_keys=True),
                        "json+zlib",
                        encode_trajectory(trajectory),
                    ),
                )

    def add_agent(self, name: str, config: Mapping[str, Any] | None) -> None:
        """Record what agent ``name`` stands for (kept from its first evaluation; the name hashes it)."""
        if config is not None:
            with self._db:
                self._db.execute(
                    "INSERT OR IGNORE INTO agents VALUES (?, ?)",
                    (name, json.dumps(jsonable(dict(config)), sort_keys=True)),
                )

    # ------------------------------------------------------------------ reading
    def agent_config(self, name: str) -> dict[str, Any] | None:
        """The configuration recorded for agent ``name`` (None: not recorded, or a database from before)."""
        if not self._has_table("agents"):
            return None
        row = self._db.execute("SELECT config FROM agents WHERE name=?", (name,)).fetchone()
        return None if row is None else json.loads(row[0])

    def _episode_columns(self, prefix: str = "") -> str:
        """The SELECT list of an :class:`EpisodeResult` (NULL for the task type of a version-1 database)."""
        has_type = "task_type" in self._columns("episodes")
        return ", ".join(prefix + c if c != "task_type" or has_type else "NULL" for c in _EPISODE_FIELDS)

    @staticmethod
    def _result(row: tuple) -> EpisodeResult:
        i, task, eseed, won, score, reward, turns, trunc, secs, ttype = row
        return EpisodeResult(
            i,
            task,
            eseed,
            bool(won),
            score,
            reward,
            turns,
            bool(trunc),
            secs,
            ttype if ttype is not None else task_type_from_id(task),
        )

    def episodes(self, protocol: Protocol, agent: str, seed: int) -> list[EpisodeResult]:
        rows = self._db.execute(
            f"SELECT {self._episode_columns()} FROM episodes WHERE protocol_key=? AND agent=? AND seed=? "
            "ORDER BY episode_index",
            (protocol.key, agent, seed),
        )
        return [self._result(row) for row in rows]

    def env_ids(self) -> list[str]:
        """The env ids that have results."""
        return [env for (env,) in self._db.execute("SELECT DISTINCT env_id FROM episodes ORDER BY env_id")]

    def stored(
        self, env_id: str | None = None, agent: str | None = None, *, trajectories: bool = True
    ) -> Iterator[StoredEpisode]:
        """Every stored episode (with its trajectory when recorded and ``trajectories``), in key order."""
        where, params = [], []
        for column, value in (("e.env_id", env_id), ("e.agent", agent)):
            if value is not None:
                where.append(f"{column}=?")
                params.append(value)
        source = "NULL, NULL, NULL FROM episodes e"
        if trajectories and self._has_table("trajectories"):
            source = (
                "t.env_kwargs, t.encoding, t.data FROM episodes e LEFT JOIN trajectories t "
                "USING (protocol_key, agent, seed, episode_index)"
            )
        query = (
            f"SELECT {', '.join('e.' + c for c in _PROTOCOL_FIELDS)}, e.agent, e.seed, "
            f"{self._episode_columns('e.')}, {source}"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY e.env_id, e.split, e.protocol_key, e.agent, e.seed, e.episode_index"
        )
        for row in self._db.execute(query, params):
            protocol = Protocol(*row[:5])
            agent_name, seed = row[5], row[6]
            result = self._result(row[7:17])
            kwargs_text, encoding, data = row[17:]
            trajectory = None
            if data is not None:
                where_text = (
                    f"{self.path}: {agent_name} seed {seed} episode {result.episode_index} of {protocol.env_id}"
                )
                trajectory = decode_trajectory(data, encoding, where_text)
            yield StoredEpisode(
                protocol,
                agent_name,
                seed,
                result,
                trajectory,
                json.loads(kwargs_text) if kwargs_text is not None else None,
            )

    def leaderboard(self, env_id: str | None = None, *, by_seed: bool = False) -> list[LeaderboardRow]:
        """One row per (protocol, agent) — per (protocol, agent, seed) with ``by_seed`` — best success rate
        first within each protocol. A row lists the seeds it pools."""
        group = "protocol_key, agent" + (", seed" if by_seed else "")
        query = (
            f"SELECT {', '.join(_PROTOCOL_FIELDS)}, agent, COUNT(*), SUM(won), AVG(score), AVG(turns), "
            "GROUP_CONCAT(DISTINCT seed) FROM episodes" + (" WHERE env_id=?" if env_id else "") + f" GROUP BY {group}"
        )
        rows = []
        for env, engine, manifest, split, max_turns, agent, n, wins, score, turns, seeds in self._db.execute(
            query, (env_id,) if env_id else ()
        ):
            protocol = Protocol(env, engine, manifest, split, max_turns)
            seed_list = tuple(sorted(int(s) for s in str(seeds).split(",")))
            rows.append(LeaderboardRow(protocol, agent, n, wins / n, wilson_interval(wins, n), score, turns, seed_list))
        rows.sort(
            key=lambda r: (r.protocol.env_id, r.protocol.split, r.protocol.key, -r.success_rate, r.agent, r.seeds)
        )
        return rows


def seeds_text(seeds: Iterable[int]) -> str:
    """``0`` / ``0,1,2`` / ``0-9`` (a run of consecutive seeds is shortened)."""
    seeds = sorted(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


def protocol_title(p: Protocol) -> str:
    return (
        f"{p.env_id}  split={p.split}  max_turns={p.max_turns}  engine={p.engine_version}  "
        f"manifest={p.manifest_hash[:12]}  protocol={p.key}"
    )


def format_leaderboard(rows: Iterable[LeaderboardRow]) -> str:
    """A plain-text table per protocol: rows are only compared within one protocol key. The agent column is
    as wide as the longest name (names are never cut: they are what a reader types to reproduce a row)."""
    rows = list(rows)
    if not rows:
        return "No results yet: run `agentgym eval` first."
    width = max(16, *(len(row.agent) for row in rows))
    seed_width = max(5, *(len(seeds_text(row.seeds)) for row in rows))
    header = (
        f"{'agent':<{width}} {'seeds':>{seed_width}} {'success':>8} {'95% CI':>15} {'score':>7} "
        f"{'turns':>7} {'episodes':>9}"
    )
    out: list[str] = []
    current = None
    for row in rows:
        if row.protocol != current:
            current = row.protocol
            out += ["", protocol_title(row.protocol), header, "-" * len(header)]
        low, high = row.success_ci
        out.append(
            f"{row.agent:<{width}} {seeds_text(row.seeds):>{seed_width}} {row.success_rate:>8.1%} "
            f"{f'[{low:.1%}, {high:.1%}]':>15} {row.mean_score:>7.3f} {row.mean_turns:>7.1f} {row.episodes:>9d}"
        )
    return "\n".join(out).lstrip("\n")
