"""Turn-level advantage estimators: each turn gets its own advantage from a per-turn signal (GiGPO's
anchor-state step groups, EMPG's step entropies, RLVMR's meta-reasoning tags, OPRL's process rewards, IGPO's
information gains). Conventions: :mod:`agentgym.baselines.estimators`.

Example:
    >>> cluster_anchors(["kitchen", "hall", "kitchen"])
    [0, 1, 0]
"""

from __future__ import annotations

import difflib
from collections.abc import Hashable, Sequence
from typing import Literal

import numpy as np

from agentgym.baselines.estimators_common import (
    Ragged,
    StdKind,
    discounted_returns,
    normalize,
    pool_members,
    pool_stats,
    split_rows,
)
from agentgym.error import InvalidArgumentError
from agentgym.wrappers.hooks import check_choice as _check


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
    totals = np.asarray(outcomes if outcomes is not None else [sum(r) for r in step_rewards], dtype=np.float64)
    returns = [discounted_returns(r, gamma) - p for r, p in zip(step_rewards, penalty)]
    if episode_pooling == "trajectory":
        mean, scale = pool_stats(totals, groups, std=std, eps=eps, single="raw")
        # the penalty comes off after normalisation: divided by a zero-variance group's eps-sized scale it
        # would be ~1e5 times too large
        episode_rows = [(r - m) / c - p for r, m, c, p in zip(totals, mean, scale, penalty)]
    else:
        rows = (
            np.concatenate([np.full(n, t) - p for t, n, p in zip(totals, lengths, penalty)]) if lengths else np.zeros(0)
        )
        keys = [g for g, n in zip(groups, lengths) for _ in range(n)]
        episode_rows = split_rows(normalize(rows, keys, std=std, eps=eps), lengths)
    step_keys: list[tuple[Hashable, int]] = []
    by_group = pool_members(groups)
    cluster_of: dict[tuple[int, int], int] = {}
    for members in by_group.values():
        cells = [(i, t) for i in members for t in range(lengths[i])]
        for cell, cluster in zip(cells, cluster_anchors([anchors[i][t] for i, t in cells], similarity)):
            cluster_of[cell] = cluster
    for i, group in enumerate(groups):
        step_keys += [(group, cluster_of[(i, t)]) for t in range(lengths[i])]
    flat_returns = np.concatenate(returns) if returns else np.zeros(0)
    step = split_rows(normalize(flat_returns, step_keys, std=std, eps=eps, single="zero"), lengths)
    return [e + step_weight * s for e, s in zip(episode_rows, step)]


# --------------------------------------------------------------------------- EMPG
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
        raise InvalidArgumentError("advantages and step_entropies need the same number of turns per trajectory")
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
    return split_rows(mod - mod.mean(), lengths)


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
        traj = normalize(rows, row_groups, eps=eps)
        meta = normalize(mr, list(zip(row_groups, flat_tags)), eps=eps)
        return split_rows(traj + weight * meta, lengths)
    per_traj = normalize(np.asarray(outcomes, float), [0] * len(outcomes), eps=eps)
    traj = np.repeat(per_traj, lengths)
    # the format reward joins the trajectory part unnormalised (as code mode puts it in the row's score):
    # normalised inside its tag bucket it would vanish, since every malformed step has tag "none" and -0.1
    meta = normalize(mr, flat_tags, eps=eps)
    return split_rows(alpha * (traj + fr) + (1 - alpha) * meta, lengths)


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
    for members in pool_members(groups).values():
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
    normalized = normalize(values, keys, std="population", eps=eps, single="zero")
    return [discounted_returns(r, gamma) for r in split_rows(normalized, lengths)]
