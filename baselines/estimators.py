"""Advantage estimators for multi-turn agent RL (spec ``reward-hooks.md``), as pure numpy functions.

Every estimator takes per-trajectory data and the trajectories' group keys (``groups[i]``: the
``group_id`` of the N rollouts of one task and seed) and returns **per-turn advantages**: a list with one
float array per trajectory, one entry per turn. :mod:`agentgym.baselines.tokens` broadcasts them to tokens.
:func:`from_trajectories` pulls the usual inputs out of :class:`~agentgym.trajectory.Trajectory` objects.

Conventions (spec §1.1), pinned per estimator and tested:

=================  ==========================  ===================================================
estimator          std                         pool of one element
=================  ==========================  ===================================================
GRPO               unbiased (n-1), eps 1e-6    mean 0, std 1: the advantage is the raw return
RLOO, TRLOO        none                        no baseline: the advantage is the return
GiGPO episode      unbiased, eps 1e-6          mean 0, std 1 (as GRPO)
GiGPO step         unbiased, eps 1e-6          mean = the value: the step advantage is 0
GDPO               unbiased, eps 1e-4          the reward's advantage is 0 (no spread)
RLVMR              unbiased, eps 1e-6          mean 0, std 1: the raw value
OPRL (grpo mode)   unbiased, eps 1e-6          mean 0, std 1; (rloo mode) no baseline
IGPO               population + 1e-8 in sqrt   std 1, mean the pool mean: 0
VSPO               as GRPO, then clipped       as GRPO
=================  ==========================  ===================================================

A zero-variance pool gives advantage 0 wherever the value equals the mean (``(x - mu) / (0 + eps)``);
:func:`zero_variance_fraction` measures how often that happens.

Example:
    >>> [a.round(3).tolist() for a in rloo_advantages([1, 0, 0, 1], ["g"] * 4)]
    [[0.667], [-0.667], [-0.667], [0.667]]

Change logs:
    v0: initial version.
    v1: VSPO (:func:`vspo_task_value`, :func:`vspo_advantages`). The trainer picks estimators through the
        registry :mod:`agentgym.baselines.advantages`, which builds these functions' arguments.
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Any, Literal

import numpy as np

from agentgym.error import InvalidArgumentError
from agentgym.wrappers.hooks import check_choice as _check

Ragged = Sequence[Sequence[float]]
StdKind = Literal["unbiased", "population", "none"]


# --------------------------------------------------------------------------- helpers
def _pools(keys: Sequence[Hashable]) -> dict[Hashable, list[int]]:
    pools: dict[Hashable, list[int]] = defaultdict(list)
    for index, key in enumerate(keys):
        pools[key].append(index)
    return pools


def _pool_stats(
    values: np.ndarray, keys: Sequence[Hashable], *, std: StdKind, eps: float, single: Literal["raw", "zero"]
) -> tuple[np.ndarray, np.ndarray]:
    """Per element, the (mean, scale) of its pool: ``scale`` is std + eps (population std is
    ``sqrt(var + 1e-8)``), or 1 for ``std="none"``. A one-element pool gets mean 0 and scale 1 with
    ``single="raw"`` (the value passes through) or mean = the value with ``single="zero"``."""
    values = np.asarray(values, dtype=np.float64)
    mean, scale = np.zeros_like(values), np.ones_like(values)
    for members in _pools(keys).values():
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


def _normalize(
    values: np.ndarray,
    keys: Sequence[Hashable],
    *,
    std: StdKind = "unbiased",
    eps: float = 1e-6,
    single: Literal["raw", "zero"] = "raw",
) -> np.ndarray:
    """``(x - mean_pool) / (std_pool + eps)`` over the pools given by ``keys`` (see :func:`_pool_stats`)."""
    values = np.asarray(values, dtype=np.float64)
    mean, scale = _pool_stats(values, keys, std=std, eps=eps, single=single)
    return (values - mean) / scale


def _split(flat: np.ndarray, lengths: Sequence[int]) -> list[np.ndarray]:
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


def _lengths(num_turns: Sequence[int] | None, n: int) -> list[int]:
    if num_turns is None:
        return [1] * n
    if len(num_turns) != n:
        raise InvalidArgumentError(f"num_turns has {len(num_turns)} entries for {n} trajectories")
    return [int(k) for k in num_turns]


def zero_variance_fraction(values: Sequence[float], groups: Sequence[Hashable]) -> float:
    """The share of groups (of two or more) whose values are all equal — they carry no GRPO signal."""
    pools = [m for m in _pools(groups).values() if len(m) > 1]
    if not pools:
        return 0.0
    values = np.asarray(values, dtype=np.float64)
    return sum(np.ptp(values[m]) == 0 for m in pools) / len(pools)


# --------------------------------------------------------------------------- outcome estimators
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
    lengths = _lengths(num_turns, len(outcomes))
    if pooling == "trajectory":
        per_traj = _normalize(np.asarray(outcomes, float), groups, std=std, eps=eps)
        return [np.full(n, a) for a, n in zip(per_traj, lengths)]
    rows = np.repeat(np.asarray(outcomes, float), lengths)
    keys = [g for g, n in zip(groups, lengths) for _ in range(n)]
    return _split(_normalize(rows, keys, std=std, eps=eps), lengths)


def rloo_advantages(
    outcomes: Sequence[float], groups: Sequence[Hashable], *, num_turns: Sequence[int] | None = None
) -> list[np.ndarray]:
    """RLOO (§3): ``R_i - mean of the other returns of the group``; alone in its group: ``R_i``."""
    outcomes = np.asarray(outcomes, dtype=np.float64)
    out = outcomes.copy()
    for members in _pools(groups).values():
        if len(members) > 1:
            x = outcomes[members]
            out[members] = x - (x.sum() - x) / (len(x) - 1)
    return [np.full(n, a) for a, n in zip(out, _lengths(num_turns, len(outcomes)))]


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


# --------------------------------------------------------------------------- GiGPO
def cluster_anchors(anchors: Sequence[str], threshold: float | None = None) -> list[int]:
    """Cluster ids for anchor texts: exact match, or (``threshold``) greedy similarity clustering — each text
    joins the first cluster whose first member has ``SequenceMatcher.ratio() >= threshold``."""
    if threshold is None:
        ids: dict[str, int] = {}
        return [ids.setdefault(a, len(ids)) for a in anchors]
    representatives: list[str] = []
    out = []
    for anchor in anchors:
        for k, rep in enumerate(representatives):
            if difflib.SequenceMatcher(None, anchor, rep).ratio() >= threshold:
                out.append(k)
                break
        else:
            representatives.append(anchor)
            out.append(len(representatives) - 1)
    return out


def gigpo_advantages(
    step_rewards: Ragged,
    groups: Sequence[Hashable],
    anchors: Sequence[Sequence[str]],
    *,
    gamma: float = 0.95,
    step_weight: float = 1.0,
    norm: Literal["mean_std", "mean"] = "mean_std",
    episode_pooling: Literal["trajectory", "step"] = "trajectory",
    invalid: Sequence[Sequence[bool]] | None = None,
    invalid_penalty: float = 0.0,
    similarity: float | None = None,
    outcomes: Sequence[float] | None = None,
    eps: float = 1e-6,
) -> list[np.ndarray]:
    """GiGPO (§5): ``A = A^E(episode) + step_weight * A^S(anchor-state step group)``.

    ``anchors[i][t]`` is the raw state in which turn t's action was taken (``info["anchor_obs"]`` before the
    step; see :func:`from_trajectories`). Step returns are discounted (``gamma``); the episode return is
    ``outcomes[i]`` or the undiscounted sum of step rewards. ``norm="mean"`` divides by 1 instead of
    std + eps. ``episode_pooling="trajectory"`` (paper) pools one return per trajectory;
    ``"step"`` (verl-agent code) one per step row. ``invalid_penalty * invalid[i][t]`` is taken off that
    step's return and that row's episode score after discounting (verl-agent; 0 by default). An anchor
    group of one step gives ``A^S = 0``; an episode group of one trajectory gives ``A^E = R``.
    """
    _check("norm", norm, ("mean_std", "mean"))
    _check("episode_pooling", episode_pooling, ("trajectory", "step"))
    lengths = [len(r) for r in step_rewards]
    std: StdKind = "unbiased" if norm == "mean_std" else "none"
    flags = invalid if invalid is not None else [[False] * n for n in lengths]
    penalty = [invalid_penalty * np.asarray(f, dtype=np.float64) for f in flags]
    totals = np.asarray(
        outcomes if outcomes is not None else [sum(r) for r in step_rewards], dtype=np.float64
    )
    returns = [discounted_returns(r, gamma) - p for r, p in zip(step_rewards, penalty)]
    if episode_pooling == "trajectory":
        mean, scale = _pool_stats(totals, groups, std=std, eps=eps, single="raw")
        # the penalty comes off after normalisation: divided by a zero-variance group's eps-sized scale it
        # would be ~1e5 times too large
        episode_rows = [(r - m) / c - p for r, m, c, p in zip(totals, mean, scale, penalty)]
    else:
        rows = (
            np.concatenate([np.full(n, t) - p for t, n, p in zip(totals, lengths, penalty)])
            if lengths
            else np.zeros(0)
        )
        keys = [g for g, n in zip(groups, lengths) for _ in range(n)]
        episode_rows = _split(_normalize(rows, keys, std=std, eps=eps), lengths)
    step_keys: list[tuple[Hashable, int]] = []
    by_group = _pools(groups)
    cluster_of: dict[tuple[int, int], int] = {}
    for members in by_group.values():
        cells = [(i, t) for i in members for t in range(lengths[i])]
        for cell, cluster in zip(cells, cluster_anchors([anchors[i][t] for i, t in cells], similarity)):
            cluster_of[cell] = cluster
    for i, group in enumerate(groups):
        step_keys += [(group, cluster_of[(i, t)]) for t in range(lengths[i])]
    flat_returns = np.concatenate(returns) if returns else np.zeros(0)
    step = _split(_normalize(flat_returns, step_keys, std=std, eps=eps, single="zero"), lengths)
    return [e + step_weight * s for e, s in zip(episode_rows, step)]


# --------------------------------------------------------------------------- EMPG, GDPO
def empg_advantages(
    advantages: Ragged,
    step_entropies: Ragged,
    *,
    k: float = 1.0,
    k_future: float = 1.0,
    zeta: float = 0.1,
) -> list[np.ndarray]:
    """EMPG (§7): rescale a per-turn advantage by step confidence and add a future-clarity bonus.

    ``Hn`` is the batch min-max normalised step entropy (mean token entropy of the step under the old
    policy); ``g = exp(-k Hn) / batch mean``;
    ``A_mod(t) = g_t A_t + zeta * exp(-k_future Hn_{t+1})`` (no bonus
    on a trajectory's last step); the result is made zero-mean over the batch's steps (no std division).
    """
    lengths = [len(h) for h in step_entropies]
    if [len(a) for a in advantages] != lengths:
        raise InvalidArgumentError(
            "advantages and step_entropies need the same number of turns per trajectory"
        )
    h = np.concatenate([np.asarray(x, float) for x in step_entropies]) if lengths else np.zeros(0)
    if h.size == 0:
        return []
    hn = (h - h.min()) / (h.max() - h.min() + 1e-8)
    scale = np.exp(-k * hn)
    g = scale / scale.mean()
    f = np.exp(-k_future * hn)
    a = np.concatenate([np.asarray(x, float) for x in advantages])
    starts = np.cumsum([0, *lengths])
    mod = g * a
    for i, n in enumerate(lengths):
        for t in range(n - 1):
            mod[starts[i] + t] += zeta * f[starts[i] + t + 1]
    return _split(mod - mod.mean(), lengths)


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
    pre = sum(w[k] * _normalize(r[:, k], groups, eps=eps, single="zero") for k in range(r.shape[1]))
    pre = np.asarray(pre, dtype=np.float64)
    batch = (pre - pre.mean()) / (pre.std(ddof=1) + eps) if len(pre) > 1 else pre
    return [np.full(n, a) for a, n in zip(batch, _lengths(num_turns, len(pre)))]


# --------------------------------------------------------------------------- RLVMR, OPRL, IGPO
def rlvmr_advantages(
    outcomes: Sequence[float],
    tags: Sequence[Sequence[str]],
    tag_rewards: Ragged,
    groups: Sequence[Hashable],
    *,
    format_rewards: Ragged | None = None,
    mode: Literal["paper", "code"] = "paper",
    alpha: float = 0.5,
    weight: float = 1.0,
    eps: float = 1e-6,
) -> list[np.ndarray]:
    """GRPO-MR (§11.4): an outcome advantage plus a meta-reasoning advantage normalised per tag.

    ``mode="paper"``: ``A = alpha * (A^traj + format reward) + (1 - alpha) * A^MR``; A^traj normalises the
    returns over the batch's trajectories; A^MR normalises the tag reward over the batch's steps with the
    same tag. The format penalty is added unnormalised (our reading: normalised within the "none" bucket,
    where every malformed step carries the same -0.1, it would cancel to 0). ``mode="code"``: ``A = A^traj + weight * A^MR``; A^traj normalises each step row's score
    (return + that step's format reward, e.g. -0.1) over the rows of the prompt group; A^MR normalises the
    tag reward over the (group, tag) bucket. Std is unbiased + eps; one-element pools pass the raw value.
    """
    _check("mode", mode, ("paper", "code"))
    lengths = [len(t) for t in tags]
    fmt = format_rewards if format_rewards is not None else [[0.0] * n for n in lengths]
    flat_tags = [tag for row in tags for tag in row]
    mr = np.concatenate([np.asarray(r, float) for r in tag_rewards]) if lengths else np.zeros(0)
    fr = np.concatenate([np.asarray(r, float) for r in fmt]) if lengths else np.zeros(0)
    row_groups = [g for g, n in zip(groups, lengths) for _ in range(n)]
    if mode == "code":
        rows = np.repeat(np.asarray(outcomes, float), lengths) + fr
        traj = _normalize(rows, row_groups, eps=eps)
        meta = _normalize(mr, list(zip(row_groups, flat_tags)), eps=eps)
        return _split(traj + weight * meta, lengths)
    per_traj = _normalize(np.asarray(outcomes, float), [0] * len(outcomes), eps=eps)
    traj = np.repeat(per_traj, lengths)
    # the format reward joins the trajectory part unnormalised (as code mode puts it in the row's score):
    # normalised inside its tag bucket it would vanish, since every malformed step has tag "none" and -0.1
    meta = _normalize(mr, flat_tags, eps=eps)
    return _split(alpha * (traj + fr) + (1 - alpha) * meta, lengths)


def oprl_advantages(
    outcomes: Sequence[float],
    step_rewards: Ragged,
    groups: Sequence[Hashable],
    *,
    mode: Literal["grpo", "rloo"] = "grpo",
    norm: Literal["mean_std", "mean"] = "mean_std",
    alpha: float = 1.0,
    step_pool: Literal["group", "first_step"] = "group",
    process_only: bool = False,
    eps: float = 1e-6,
) -> list[np.ndarray]:
    """OPRL/iStar (§9.3): ``A = A^E(outcome) + alpha * A^S(step reward)``, fused at the advantage level.

    ``mode="grpo"`` (paper): ``(x - mean) / std`` (``norm="mean"``: no division); ``"rloo"`` (the code's
    scripts): ``N/(N-1) * (x - mean)`` with N the group's trajectory count, raw values when N = 1.
    The step baseline pool is every step reward of the group (``step_pool="group"``, paper) or only the
    first step of each trajectory (``"first_step"``, the reference code's de-duplication quirk); each step is
    compared with that pool's statistics. ``process_only``: ``A = A^S``.
    """
    _check("mode", mode, ("grpo", "rloo"))
    _check("norm", norm, ("mean_std", "mean"))
    _check("step_pool", step_pool, ("group", "first_step"))
    lengths = [len(r) for r in step_rewards]
    outcomes = np.asarray(outcomes, dtype=np.float64)
    steps = [np.asarray(r, dtype=np.float64) for r in step_rewards]
    episode = np.zeros(len(outcomes))
    out_steps = [np.zeros(n) for n in lengths]
    for members in _pools(groups).values():
        n = len(members)
        x = outcomes[members]
        pool = np.concatenate([steps[i] if step_pool == "group" else steps[i][:1] for i in members])
        if n == 1 or pool.size == 0:
            mu_e, sd_e, mu_s, sd_s, factor = 0.0, 1.0, 0.0, 1.0, 1.0
        else:
            mu_e, mu_s = x.mean(), pool.mean()
            factor = n / (n - 1) if mode == "rloo" else 1.0
            use_std = mode == "grpo" and norm == "mean_std"
            sd_e = x.std(ddof=1) + eps if use_std else 1.0
            sd_s = (pool.std(ddof=1) + eps if pool.size > 1 else 1.0) if use_std else 1.0
        episode[members] = factor * (x - mu_e) / sd_e
        for i in members:
            out_steps[i] = factor * (steps[i] - mu_s) / sd_s
    return [s if process_only else e + alpha * s for e, s in zip(episode, out_steps)]


def igpo_advantages(
    turn_rewards: Ragged,
    groups: Sequence[Hashable],
    *,
    gamma: float = 1.0,
    norm: Literal["separate", "joint"] = "separate",
    finals: Sequence[bool] | None = None,
    progress: float | None = None,
    eps: float = 1e-6,
) -> list[np.ndarray]:
    """IGPO (§8.3): normalise the group's turn rewards, then ``A_t = r_hat_t + gamma * A_{t+1}``.

    ``turn_rewards[i]`` are the information gains of the non-final turns followed by the outcome reward of
    the final turn (when ``finals[i]``, the default). ``norm="separate"`` (official code): IG rewards and
    outcome rewards get their own group mean and population std (``sqrt(var + 1e-8)``, a one-element pool
    std 1); ``"joint"`` (v1 paper): one pool for both. The result is divided by ``std + eps``.
    ``progress`` in [0, 1] turns on the optional curriculum (§8.4, off by default): before normalisation the
    outcome rewards are weighted ``0.5 + 0.5 p`` and the IG rewards ``1 - 0.5 p``.
    """
    _check("norm", norm, ("separate", "joint"))
    lengths = [len(r) for r in turn_rewards]
    finals = [True] * len(lengths) if finals is None else list(finals)
    values = np.concatenate([np.asarray(r, float) for r in turn_rewards]) if lengths else np.zeros(0)
    keys = []
    for group, n, final in zip(groups, lengths, finals):
        for t in range(n):
            kind = "outcome" if (final and t == n - 1) else "ig"
            keys.append((group, kind if norm == "separate" else "all"))
    if progress is not None:
        if not 0.0 <= progress <= 1.0:
            raise InvalidArgumentError(f"progress must be in [0, 1], got {progress!r}")
        is_outcome = np.array([(final and t == n - 1) for n, final in zip(lengths, finals) for t in range(n)])
        values = values * np.where(is_outcome, 0.5 + 0.5 * progress, 1.0 - 0.5 * progress)
    normalized = _normalize(values, keys, std="population", eps=eps, single="zero")
    return [discounted_returns(r, gamma) for r in _split(normalized, lengths)]


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


# --------------------------------------------------------------------------- KernelGYM PRS filter
def profiling_keep_probability(
    coverage: float,
    *,
    tau: float = 0.3,
    factor: float = 0.1,
    speedup: float | None = None,
    speedup_threshold: float | None = None,
) -> float:
    """KernelGYM profiling-based rejection sampling (§4.5): ``clip((coverage - tau) / factor, 0, 1)``
    (a step at tau when ``factor == 0``), optionally OR-ed with ``speedup >= speedup_threshold``."""
    p = float(coverage >= tau) if factor == 0 else float(np.clip((coverage - tau) / factor, 0.0, 1.0))
    if speedup_threshold is not None and speedup is not None and speedup >= speedup_threshold:
        p = 1.0
    return p


def profiling_rejection_filter(
    coverage: Ragged,
    correct: Sequence[Sequence[bool]],
    *,
    tau: float = 0.3,
    factor: float = 0.1,
    mode: Literal["turn", "geometric"] = "turn",
    speedup: Ragged | None = None,
    speedup_threshold: float | None = None,
    rng: np.random.Generator | int | None = 0,
) -> list[np.ndarray]:
    """Keep masks (one bool per turn) from KernelGYM's profiling-based rejection sampling — not PRS the reward
    shaping (``agentgym.wrappers.ProgressiveRewardHook``).

    Incorrect turns are always kept. ``mode="turn"``: one Bernoulli(keep probability) per correct turn;
    ``"geometric"``: one decision per rollout from the geometric mean coverage of its correct turns,
    applied to those turns. Zero the rejected turns' loss mask *after* computing baselines (TRLOO pools still
    see them) and drop rows with nothing left, as the reference code does.
    """
    _check("mode", mode, ("turn", "geometric"))
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    out = []
    for i, (cov, ok) in enumerate(zip(coverage, correct)):
        keep = np.ones(len(cov), dtype=bool)
        ups = speedup[i] if speedup is not None else [None] * len(cov)
        if mode == "turn":
            for t, (c, good, up) in enumerate(zip(cov, ok, ups)):
                if good:
                    p = profiling_keep_probability(
                        c, tau=tau, factor=factor, speedup=up, speedup_threshold=speedup_threshold
                    )
                    keep[t] = rng.random() < p
        else:
            idx = [t for t, good in enumerate(ok) if good]
            if idx:
                geo = float(np.exp(np.mean(np.log(np.maximum([cov[t] for t in idx], 1e-12)))))
                keep[idx] = rng.random() < profiling_keep_probability(geo, tau=tau, factor=factor)
        out.append(keep)
    return out


# --------------------------------------------------------------------------- inputs from trajectories
def from_trajectories(trajectories: Sequence[Any], hook: str | None = None) -> dict[str, Any]:
    """The usual estimator inputs from trajectories: ``groups``, ``outcomes`` (total env reward),
    ``num_turns``, ``step_rewards`` (env rewards per turn), ``anchors`` (the anchor state each action was
    taken in), ``invalid`` (``not info["action_valid"]``), ``finals`` and, with ``hook``, ``turn_rewards``
    (``turn.turn_rewards[hook]``)."""
    out: dict[str, Any] = {
        "groups": [t.group_id if t.group_id is not None else t.episode_id for t in trajectories],
        "outcomes": [t.total_reward for t in trajectories],
        "num_turns": [len(t.turns) for t in trajectories],
        "step_rewards": [[turn.reward for turn in t.turns] for t in trajectories],
        "anchors": [],
        "invalid": [[not turn.info.get("action_valid", True) for turn in t.turns] for t in trajectories],
        "finals": [bool(t.turns) and (t.turns[-1].terminated or t.turns[-1].truncated) for t in trajectories],
    }
    for t in trajectories:
        states = [t.initial_info.get("anchor_obs") or t.initial_observation]
        states += [turn.info.get("anchor_obs") or turn.observation for turn in t.turns[:-1]]
        out["anchors"].append([str(s) for s in states[: len(t.turns)]])
    if hook is not None:
        out["turn_rewards"] = [
            [float(turn.turn_rewards.get(hook, 0.0)) for turn in t.turns] for t in trajectories
        ]
    return out
