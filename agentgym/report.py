"""Leaderboard reports: breakdowns per task type, paired comparisons, and the table formats.

* :func:`task_type_breakdown`: per (protocol, agent) and task type (:mod:`agentgym.tasktypes`), the success
  rate with its 95% Wilson interval.
* :func:`paired_comparison`: two agents on the *same* episodes (same protocol, base seed and episode index,
  hence the same task and reset seed): the mean difference (success or score) with a seeded percentile
  bootstrap interval over episode pairs. Pairing removes the task-difficulty variance an unpaired
  comparison of two success rates keeps.
* :func:`render`: the leaderboard as ``text`` (:func:`agentgym.store.format_leaderboard`), ``markdown``,
  ``csv``, ``latex`` or ``json`` (json also carries the task-type breakdown).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterable, Sequence

import numpy as np

from agentgym.error import InvalidArgumentError
from agentgym.store import (
    LeaderboardRow,
    Protocol,
    StoredEpisode,
    format_leaderboard,
    protocol_title,
    seeds_text,
    wilson_interval,
)

FORMATS = ("text", "markdown", "csv", "latex", "json")


@dataclasses.dataclass(frozen=True)
class TypeRow:
    """One agent's results on one task type under one protocol."""

    protocol: Protocol
    agent: str
    task_type: str
    episodes: int
    wins: int
    success_ci: tuple[float, float]
    mean_score: float

    @property
    def success_rate(self) -> float:
        return self.wins / self.episodes


def task_type_breakdown(episodes: Iterable[StoredEpisode]) -> list[TypeRow]:
    """Per (protocol, agent, task type): episodes, wins, Wilson interval and mean score (seeds pooled)."""
    groups: dict[tuple[Protocol, str, str], list[StoredEpisode]] = {}
    for stored in episodes:
        groups.setdefault((stored.protocol, stored.agent, stored.result.task_type or "-"), []).append(stored)
    rows = []
    for (protocol, agent, task_type), items in groups.items():
        wins = sum(e.result.won for e in items)
        rows.append(
            TypeRow(
                protocol,
                agent,
                task_type,
                len(items),
                wins,
                wilson_interval(wins, len(items)),
                float(np.mean([e.result.score for e in items])),
            )
        )
    rows.sort(key=lambda r: (r.protocol.env_id, r.protocol.key, r.agent, r.task_type))
    return rows


@dataclasses.dataclass(frozen=True)
class Comparison:
    """``agent_a`` minus ``agent_b`` on ``pairs`` shared episodes of one protocol."""

    protocol: Protocol
    agent_a: str
    agent_b: str
    metric: str
    pairs: int
    difference: float
    ci: tuple[float, float]
    resamples: int
    seed: int

    def line(self) -> str:
        low, high = self.ci
        return (
            f"{self.agent_a} - {self.agent_b} ({self.metric}) on {self.pairs} paired episodes: "
            f"{self.difference:+.3f}  95% bootstrap CI [{low:+.3f}, {high:+.3f}]"
        )


def paired_comparison(
    episodes: Iterable[StoredEpisode],
    agent_a: str,
    agent_b: str,
    *,
    metric: str = "success",
    resamples: int = 10_000,
    seed: int = 0,
) -> list[Comparison]:
    """One :class:`Comparison` per protocol where both agents played shared episodes (see the module docstring).

    Episodes pair by (base seed, episode index); a pair whose task ids differ is not a pair (never happens
    under one protocol). ``metric``: ``success`` (won as 0/1) or ``score``."""
    if metric not in ("success", "score"):
        raise InvalidArgumentError(f"unknown comparison metric {metric!r}; expected 'success' or 'score'")
    by_protocol: dict[Protocol, dict[str, dict[tuple[int, int], StoredEpisode]]] = {}
    for stored in episodes:
        if stored.agent in (agent_a, agent_b):
            key = (stored.seed, stored.result.episode_index)
            by_protocol.setdefault(stored.protocol, {}).setdefault(stored.agent, {})[key] = stored
    out = []
    for protocol, agents in by_protocol.items():
        a, b = agents.get(agent_a, {}), agents.get(agent_b, {})
        shared = sorted(k for k in a.keys() & b.keys() if a[k].result.task_id == b[k].result.task_id)
        if not shared:
            continue

        def value(stored: StoredEpisode) -> float:
            return float(stored.result.won) if metric == "success" else float(stored.result.score)

        diffs = np.array([value(a[k]) - value(b[k]) for k in shared])
        rng = np.random.default_rng(seed)
        means = diffs[rng.integers(0, len(diffs), size=(resamples, len(diffs)))].mean(axis=1)
        low, high = np.percentile(means, [2.5, 97.5])
        out.append(
            Comparison(
                protocol,
                agent_a,
                agent_b,
                metric,
                len(shared),
                float(diffs.mean()),
                (float(low), float(high)),
                resamples,
                seed,
            )
        )
    out.sort(key=lambda c: (c.protocol.env_id, c.protocol.key))
    return out


# ----------------------------------------------------------------------------- formats
COLUMNS = (
    "env_id",
    "split",
    "max_turns",
    "protocol",
    "agent",
    "seeds",
    "episodes",
    "success",
    "ci_low",
    "ci_high",
    "mean_score",
    "mean_turns",
)


def records(rows: Iterable[LeaderboardRow]) -> list[dict]:
    return [
        {
            "env_id": r.protocol.env_id,
            "split": r.protocol.split,
            "max_turns": r.protocol.max_turns,
            "protocol": r.protocol.key,
            "engine_version": r.protocol.engine_version,
            "manifest_hash": r.protocol.manifest_hash,
            "agent": r.agent,
            "seeds": list(r.seeds),
            "episodes": r.episodes,
            "success": r.success_rate,
            "ci_low": r.success_ci[0],
            "ci_high": r.success_ci[1],
            "mean_score": r.mean_score,
            "mean_turns": r.mean_turns,
        }
        for r in rows
    ]


