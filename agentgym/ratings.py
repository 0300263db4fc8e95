"""Ratings for competitive multi-agent play: pairwise game results in SQLite, Elo ratings computed from them.

Every game between two agents is stored as one row of the ``matches`` table (by default in the same database
file as ``agentgym eval``'s results): env id, split, task manifest hash, task, seed, the two agents, their seats
and rewards. A game's result is decided by the rewards: the agent with the higher reward wins (1), equal
rewards are a draw (0.5 each) — in Negotiation a walk-away or no deal is a draw at 0.

Ratings are **Elo** ratings, recomputed from the stored games every time they are shown, so nothing derived is
stored: each agent starts at 1500; for a game between A and B, A's expected score is
``E_A = 1 / (1 + 10 ** ((R_B - R_A) / 400))`` and both ratings move by ``K * (S_A - E_A)`` (``K = 16``), in the
order the games were stored. Ratings are only comparable within one table (env id, split, manifest).

Games are played and stored by :func:`agentgym.matches.play_games` (a round robin, every game
on both seat assignments so the opener's edge cancels out); :func:`format_ratings` prints the table that
``agentgym leaderboard --competitive`` shows. This module imports no env family.

Example:
    >>> with RatingStore(":memory:") as store:
    ...     store.add([Match("agentgym/Negotiation-v0", "test", "ab" * 32, "pool/1", 0, "a", "b", "player_0",
    ...                      "player_1", 6.0, 4.0)])
    ...     [(row.agent, round(row.rating)) for row in store.ratings()]
    [('a', 1508), ('b', 1492)]
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable

from agentgym.store import DEFAULT_DB, ResultStore

INITIAL_RATING = 1500.0
K_FACTOR = 16.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS matches (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    env_id        TEXT    NOT NULL,
    split         TEXT    NOT NULL,
    manifest_hash TEXT    NOT NULL,
    task_id       TEXT    NOT NULL,
    seed          INTEGER,
    agent_a       TEXT    NOT NULL,
    agent_b       TEXT    NOT NULL,
    seat_a        TEXT    NOT NULL,
    seat_b        TEXT    NOT NULL,
    reward_a      REAL    NOT NULL,
    reward_b      REAL    NOT NULL,
    played_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
"""


@dataclasses.dataclass(frozen=True)
class Match:
    """One stored game between agents ``a`` and ``b``."""

    env_id: str
    split: str
    manifest_hash: str
    task_id: str
    seed: int | None
    agent_a: str
    agent_b: str
    seat_a: str
    seat_b: str
    reward_a: float
    reward_b: float

    @property
    def score_a(self) -> float:
        """A's result: 1 win, 0.5 draw, 0 loss."""
        return 1.0 if self.reward_a > self.reward_b else 0.5 if self.reward_a == self.reward_b else 0.0


@dataclasses.dataclass(frozen=True)
class RatingRow:
    env_id: str
    split: str
    manifest_hash: str
    agent: str
    rating: float
    games: int
    wins: int
    draws: int
    losses: int
    mean_reward: float


def elo(matches: Iterable[Match], k: float = K_FACTOR, initial: float = INITIAL_RATING) -> dict[str, float]:
    """Elo ratings after playing ``matches`` in order (see the module docstring)."""
    ratings: dict[str, float] = {}
    for m in matches:
        ra, rb = ratings.setdefault(m.agent_a, initial), ratings.setdefault(m.agent_b, initial)
        expected_a = 1.0 / (1.0 + 10.0 ** ((rb - ra) / 400.0))
        delta = k * (m.score_a - expected_a)
        ratings[m.agent_a], ratings[m.agent_b] = ra + delta, rb - delta
    return ratings


class RatingStore(ResultStore):
    """A results database (:class:`~agentgym.store.ResultStore`) with its ``matches`` table (created on first use)."""

    def __init__(self, path: str | os.PathLike = DEFAULT_DB):
        super().__init__(path)
        self._db.executescript(SCHEMA)

    def __enter__(self) -> RatingStore:
        return self

    def add(self, matches: Iterable[Match]) -> None:
        fields = [f.name for f in dataclasses.fields(Match)]
        with self._db:
            self._db.executemany(
                f"INSERT INTO matches ({', '.join(fields)}) VALUES ({', '.join('?' * len(fields))})",
                [dataclasses.astuple(m) for m in matches],
            )

    def matches(self, env_id: str | None = None) -> list[Match]:
        fields = [f.name for f in dataclasses.fields(Match)]
        query = f"SELECT {', '.join(fields)} FROM matches" + (" WHERE env_id=?" if env_id else "") + " ORDER BY id"
        return [Match(*row) for row in self._db.execute(query, (env_id,) if env_id else ())]

    def ratings(self, env_id: str | None = None, k: float = K_FACTOR) -> list[RatingRow]:
        """One row per agent and table (env id, split, manifest), best rating first."""
        tables: dict[tuple[str, str, str], list[Match]] = {}
        for m in self.matches(env_id):
            tables.setdefault((m.env_id, m.split, m.manifest_hash), []).append(m)
        rows = []
        for (env, split, manifest), matches in sorted(tables.items()):
            ratings = elo(matches, k=k)
            for agent, rating in ratings.items():
                results = [m.score_a for m in matches if m.agent_a == agent]
                results += [1.0 - m.score_a for m in matches if m.agent_b == agent]
                rewards = [m.reward_a for m in matches if m.agent_a == agent]
                rewards += [m.reward_b for m in matches if m.agent_b == agent]
                rows.append(
                    RatingRow(
                        env,
                        split,
                        manifest,
                        agent,
                        rating,
                        len(results),
                        results.count(1.0),
                        results.count(0.5),
                        results.count(0.0),
                        sum(rewards) / len(rewards),
                    )
                )
        rows.sort(key=lambda r: (r.env_id, r.split, r.manifest_hash, -r.rating, r.agent))
        return rows


def format_ratings(rows: Iterable[RatingRow]) -> str:
    """A plain-text table per (env id, split, manifest)."""
    out: list[str] = []
    current = None
    header = f"{'agent':<22} {'elo':>7} {'games':>6} {'wins':>5} {'draws':>6} {'losses':>7} {'reward':>7}"
    for row in rows:
        if (row.env_id, row.split, row.manifest_hash) != current:
            current = (row.env_id, row.split, row.manifest_hash)
            out += [
                "",
                f"{row.env_id}  split={row.split}  manifest={row.manifest_hash[:12]}  (Elo, K={K_FACTOR:g})",
                header,
                "-" * len(header),
            ]
        out.append(
            f"{row.agent:<22} {row.rating:>7.1f} {row.games:>6d} {row.wins:>5d} {row.draws:>6d} "
            f"{row.losses:>7d} {row.mean_reward:>7.2f}"
        )
    return (
        "\n".join(out).lstrip("\n") if out else "No competitive games yet: play some with `python -m agentgym.matches`."
    )
