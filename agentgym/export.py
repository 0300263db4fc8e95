"""``agentgym export``: the stored trajectories of a results database, for offline training and analysis.

Formats (one record per line / row):

* ``jsonl``: one :class:`~agentgym.trajectory.Trajectory` per line, exactly as
  :func:`agentgym.trajectory.save_jsonl` writes it (read back with ``load_jsonl``; reward hooks'
  ``annotate(load_jsonl("episodes.jsonl"), hooks)`` takes it as is).
* ``messages``: one chat example per *turn*, ready for TRL's ``SFTTrainer`` (a ``messages`` list of
  ``{"role", "content"}`` whose last message is the agent's reply), with the episode's key, the turn's
  reward and the episode's outcome beside it. The prompt is the one the agent recorded
  (``agent_info["messages"]``) when it did; otherwise :func:`default_messages` rebuilds the LLM agent's
  documented default prompt: the system line with the goal, then every earlier (observation, reply)
  pair, then the turn's observation.
* ``parquet``: one row per turn (episode key, result, task type, observation, action, reply, reward,
  hook rewards and info as JSON text, token ids and log-probs as lists). Needs pyarrow
  (``pip install agentgym-rl[parquet]``).

Episodes evaluated before trajectories were kept have none and are skipped (the count is returned).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from agentgym.error import DependencyNotInstalled, InvalidArgumentError
from agentgym.store import ResultStore, StoredEpisode
from agentgym.trajectory import Trajectory

FORMATS = ("jsonl", "messages", "parquet")

#: The LLM agent's default system line (agentgym.baselines.llm_agent), used when a turn has no recorded prompt.
DEFAULT_SYSTEM = "You are an agent acting in a text environment."


def seen_observation(trajectory: Trajectory, turn_index: int) -> str:
    """The observation the agent answered at turn ``turn_index`` (a turn stores the one its action led to)."""
    return trajectory.turns[turn_index - 1].observation if turn_index else trajectory.initial_observation


def default_messages(trajectory: Trajectory, turn_index: int) -> list[dict[str, str]]:
    """The chat prompt of turn ``turn_index`` (without the reply): system line and goal, the earlier
    (observation, reply) pairs, then the observation the agent answered."""
    system = DEFAULT_SYSTEM
    goal = trajectory.initial_info.get("goal")
    if goal:
        system += f"\nGoal: {goal}"
    messages = [{"role": "system", "content": system}]
    for index in range(turn_index):
        messages += [
            {"role": "user", "content": seen_observation(trajectory, index)},
            {"role": "assistant", "content": trajectory.turns[index].agent_text},
        ]
    messages.append({"role": "user", "content": seen_observation(trajectory, turn_index)})
    return messages


def turn_messages(trajectory: Trajectory, turn_index: int) -> list[dict[str, str]]:
    """The turn's whole conversation: its prompt (recorded or default) and the agent's reply."""
    turn = trajectory.turns[turn_index]
    recorded = (turn.agent_info or {}).get("messages")
    prompt = [dict(m) for m in recorded] if isinstance(recorded, list) else default_messages(trajectory, turn_index)
    return [*prompt, {"role": "assistant", "content": turn.agent_text}]


def _key(stored: StoredEpisode) -> dict[str, Any]:
    r = stored.result
    return {
        "env_id": stored.protocol.env_id,
        "split": stored.protocol.split,
        "protocol_key": stored.protocol.key,
        "agent": stored.agent,
        "seed": stored.seed,
        "episode_index": r.episode_index,
        "task_id": r.task_id,
        "task_type": r.task_type,
        "episode_seed": r.episode_seed,
        "won": r.won,
        "score": r.score,
    }


def message_records(episodes: Iterable[StoredEpisode]) -> Iterator[dict[str, Any]]:
    for stored in episodes:
        for index, turn in enumerate(stored.trajectory.turns):
            yield {
                "messages": turn_messages(stored.trajectory, index),
                **_key(stored),
                "turn": index,
                "reward": turn.reward,
                "turn_rewards": turn.turn_rewards,
            }


def turn_rows(episodes: Iterable[StoredEpisode]) -> Iterator[dict[str, Any]]:
    """Flat per-turn rows (the parquet table)."""
    for stored in episodes:
        for index, turn in enumerate(stored.trajectory.turns):
            yield {
                **_key(stored),
                "turn": index,
                "observation": seen_observation(stored.trajectory, index),
                "action": turn.action,
                "next_observation": turn.observation,
                "reply": turn.reply,
                "reward": turn.reward,
                "terminated": turn.terminated,
                "truncated": turn.truncated,
                "turn_rewards": json.dumps(turn.turn_rewards),
                "info": json.dumps(turn.info, ensure_ascii=False),
                "prompt_token_ids": turn.prompt_token_ids,
                "response_token_ids": turn.response_token_ids,
                "response_logprobs": turn.response_logprobs,
            }


def export(
    db: str | os.PathLike,
    fmt: str,
    output: str | os.PathLike | None = None,
    *,
    env_id: str | None = None,
    agent: str | None = None,
    won_only: bool = False,
    stdout: TextIO | None = None,
) -> tuple[int, int]:
    """Write the stored trajectories of ``db`` in ``fmt`` to ``output`` (None: standard output; parquet needs a
    file). Returns (episodes written, episodes without a stored trajectory)."""
    if fmt not in FORMATS:
        raise InvalidArgumentError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        if output is None:
            raise InvalidArgumentError("--format parquet writes a file: give --output FILE.parquet")
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise DependencyNotInstalled(
                "--format parquet needs pyarrow: pip install 'agentgym-rl[parquet]' (or use --format jsonl)"
            ) from None
    with ResultStore(db, create=False) as store:
        episodes = [e for e in store.stored(env_id, agent) if not won_only or e.result.won]
    kept = [e for e in episodes if e.trajectory is not None]
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(list(turn_rows(kept))), output)
        return len(kept), len(episodes) - len(kept)
    handle = open(output, "w", encoding="utf-8") if output is not None else (stdout or sys.stdout)
    try:
        records: Iterable[dict[str, Any]] = (
            (e.trajectory.to_dict() for e in kept) if fmt == "jsonl" else message_records(kept)
        )
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        if output is not None:
            handle.close()
    return len(kept), len(episodes) - len(kept)
