"""What every advantage estimator of :mod:`agentgym.baselines.estimators` shares: pooling values by a key
(a group, a (group, anchor state), a (group, tag)), each pool's mean and scale under the estimators'
conventions (the table in :mod:`agentgym.baselines.estimators`), discounted returns, and splitting a flat
array of turn values back into one array per trajectory.

Example:
    >>> normalize([1.0, 0.0, 5.0], ["a", "a", "b"]).round(3).tolist()
    [0.707, -0.707, 5.0]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Literal

import numpy as np

from agentgym.error import InvalidArgumentError

#: One sequence of per-turn values per trajectory (trajectories may differ in length).
Ragged = Sequence[Sequence[float]]
StdKind = Literal["unbiased", "population", "none"]


def pool_members(keys: Sequence[Hashable]) -> dict[Hashable, list[int]]:
    """The indices of each key's elements, keys in order of first appearance."""
    pools: dict[Hashable, list[int]] = defaultdict(list)
    for index, key in enumerate(keys):
        pools[key].append(index)
    return pools


def pool_stats(
    values: np.ndarray, keys: Sequence[Hashable], *, std: StdKind, eps: float, single: Literal["raw", "zero"]
) -> tuple[np.ndarray, np.ndarray]:
    """Per element, the (mean, scale) of its pool: ``scale`` is std + eps (population std is
    ``sqrt(var + 1e-8)``), or 1 for ``std="none"``. A one-element pool gets mean 0 and scale 1 with
    ``single="raw"`` (the value passes through) or mean = the value with ``single="zero"``."""
    values = np.asarray(values, dtype=np.float64)
    mean, scale = np.zeros_like(values), np.ones_like(values)
    for members in pool_members(keys).values():
        x = values[members]
        if len(x) == 1:
            mean[members] = 0.0 if single == "raw" else x
            continue
        mu = x.mean()
        mean[members] = mu
        if std == "unbiased":
            scale[members] = x.std(ddof=1) + eps
        elif std == "population":
            scale[members] = np.sqrt(((x - mu) ** 2).mean() + 1e-8) + eps
    return mean, scale


def normalize(
    values: np.ndarray,
    keys: Sequence[Hashable],
    *,
    std: StdKind = "unbiased",
    eps: float = 1e-6,
    single: Literal["raw", "zero"] = "raw",
) -> np.ndarray:
    """``(x - mean_pool) / (std_pool + eps)`` over the pools given by ``keys`` (see :func:`pool_stats`)."""
    values = np.asarray(values, dtype=np.float64)
    mean, scale = pool_stats(values, keys, std=std, eps=eps, single=single)
    return (values - mean) / scale


def split_rows(flat: np.ndarray, lengths: Sequence[int]) -> list[np.ndarray]:
    """A flat array of turn values cut into one copy per trajectory of ``lengths[i]`` turns."""
    return (
        [part.copy() for part in np.split(np.asarray(flat, dtype=np.float64), np.cumsum(lengths)[:-1])]
        if lengths
        else []
    )


def discounted_returns(rewards: Sequence[float], gamma: float) -> np.ndarray:
    """``G_t = r_t + gamma * G_{t+1}`` within one trajectory."""
    out = np.zeros(len(rewards))
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = float(rewards[t]) + gamma * running
        out[t] = running
    return out


def turn_lengths(num_turns: Sequence[int] | None, n: int) -> list[int]:
    """Turns per trajectory for an outcome estimator's per-turn output (None: one turn each), checked."""
    if num_turns is None:
        return [1] * n
    if len(num_turns) != n:
        raise InvalidArgumentError(f"num_turns has {len(num_turns)} entries for {n} trajectories")
    return [int(k) for k in num_turns]


def zero_variance_fraction(values: Sequence[float], groups: Sequence[Hashable]) -> float:
    """The share of groups (of two or more) whose values are all equal — they carry no GRPO signal."""
    pools = [m for m in pool_members(groups).values() if len(m) > 1]
    if not pools:
        return 0.0
    values = np.asarray(values, dtype=np.float64)
    return sum(np.ptp(values[m]) == 0 for m in pools) / len(pools)
