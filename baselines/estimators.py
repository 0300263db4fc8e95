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
    v2: split by family (same functions, same import path): :mod:`.estimators_group` (GRPO, RLOO, TRLOO,
        GDPO, VSPO), :mod:`.estimators_turn` (GiGPO, EMPG, RLVMR, OPRL, IGPO) and their shared pooling
        helpers :mod:`.estimators_common`; this module re-exports them and keeps KernelGYM's filter and
        :func:`from_trajectories`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from agentgym.baselines.estimators_common import Ragged, StdKind, discounted_returns, zero_variance_fraction
from agentgym.baselines.estimators_group import (
    gdpo_advantages,
    grpo_advantages,
    rloo_advantages,
    trloo_advantages,
    vspo_advantages,
    vspo_task_value,
)
from agentgym.baselines.estimators_turn import (
    cluster_anchors,
    empg_advantages,
    gigpo_advantages,
    igpo_advantages,
    oprl_advantages,
    rlvmr_advantages,
)
from agentgym.wrappers.hooks import check_choice as _check

__all__ = [
    "Ragged",
    "StdKind",
    "cluster_anchors",
    "discounted_returns",
    "empg_advantages",
    "from_trajectories",
    "gdpo_advantages",
    "gigpo_advantages",
    "grpo_advantages",
    "igpo_advantages",
    "oprl_advantages",
    "profiling_keep_probability",
    "profiling_rejection_filter",
    "rlvmr_advantages",
    "rloo_advantages",
    "trloo_advantages",
    "vspo_advantages",
    "vspo_task_value",
    "zero_variance_fraction",
]


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
        out["turn_rewards"] = [[float(turn.turn_rewards.get(hook, 0.0)) for turn in t.turns] for t in trajectories]
    return out
