"""Group-baseline advantage estimators: each trajectory's return is compared with the other rollouts of its
group (GRPO, RLOO, turn-level RLOO, GDPO's per-component version, VSPO's clipped GRPO). Conventions:
:mod:`agentgym.baselines.estimators`.

Example:
    >>> [a.round(3).tolist() for a in grpo_advantages([1.0, 0.0], ["g", "g"], num_turns=[2, 1])]
    [[0.707, 0.707], [-0.707]]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Literal

import numpy as np

from agentgym.baselines.estimators_common import (
    Ragged,
    StdKind,
    discounted_returns,
    normalize,
    pool_members,
    split_rows,
    turn_lengths,
)
from agentgym.error import InvalidArgumentError
from agentgym.wrappers.hooks import check_choice as _check


# --------------------------------------------------------------------------- GRPO, RLOO, TRLOO
def grpo_advantages(
    outcomes: Sequence[float],
    groups: Sequence[Hashable],
    *,
    num_turns: Sequence[int] | None = None,
    std: StdKind = "unbiased",
    pooling: Literal["trajectory", "step"] = "trajectory",
    eps: float = 1e-6,
) -> list[np.ndarray]:
    """GRPO (§2): ``(R_i - mean) / (std + eps)`` in each group, the same value on every turn.

    ``std``: ``"unbiased"`` (verl), ``"population"``, or ``"none"`` (Dr. GRPO). ``pooling="trajectory"``:
    one value per trajectory in the pool; ``"step"`` (verl-agent ``compute_mean_std_cross_steps``): one per
    turn, so longer trajectories weigh more. A one-element pool gives the raw return.
    """
    _check("std", std, ("unbiased", "population", "none"))
    _check("pooling", pooling, ("trajectory", "step"))
    lengths = turn_lengths(num_turns, len(outcomes))
    if pooling == "trajectory":
        per_traj = normalize(np.asarray(outcomes, float), groups, std=std, eps=eps)
        return [np.full(n, a) for a, n in zip(per_traj, lengths)]
    rows = np.repeat(np.asarray(outcomes, float), lengths)
    keys = [g for g, n in zip(groups, lengths) for _ in range(n)]
    return split_rows(normalize(rows, keys, std=std, eps=eps), lengths)


def rloo_advantages(
    outcomes: Sequence[float], groups: Sequence[Hashable], *, num_turns: Sequence[int] | None = None
) -> list[np.ndarray]:
    """RLOO (§3): ``R_i - mean of the other returns of the group``; alone in its group: ``R_i``."""
    outcomes = np.asarray(outcomes, dtype=np.float64)
    out = outcomes.copy()
    for members in pool_members(groups).values():
        if len(members) > 1:
            x = outcomes[members]
            out[members] = x - (x.sum() - x) / (len(x) - 1)
    return [np.full(n, a) for a, n in zip(out, turn_lengths(num_turns, len(outcomes)))]


def trloo_advantages(
    turn_rewards: Ragged,
    groups: Sequence[Hashable],
    *,
    gamma: float = 1.0,
    loss_mask: Ragged | None = None,
) -> list[np.ndarray]:
    """Turn-level RLOO (Dr. Kernel, §4.2): leave-one-out baselines over the rollouts that reached turn t.

    ``G_{i,t}`` are discounted returns; the pool of (i, t) holds the same group's rows at turn t whose
    ``loss_mask`` is 1 (default: every existing turn). ``A = G - mean of the others``; alone: ``A = G``.
    """
    returns = [discounted_returns(r, gamma) for r in turn_rewards]
    masks = loss_mask if loss_mask is not None else [[1] * len(r) for r in turn_rewards]
    out = [g.copy() for g in returns]
    pools: dict[tuple[Hashable, int], list[tuple[int, int]]] = defaultdict(list)
    for i, (group, mask) in enumerate(zip(groups, masks)):
        for t, m in enumerate(mask):
            if m:
                pools[(group, t)].append((i, t))
    for members in pools.values():
        if len(members) > 1:
            x = np.array([returns[i][t] for i, t in members])
            for (i, t), value in zip(members, x - (x.sum() - x) / (len(x) - 1)):
                out[i][t] = value
    return out


# --------------------------------------------------------------------------- GDPO
def gdpo_advantages(
    rewards: Sequence[Sequence[float]],
    groups: Sequence[Hashable],
    *,
    weights: Sequence[float] | None = None,
    num_turns: Sequence[int] | None = None,
    eps: float = 1e-4,
) -> list[np.ndarray]:
    """GDPO (§6): normalise each reward component within its group, sum with ``weights``, then normalise
    the sum over the batch. ``rewards[i]`` holds trajectory i's K components (NaN counts as 0)."""
    r = np.nan_to_num(np.asarray(rewards, dtype=np.float64))
    if r.ndim != 2:
        raise InvalidArgumentError(f"rewards must be (trajectories, components), got shape {r.shape}")
    w = np.ones(r.shape[1]) if weights is None else np.asarray(weights, dtype=np.float64)
    pre = sum(w[k] * normalize(r[:, k], groups, eps=eps, single="zero") for k in range(r.shape[1]))
    pre = np.asarray(pre, dtype=np.float64)
    batch = (pre - pre.mean()) / (pre.std(ddof=1) + eps) if len(pre) > 1 else pre
    return [np.full(n, a) for a, n in zip(batch, turn_lengths(num_turns, len(pre)))]


