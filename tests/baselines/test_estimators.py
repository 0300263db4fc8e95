"""Advantage estimators: the spec's worked examples (reward-hooks.md), naive loops, degenerate groups."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agentgym.baselines import estimators as E
from agentgym.baselines.tokens import broadcast_to_tokens, mean_per_turn, turn_row_advantages, turn_rows
from agentgym.error import InvalidArgumentError
from agentgym.trajectory import Trajectory, Turn


def flat(arrays):
    return [round(float(x), 3) for a in arrays for x in a]


# ------------------------------------------------------------------ GRPO / RLOO (§2, §3)
def test_rloo_and_grpo_worked_example():
    r = [1, 0, 0, 1]
    assert flat(E.rloo_advantages(r, ["g"] * 4)) == [0.667, -0.667, -0.667, 0.667]
    assert flat(E.grpo_advantages(r, ["g"] * 4)) == [0.866, -0.866, -0.866, 0.866]
    # population std: deviations 0.5 over std 0.5
    assert flat(E.grpo_advantages(r, ["g"] * 4, std="population")) == [1.0, -1.0, -1.0, 1.0]
    assert flat(E.grpo_advantages(r, ["g"] * 4, std="none")) == [0.5, -0.5, -0.5, 0.5]


def naive_grpo(outcomes, groups, lengths, pooling):
    out = []
    for i, (r, g) in enumerate(zip(outcomes, groups)):
        pool = []
        for j, (r2, g2) in enumerate(zip(outcomes, groups)):
            if g2 == g:
                pool += [r2] * (lengths[j] if pooling == "step" else 1)
        if len(pool) == 1:
            a = r
        else:
            mu = sum(pool) / len(pool)
            sd = math.sqrt(sum((x - mu) ** 2 for x in pool) / (len(pool) - 1))
            a = (r - mu) / (sd + 1e-6)
        out.append([a] * lengths[i])
    return out


@pytest.mark.parametrize("pooling", ["trajectory", "step"])
def test_grpo_matches_naive_loop_both_poolings(pooling):
    rng = np.random.default_rng(0)
    outcomes = rng.normal(size=12).tolist()
    groups = [k // 4 for k in range(11)] + ["solo"]
    lengths = rng.integers(1, 6, size=12).tolist()
    got = E.grpo_advantages(outcomes, groups, num_turns=lengths, pooling=pooling)
    want = naive_grpo(outcomes, groups, lengths, pooling)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-9)
    if pooling == "trajectory":  # one-element group: the raw return
        assert got[-1].tolist() == [outcomes[-1]] * lengths[-1]
    else:  # the lone trajectory's rows form a zero-variance pool: 0; longer trajectories weigh more
        assert got[-1].tolist() == [0.0] * lengths[-1]
        assert not np.allclose(flat(got), flat(E.grpo_advantages(outcomes, groups, num_turns=lengths)))


def test_degenerate_groups_outcome_estimators():
    # zero variance: all advantages 0; size one: raw return (GRPO) / return (RLOO)
    assert flat(E.grpo_advantages([1, 1, 1], ["g"] * 3)) == [0.0, 0.0, 0.0]
    assert flat(E.rloo_advantages([1, 1, 1], ["g"] * 3)) == [0.0, 0.0, 0.0]
    assert flat(E.grpo_advantages([3.0], ["g"])) == [3.0]
    assert flat(E.rloo_advantages([3.0], ["g"])) == [3.0]
    assert E.zero_variance_fraction([1, 1, 0, 1, 5], ["a", "a", "b", "b", "c"]) == 0.5


# ------------------------------------------------------------------ TRLOO (§4.2)
def test_trloo_worked_example():
    rewards = [[0, 0.5, 1.0], [0.2, 0.2, 0.9], [0, 1.0]]
    adv = E.trloo_advantages(rewards, ["g"] * 3)
    assert [round(x, 2) for x in adv[0]] == [0.35, 0.45, 0.10]
    assert [round(x, 2) for x in adv[1]] == [0.05, -0.15, -0.10]
    assert [round(x, 2) for x in adv[2]] == [-0.40, -0.30]
    # alone at turn 3 (other rollouts masked out): the return itself
    masked = E.trloo_advantages(rewards, ["g"] * 3, loss_mask=[[1, 1, 1], [1, 1, 0], [1, 1]])
    assert masked[0][2] == pytest.approx(1.0)


def test_trloo_matches_naive_loop_with_gamma():
    rng = np.random.default_rng(1)
    rewards = [rng.random(rng.integers(1, 5)).tolist() for _ in range(6)]
    groups = [0, 0, 0, 1, 1, 2]
    gamma = 0.9
    got = E.trloo_advantages(rewards, groups, gamma=gamma)
    returns = [[sum(gamma ** (k - t) * r[k] for k in range(t, len(r))) for t in range(len(r))] for r in rewards]
    for i in range(6):
        for t in range(len(rewards[i])):
            others = [returns[j][t] for j in range(6) if j != i and groups[j] == groups[i] and len(rewards[j]) > t]
            want = returns[i][t] - (sum(others) / len(others) if others else 0.0)
            assert got[i][t] == pytest.approx(want)


# ------------------------------------------------------------------ GiGPO (§5.3)
GIGPO_REWARDS = [[0, 10], [0, 0, 10], [0, 0]]
GIGPO_ANCHORS = [["s0", "s1"], ["s0", "s2", "s1"], ["s0", "s1"]]


def test_gigpo_worked_example():
    adv = E.gigpo_advantages(GIGPO_REWARDS, ["g"] * 3, GIGPO_ANCHORS, norm="mean", step_weight=0.0)
    assert flat(adv) == [3.333, 3.333, 3.333, 3.333, 3.333, -6.667, -6.667]  # per-trajectory pooling
    steps = E.gigpo_advantages(GIGPO_REWARDS, ["g"] * 3, GIGPO_ANCHORS, norm="mean", step_weight=1.0)
    step_only = np.concatenate(steps) - np.concatenate(adv)
    # anchor s0 -> [3.325, 2.85, -6.175]; s1 -> [3.333, 3.333, -6.667]; s2 alone -> 0
    assert [round(x, 3) for x in step_only] == [3.325, 3.333, 2.85, 0.0, 3.333, -6.175, -6.667]
    cross = E.gigpo_advantages(
        GIGPO_REWARDS, ["g"] * 3, GIGPO_ANCHORS, norm="mean", step_weight=0.0, episode_pooling="step"
    )
    assert flat(cross) == [2.857] * 5 + [-7.143] * 2


def test_gigpo_std_norm_penalty_and_similarity():
    base = E.gigpo_advantages(GIGPO_REWARDS, ["g"] * 3, GIGPO_ANCHORS, step_weight=0.0)
    # std_u of [10, 10, 0] = 5.7735
    assert flat(base)[0] == pytest.approx(round(3.3333 / 5.7735, 3), abs=1e-3)
    pen = E.gigpo_advantages(
        GIGPO_REWARDS,
        ["g"] * 3,
        GIGPO_ANCHORS,
        norm="mean",
        step_weight=0.0,
        invalid=[[True, False], [False] * 3, [False] * 2],
        invalid_penalty=0.1,
    )
    assert flat(pen)[:2] == [3.233, 3.333]  # the penalty comes off that row only
    fuzzy = [["room one", "x"], ["room one!", "y", "z"], ["other", "w"]]
    clusters = E.cluster_anchors([a[0] for a in fuzzy], threshold=0.9)
    assert clusters == [0, 0, 1]
    adv = E.gigpo_advantages(GIGPO_REWARDS, ["g"] * 3, fuzzy, norm="mean", similarity=0.9, step_weight=1.0)
    epi = E.gigpo_advantages(GIGPO_REWARDS, ["g"] * 3, fuzzy, norm="mean", step_weight=0.0)
    # first steps of T1 and T2 share a cluster: returns 9.5 and 9.025 around their mean
    assert adv[0][0] - epi[0][0] == pytest.approx(9.5 - (9.5 + 9.025) / 2)
    assert adv[2][0] - epi[2][0] == 0.0  # alone in its cluster


# ------------------------------------------------------------------ GDPO (§6), EMPG (§7)
def test_gdpo_worked_example():
    rewards = [[0, 0], [0, 1], [0, 0], [0, 1], [0, 0], [1, 1], [0, 0], [1, 1]]
    groups = ["x"] * 4 + ["y"] * 4
    summed = E.grpo_advantages([sum(r) for r in rewards], groups)
    assert [abs(x) for x in flat(summed)] == [0.866] * 8  # GRPO on the sum collapses
    adv = flat(E.gdpo_advantages(rewards, groups))
    assert [abs(x) for x in adv[:4]] == [0.592] * 4
    assert [abs(x) for x in adv[4:]] == [1.183] * 4
    assert flat(E.gdpo_advantages([[1, 2]], ["solo"])) == [0.0]  # one trajectory: no spread, advantage 0


def test_empg_worked_example():
    adv = E.empg_advantages([[1, 1], [-1, -1]], [[0.2, 1.0], [0.6, 0.4]])
    assert flat(adv) == [1.467, 0.512, -0.826, -1.154]
    assert sum(flat(adv)) == pytest.approx(0.0, abs=2e-3)
    with pytest.raises(InvalidArgumentError, match="same number of turns"):
        E.empg_advantages([[1]], [[0.1, 0.2]])


# ------------------------------------------------------------------ IGPO (§8.3)
IGPO_REWARDS = [[0.20, 0.10, 1.0], [-0.05, 0.10, 0.0]]


def test_igpo_worked_example_separate_and_joint():
    sep = E.igpo_advantages(IGPO_REWARDS, ["g", "g"])
    assert flat(sep) == [2.4, 1.14, 1.0, -2.4, -0.86, -1.0]
    joint = E.igpo_advantages(IGPO_REWARDS, ["g", "g"], norm="joint")
    assert flat(joint) == [1.758, 1.828, 2.179, -1.758, -0.984, -0.633]
    discounted = E.igpo_advantages(IGPO_REWARDS, ["g", "g"], gamma=0.95)
    assert flat(discounted) == [2.296, 1.09, 1.0, -2.31, -0.81, -1.0]


def test_igpo_curriculum_weights():
    # progress 1: outcome x1, IG x0.5 -> scaling a whole pool leaves its normalised values unchanged
    assert flat(E.igpo_advantages(IGPO_REWARDS, ["g", "g"], progress=1.0)) == flat(
        E.igpo_advantages(IGPO_REWARDS, ["g", "g"])
    )
    # joint pool: the relative weights matter
    early = E.igpo_advantages(IGPO_REWARDS, ["g", "g"], norm="joint", progress=0.0)
    manual = [[0.2, 0.1, 0.5], [-0.05, 0.1, 0.0]]
    assert flat(early) == flat(E.igpo_advantages(manual, ["g", "g"], norm="joint"))


def test_igpo_degenerate_and_unfinished():
    # a one-element pool: std 1, mean the value -> 0
    assert flat(E.igpo_advantages([[0.3, 1.0]], ["g"])) == [0.0, 0.0]
    # an unfinished trajectory has only IG rewards, pooled with the other IG rewards: IG pool {0.2, 0.0} ->
    # +1, -1; the lone outcome 1.0 -> 0; A_t sums from t on
    adv = E.igpo_advantages([[0.2, 1.0], [0.0]], ["g", "g"], finals=[True, False])
    assert flat(adv) == [1.0, 0.0, -1.0]
    # read as finished, the unfinished one's 0.0 is an outcome: pools {0.2} and {1.0, 0.0} instead
    assert flat(E.igpo_advantages([[0.2, 1.0], [0.0]], ["g", "g"])) == [1.0, 1.0, -1.0]


# ------------------------------------------------------------------ OPRL (§9.3)
def test_oprl_paper_and_code_variants():
    outcomes = [1.0, 0.0]
    steps = [[0.2, 0.4], [-0.2, 0.0]]
    paper = E.oprl_advantages(outcomes, steps, ["g", "g"])
    e = 0.5 / (math.sqrt(0.5) + 1e-6)
    pool = np.array([0.2, 0.4, -0.2, 0.0])
    s = (np.array([0.2, 0.4, -0.2, 0.0]) - pool.mean()) / (pool.std(ddof=1) + 1e-6)
    np.testing.assert_allclose(np.concatenate(paper), [e + s[0], e + s[1], -e + s[2], -e + s[3]], rtol=1e-6)
    rloo = E.oprl_advantages(outcomes, steps, ["g", "g"], mode="rloo")
    np.testing.assert_allclose(np.concatenate(rloo), [1 + 2 * 0.1, 1 + 2 * 0.3, -1 + 2 * -0.3, -1 + 2 * -0.1])
    first = E.oprl_advantages(outcomes, steps, ["g", "g"], mode="rloo", step_pool="first_step")
    # pool = first steps only [0.2, -0.2], mean 0
    np.testing.assert_allclose(np.concatenate(first), [1 + 0.4, 1 + 0.8, -1 - 0.4, -1 + 0.0])
    only = E.oprl_advantages(outcomes, steps, ["g", "g"], mode="rloo", process_only=True)
    np.testing.assert_allclose(np.concatenate(only), [0.2, 0.6, -0.6, -0.2])
    solo = E.oprl_advantages([1.0], [[0.3]], ["g"])
    assert flat(solo) == [1.3]  # one-element group: raw outcome and raw step reward


# ------------------------------------------------------------------ RLVMR (§11.4)
RLVMR_TAGS = [["planning", "explore", "monitor", "explore"], ["planning", "none", "reflection", "explore"]]
RLVMR_MR = [[1, 1, 0, 0], [0, 0, 1, 1]]
RLVMR_FMT = [[0, 0, 0, 0], [0, -0.1, 0, 0]]


def test_rlvmr_worked_example_code_mode():
    adv = E.rlvmr_advantages([10, 0], RLVMR_TAGS, RLVMR_MR, ["g", "g"], format_rewards=RLVMR_FMT, mode="code")
    assert flat(adv) == [1.643, 1.513, 0.935, -0.219, -1.638, -0.949, 0.069, -0.353]
    traj = E.rlvmr_advantages([10, 0], RLVMR_TAGS, [[0] * 4] * 2, ["g", "g"], format_rewards=RLVMR_FMT, mode="code")
    assert flat(traj) == [0.935] * 4 + [-0.931, -0.949, -0.931, -0.931]


def test_rlvmr_paper_mode_is_convex_mix():
    adv = E.rlvmr_advantages([10, 0], RLVMR_TAGS, RLVMR_MR, ["g", "g"], mode="paper", alpha=0.5)
    traj = 10 / 2 / (math.sqrt(50) + 1e-6)  # batch pool of two trajectories
    # explore bucket [1, 0, 1]: mean 2/3, std_u sqrt(1/3)
    expected_explore_first = (1 - 2 / 3) / (math.sqrt(1 / 3) + 1e-6)
    assert adv[0][1] == pytest.approx(0.5 * traj + 0.5 * expected_explore_first, rel=1e-6)
    assert adv[0][2] == pytest.approx(0.5 * traj)  # monitor alone: raw reward 0


def test_rlvmr_paper_mode_keeps_the_format_penalty():
    tags = [["none", "none"], ["none", "none"]]
    zero = [[0, 0], [0, 0]]
    fmt = [[-0.1, -0.1], [-0.1, 0.0]]  # three malformed steps of tag "none", one well-formed
    adv = E.rlvmr_advantages([0, 0], tags, zero, ["g", "g"], format_rewards=fmt, mode="paper", alpha=0.5)
    without = E.rlvmr_advantages([0, 0], tags, zero, ["g", "g"], mode="paper", alpha=0.5)
    assert flat(without) == [0.0] * 4
    assert adv[1][0] == pytest.approx(-0.05) and adv[1][1] == pytest.approx(0.0)  # alpha * -0.1 survives


def test_gigpo_invalid_penalty_is_not_blown_up_by_a_zero_variance_group():
    adv = E.gigpo_advantages(
        [[0.0, 1.0], [0.0, 1.0]],
        ["g", "g"],
        [["s0", "s1"], ["s0", "s1"]],
        step_weight=0.0,
        invalid=[[True, False], [False, False]],
        invalid_penalty=0.1,
    )
    assert flat(adv) == [-0.1, 0.0, 0.0, 0.0]


# ------------------------------------------------------------------ KernelGYM profiling filter (§4.5)
def test_profiling_rejection_filter():
    assert E.profiling_keep_probability(0.35) == pytest.approx(0.5)
    assert E.profiling_keep_probability(0.2) == 0.0 and E.profiling_keep_probability(0.45) == 1.0
    assert E.profiling_keep_probability(0.3, factor=0) == 1.0 and E.profiling_keep_probability(0.29, factor=0) == 0
    assert E.profiling_keep_probability(0.1, speedup=2.0, speedup_threshold=1.5) == 1.0
    keep = E.profiling_rejection_filter([[0.1, 0.1, 0.9]], [[False, True, True]])
    assert keep[0].tolist() == [True, False, True]  # incorrect always kept; coverage 0.1 always rejected
    masks = E.profiling_rejection_filter([[0.35] * 2000], [[True] * 2000], rng=3)
    assert 0.45 < masks[0].mean() < 0.55
    geo = E.profiling_rejection_filter([[0.9, 0.01, 0.9]], [[True, True, True]], mode="geometric")
    assert geo[0].tolist() == [False, False, False]  # geometric mean 0.2 < tau: the whole rollout goes


# ------------------------------------------------------------------ token broadcasting (§1.2)
def test_broadcast_excludes_observation_tokens():
    out = broadcast_to_tokens([0.5, -2.0], [-1, -1, 0, 0, 0, 1, 1], [0, 0, 1, 1, 0, 0, 1])
    assert out.tolist() == [0.0, 0.0, 0.5, 0.5, 0.0, 0.0, -2.0]
    turns = [
        Turn("o1", "a", 0.0, False, False, {}, prompt_token_ids=[1, 2], response_token_ids=[3]),
        Turn("o2", "b", 1.0, True, False, {}, prompt_token_ids=[1, 2, 3, 4], response_token_ids=[5, 6]),
    ]
    traj = Trajectory("e", "env", "t", 0, "agent", "o0", {}, turns)
    assert turn_rows(traj)[1] == ([1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 1, 1])
    rows = turn_row_advantages(traj, [1.5, -1.0])
    assert rows[0].tolist() == [0.0, 0.0, 1.5] and rows[1].tolist() == [0, 0, 0, 0, -1.0, -1.0]
    with pytest.raises(InvalidArgumentError):
        broadcast_to_tokens([1.0], [0, 1], [1, 1])
    # EMPG step entropy: mean over each turn's trainable tokens only
    assert mean_per_turn([9, 1, 3, 9, 4], [-1, 0, 0, 1, 1], [0, 1, 1, 0, 1], 3).tolist() == [2.0, 4.0, 0.0]