def _by_protocol(rows: Sequence[LeaderboardRow]) -> list[tuple[Protocol, list[LeaderboardRow]]]:
    groups: dict[Protocol, list[LeaderboardRow]] = {}
    for row in rows:
        groups.setdefault(row.protocol, []).append(row)
    return list(groups.items())


def _markdown(rows: Sequence[LeaderboardRow]) -> str:
    out = []
    for protocol, group in _by_protocol(rows):
        out += [
            f"### {protocol.env_id} ({protocol.split}, max_turns={protocol.max_turns})",
            "",
            f"engine `{protocol.engine_version}`, manifest `{protocol.manifest_hash[:12]}`, protocol `{protocol.key}`",
            "",
            "| agent | seeds | success | 95% CI | score | turns | episodes |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for r in group:
            agent = r.agent.replace("|", "\\|")
            out.append(
                f"| `{agent}` | {seeds_text(r.seeds)} | {r.success_rate:.1%} | "
                f"[{r.success_ci[0]:.1%}, {r.success_ci[1]:.1%}] | {r.mean_score:.3f} | {r.mean_turns:.1f} | "
                f"{r.episodes} |"
            )
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _latex_escape(text: str) -> str:
    for char, escaped in (
        ("\\", r"\textbackslash{}"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("$", r"\$"),
        ("#", r"\#"),
        ("_", r"\_"),
        ("{", r"\{"),
        ("}", r"\}"),
        ("~", r"\textasciitilde{}"),
        ("^", r"\textasciicircum{}"),
    ):
        text = text.replace(char, escaped)
    return text


def _latex(rows: Sequence[LeaderboardRow]) -> str:
    out = []
    for protocol, group in _by_protocol(rows):
        caption = _latex_escape(
            f"{protocol.env_id}, {protocol.split} split, max_turns={protocol.max_turns} (protocol {protocol.key})"
        )
        out += [
            r"\begin{table}[t]",
            r"\centering",
            r"\begin{tabular}{llrrrr}",
            r"\toprule",
            r"Agent & Seeds & Success (\%) & 95\% CI & Score & Episodes \\",
            r"\midrule",
        ]
        for r in group:
            out.append(
                f"\\texttt{{{_latex_escape(r.agent)}}} & {seeds_text(r.seeds)} & {100 * r.success_rate:.1f} & "
                f"[{100 * r.success_ci[0]:.1f}, {100 * r.success_ci[1]:.1f}] & {r.mean_score:.3f} & "
                f"{r.episodes} \\\\"
            )
        out += [r"\bottomrule", r"\end{tabular}", f"\\caption{{{caption}}}", r"\end{table}", ""]
    return "\n".join(out)


def _csv(rows: Sequence[LeaderboardRow]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for record in records(rows):
        writer.writerow({**record, "seeds": " ".join(map(str, record["seeds"]))})
    return buffer.getvalue()


def render(rows: Sequence[LeaderboardRow], fmt: str = "text", breakdown: Sequence[TypeRow] = ()) -> str:
    """The leaderboard in one of :data:`FORMATS` (rows are compared only within a protocol key)."""
    if fmt not in FORMATS:
        raise InvalidArgumentError(f"unknown leaderboard format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "text":
        return format_leaderboard(rows)
    if fmt == "markdown":
        return _markdown(rows)
    if fmt == "latex":
        return _latex(rows)
    if fmt == "csv":
        return _csv(rows)
    types = [
        {
            "protocol": t.protocol.key,
            "env_id": t.protocol.env_id,
            "agent": t.agent,
            "task_type": t.task_type,
            "episodes": t.episodes,
            "success": t.success_rate,
            "ci_low": t.success_ci[0],
            "ci_high": t.success_ci[1],
            "mean_score": t.mean_score,
        }
        for t in breakdown
    ]
    return json.dumps({"rows": records(rows), "task_types": types}, indent=1)


def format_breakdown(breakdown: Sequence[TypeRow]) -> str:
    """Plain-text per-task-type tables, one per protocol."""
    out: list[str] = []
    current = None
    width = max([9, *(len(t.task_type) for t in breakdown)])
    agent_width = max([5, *(len(t.agent) for t in breakdown)])
    for t in breakdown:
        if t.protocol != current:
            current = t.protocol
            out += [
                "",
                protocol_title(t.protocol),
                f"{'agent':<{agent_width}} {'task type':<{width}} {'success':>8} {'95% CI':>15} {'episodes':>9}",
            ]
        low, high = t.success_ci
        out.append(
            f"{t.agent:<{agent_width}} {t.task_type:<{width}} {t.success_rate:>8.1%} "
            f"{f'[{low:.1%}, {high:.1%}]':>15} {t.episodes:>9d}"
        )
    return "\n".join(out).lstrip("\n")


def check_env_filter(env_id: str | None, stored_ids: Sequence[str], db: object) -> None:
    """Refuse an ``--env`` that has no results in the database: an unknown id names the closest registered and
    stored ids, a known one without rows names the ids that have results."""
    if env_id is None or env_id in stored_ids:
        return
    from agentgym.registration import check_env_id, registered_ids

    stored = f"results in {db} are for: {', '.join(stored_ids)}" if stored_ids else f"{db} has no results yet"
    if env_id not in registered_ids():
        try:
            check_env_id(env_id)
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"{exc} ({stored})") from None
    raise InvalidArgumentError(f"no results for {env_id!r} in {db}; {stored}")