# --------------------------------------------------------------------------- VSPO (PRS paper, §10)
def vspo_task_value(pass_rate: float | np.ndarray, *, difficulty_weight: float = 1.0) -> float | np.ndarray:
    """VSPO's task value (§10; the abstract says only "balances difficulty and uncertainty"; the formula
    is our reading): ``p (1 - p) (1 + d (1 - p))``, the Bernoulli variance of the pass rate ``p``
    (uncertainty: a group of such a task is likely to have reward spread) times a difficulty factor that
    favours the harder of two equally uncertain tasks (``d = difficulty_weight``; 0: variance only).
    0 for a mastered (p = 1) or hopeless (p = 0) task."""
    p = np.clip(np.asarray(pass_rate, dtype=np.float64), 0.0, 1.0)
    value = p * (1.0 - p) * (1.0 + difficulty_weight * (1.0 - p))
    return float(value) if value.ndim == 0 else value


def vspo_advantages(
    outcomes: Sequence[float],
    groups: Sequence[Hashable],
    *,
    num_turns: Sequence[int] | None = None,
    clip: float | None = 3.0,
    rms: float | None = None,
    std: StdKind = "unbiased",
    eps: float = 1e-6,
) -> list[np.ndarray]:
    """VSPO's advantages (§10): GRPO advantages with value-smoothing clipping, ``clip(A, -c rms, c rms)``.

    From the abstract: VSPO is a GRPO variant with "value-smoothing clipping" to stabilise updates. Our
    reading: each advantage is clipped to ``clip`` times ``rms``, a running root-mean-square of past
    advantages (kept by ``agentgym.baselines.advantages.VSPOState``), so a rare outlier (one success in a
    large group, a reward far off the usual scale) cannot dominate one update. ``clip=None`` or
    ``rms=None`` (no history yet): plain GRPO. With ``std="unbiased"`` a group's advantages already have
    RMS ``sqrt((n-1)/n)``, so the bound binds only for outliers; it matters most with ``std="none"``.
    """
    out = grpo_advantages(outcomes, groups, num_turns=num_turns, std=std, eps=eps)
    if clip is None or rms is None:
        return out
    if clip <= 0 or rms < 0:
        raise InvalidArgumentError(f"vspo needs clip > 0 and rms >= 0, got clip={clip!r}, rms={rms!r}")
    return [np.clip(a, -clip * rms, clip * rms) for a in out]
