"""Broadcasting per-turn advantages to tokens, with a loss mask that excludes observation tokens (spec §1.2).

Two layouts:

* **rows** (verl-agent style, :func:`turn_rows`): one row per turn, the prompt the agent saw (loss mask 0)
  then its response tokens (mask 1), taken from the token ids recorded at generation time;
* **concatenated** (IGPO style, :func:`concatenated_layout`): the whole conversation as one sequence rendered
  with the chat template; only the action tokens of each turn have mask 1, every observation, prompt and
  template token has mask 0.

Each layout gives per-token ``turn_index`` (-1 outside any turn) and ``loss_mask``;
:func:`broadcast_to_tokens` turns per-turn advantages into per-token ones: turn t's advantage on its
trainable tokens, 0 elsewhere.

Example:
    >>> broadcast_to_tokens([2.0, -1.0], turn_index=[-1, 0, 0, 1, 1], loss_mask=[0, 1, 1, 0, 1]).tolist()
    [0.0, 2.0, 2.0, -0.0, -1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from agentgym.error import InvalidArgumentError


def broadcast_to_tokens(
    turn_advantages: Sequence[float], turn_index: Sequence[int], loss_mask: Sequence[int]
) -> np.ndarray:
    """``out[i] = turn_advantages[turn_index[i]] * loss_mask[i]`` (0 where ``turn_index[i] < 0``)."""
    adv = np.asarray(turn_advantages, dtype=np.float64)
    index = np.asarray(turn_index, dtype=np.int64)
    mask = np.asarray(loss_mask, dtype=np.float64)
    if index.shape != mask.shape:
        raise InvalidArgumentError(f"turn_index {index.shape} and loss_mask {mask.shape} differ in shape")
    if index.size and index.max() >= len(adv):
        raise InvalidArgumentError(f"turn index {int(index.max())} but only {len(adv)} turn advantages")
    out = np.where(index >= 0, adv[np.clip(index, 0, None)] if adv.size else 0.0, 0.0)
    return out * mask


def mean_per_turn(
    token_values: Sequence[float], turn_index: Sequence[int], loss_mask: Sequence[int], num_turns: int
) -> np.ndarray:
    """The mean of a per-token quantity over each turn's trainable tokens (EMPG's step entropy from token
    entropies); 0 for a turn with none."""
    values = np.asarray(token_values, dtype=np.float64)
    index = np.asarray(turn_index, dtype=np.int64)
    keep = (np.asarray(loss_mask) > 0) & (index >= 0)
    sums = np.bincount(index[keep], weights=values[keep], minlength=num_turns)[:num_turns]
    counts = np.bincount(index[keep], minlength=num_turns)[:num_turns]
    return np.divide(sums, counts, out=np.zeros(num_turns), where=counts > 0)


def turn_rows(trajectory: Any) -> list[tuple[list[int], list[int]]]:
    """``[(token ids, loss mask)]`` per turn from the recorded prompt and response ids (response: mask 1)."""
    rows = []
    for k, turn in enumerate(trajectory.turns):
        if turn.prompt_token_ids is None or turn.response_token_ids is None:
            raise InvalidArgumentError(f"turn {k} of {trajectory.episode_id!r} has no recorded token ids")
        prompt, response = list(turn.prompt_token_ids), list(turn.response_token_ids)
        rows.append((prompt + response, [0] * len(prompt) + [1] * len(response)))
    return rows


def turn_row_advantages(trajectory: Any, turn_advantages: Sequence[float]) -> list[np.ndarray]:
    """Per-token advantages of each turn row of :func:`turn_rows`."""
    return [
        broadcast_to_tokens(turn_advantages, [k] * len(mask), mask) for k, (_, mask) in enumerate(turn_rows(trajectory))
    ]


def concatenated_layout(trajectory: Any, tokenizer: Any, *, system: str | None = None) -> dict[str, list[int]]:
    """``{"input_ids", "turn_index", "loss_mask"}`` of the conversation rendered with the chat template."""
    from agentgym.wrappers.lm import chat_tokens

    chat = chat_tokens(trajectory, tokenizer, system=system)
    ids = chat.ids[: chat.context_ends[-1]]
    turn_index, loss_mask = [-1] * len(ids), [0] * len(ids)
    for k, (start, end) in enumerate(chat.action_spans):
        for i in range(start, end):
            turn_index[i], loss_mask[i] = k, 1
    return {"input_ids": ids, "turn_index": turn_index, "loss_mask": loss_mask}
