"""The estimator registry: every entry equals its pure function on the same numbers; validation; VSPO."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agentgym.baselines import estimators as E
from agentgym.baselines.advantages import (
    ESTIMATORS,
    EstimatorInputs,
    VSPOState,
    accepted_kwargs,
    check_estimator,
    compute_advantages,
    make_state,
)
from agentgym.error import InvalidArgumentError
from agentgym.trajectory import Trajectory, Turn

GAMMA = 0.9
WEIGHTS = {"rlvmr": 0.5, "oprl": 2.0, "igpo": 1.0, "prs_progressive": 0.25}
GROUPS = ["g0", "g0", "g0", "g1", "g1", "g1"]
TASKS = ["t0", "t0", "t0", "t1", "t1", "t1"]
LENGTHS = [3, 2, 3, 1, 2, 2]
FINISHED = [True, True, True, True, False, True]  # trajectory 4 was cut off without ending
TAGS = ["planning", "explore", "reflection", "monitor", "none"]


def make_data(seed=0):
    """Raw per-turn numbers, the ground truth the tests compare against."""
    rng = np.random.default_rng(seed)
    data = {
        "env": [rng.integers(0, 3, n).astype(float).tolist() for n in LENGTHS],
        "hooks": {name: [rng.normal(size=n).round(3).tolist() for n in LENGTHS] for name in WEIGHTS},
        "tags": [[TAGS[int(k)] for k in rng.integers(0, 5, n)] for n in LENGTHS],
        "mr": [rng.integers(0, 2, n).astype(float).tolist() for n in LENGTHS],
        "states": [[f"s{int(k)}" for k in rng.integers(0, 3, n)] for n in LENGTHS],
        "invalid": [[bool(k) for k in rng.integers(0, 2, n)] for n in LENGTHS],
        "logprobs": [[(-rng.random(3)).tolist() if k else None for k in rng.integers(0, 4, n)] for n in LENGTHS],
    }
    data["fmt"] = [[-0.1 if tag == "none" else 0.0 for tag in row] for row in data["tags"]]
    data["hooks"]["rlvmr"] = [[m + f for m, f in zip(a, b)] for a, b in zip(data["mr"], data["fmt"])]
    return data


def build_trajectories(data):
    out = []
    for i, n in enumerate(LENGTHS):
        turns = []
        for t in range(n):
            last = t == n - 1
            info = {
                "action_valid": not data["invalid"][i][t],
                "anchor_obs": data["states"][i][t + 1] if t + 1 < n else "end",
                "turn_reward_details": {
                    "rlvmr": {
                        "tag": data["tags"][i][t],
                        "mr_reward": data["mr"][i][t],
                        "format_reward": data["fmt"][i][t],
                        "format_ok": data["tags"][i][t] != "none",
                    }
                },
            }
            turns.append(
                Turn(
                    observation=f"obs {t}",
                    action="look",
                    reward=data["env"][i][t],
                    terminated=last and FINISHED[i],
                    truncated=False,
                    info=info,
                    turn_rewards={name: data["hooks"][name][i][t] for name in WEIGHTS},
                    response_logprobs=data["logprobs"][i][t],
                )
            )
        out.append(
            Trajectory(
                episode_id=f"ep{i}",
                env_id="agentgym/Fake-v0",
                task_id=TASKS[i],
                seed=0,
                agent="test",
                initial_observation="start",
                initial_info={"anchor_obs": data["states"][i][0]},
                turns=turns,
                group_id=GROUPS[i],
            )
        )
    return out


def inputs_of(data, weights=WEIGHTS):
    trajectories = build_trajectories(data)
    return EstimatorInputs.from_trajectories(trajectories, env_rewards=data["env"], hook_weights=weights)


def shaped(data, exclude=None):
    """Per turn: task reward + weight * hook reward for every hook but ``exclude`` (plain loops)."""
    return [
        [
            data["env"][i][t] + sum(w * data["hooks"][h][i][t] for h, w in WEIGHTS.items() if h != exclude)
            for t in range(n)
        ]
        for i, n in enumerate(LENGTHS)
    ]


def totals(rows):
    return [sum(row) for row in rows]


def entropies(data):
    return [[-float(np.mean(lp)) if lp else 0.0 for lp in row] for row in data["logprobs"]]


def igpo_rewards(data, outcome):
    rows = [list(r) for r in data["hooks"]["igpo"]]
    if outcome == "task":
        for row, value, final in zip(rows, totals(shaped(data, exclude="igpo")), FINISHED):
            if final:
                row[-1] = value
    return rows


def expected_vspo(data, clip):
    returns = totals(shaped(data))
    raw = [a[0] for a in E.grpo_advantages(returns, GROUPS, num_turns=LENGTHS)]
    spread = [a for a, g in zip(raw, GROUPS) if np.ptp([x for x, h in zip(raw, GROUPS) if h == g]) > 0]
    rms = float(np.sqrt(np.mean(np.square(spread))))
    return E.vspo_advantages(returns, GROUPS, num_turns=LENGTHS, clip=clip, rms=rms)


# (estimator, estimator_kwargs, the pure function called directly on the raw numbers)
CASES = [
    ("grpo", {"std": "none"}, lambda d: E.grpo_advantages(totals(shaped(d)), GROUPS, num_turns=LENGTHS, std="none")),
    ("rloo", {}, lambda d: E.rloo_advantages(totals(shaped(d)), GROUPS, num_turns=LENGTHS)),
    ("trloo", {}, lambda d: E.trloo_advantages(shaped(d), GROUPS, gamma=GAMMA)),
    (
        "gigpo",
        {"invalid_penalty": 0.1},
        lambda d: E.gigpo_advantages(
            shaped(d), GROUPS, d["states"], gamma=GAMMA, invalid=d["invalid"], invalid_penalty=0.1
        ),
    ),
    (
        "empg",
        {"zeta": 0.05},
        lambda d: E.empg_advantages(
            E.grpo_advantages(totals(shaped(d)), GROUPS, num_turns=LENGTHS), entropies(d), zeta=0.05
        ),
    ),
    (
        "gdpo",
        {},
        lambda d: E.gdpo_advantages(
            [[sum(d["env"][i])] + [sum(d["hooks"][h][i]) for h in WEIGHTS] for i in range(len(LENGTHS))],
            GROUPS,
            weights=[1.0, *WEIGHTS.values()],
            num_turns=LENGTHS,
        ),
    ),
    (
        "rlvmr",
        {},
        lambda d: E.rlvmr_advantages(
            totals(shaped(d, exclude="rlvmr")), d["tags"], d["mr"], GROUPS, format_rewards=d["fmt"], alpha=1 / 1.5
        ),
    ),
    (
        "rlvmr",
        {"mode": "code"},
        lambda d: E.rlvmr_advantages(
            totals(shaped(d, exclude="rlvmr")),
            d["tags"],
            d["mr"],
            GROUPS,
            format_rewards=d["fmt"],
            mode="code",
            weight=0.5,
        ),
    ),
    (
        "oprl",
        {"mode": "rloo"},
        lambda d: E.oprl_advantages(
            totals(shaped(d, exclude="oprl")), d["hooks"]["oprl"], GROUPS, mode="rloo", alpha=2.0
        ),
    ),
    ("igpo", {}, lambda d: E.igpo_advantages(igpo_rewards(d, "task"), GROUPS, gamma=GAMMA, finals=FINISHED)),
    (
        "igpo",
        {"outcome": "hook", "norm": "joint"},
        lambda d: E.igpo_advantages(d["hooks"]["igpo"], GROUPS, gamma=GAMMA, finals=FINISHED, norm="joint"),
    ),
    ("vspo", {"clip": 1.0}, lambda d: expected_vspo(d, clip=1.0)),
]


def test_every_registry_entry_has_a_case():
    assert {name for name, _, _ in CASES} == set(ESTIMATORS)


@pytest.mark.parametrize(("name", "kwargs", "expected"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_registry_equals_the_pure_function(name, kwargs, expected):
    data = make_data()
    inputs = inputs_of(data)
    state = make_state(name, kwargs)
    got = compute_advantages(name, inputs, gamma=GAMMA, kwargs=kwargs, state=state)
    want = expected(data)
    assert [len(a) for a in got] == LENGTHS
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert any(np.abs(a).max() > 1e-6 for a in got)  # the numbers carry signal: the comparison can fail


def test_inputs_read_the_batch_and_hooks_never_touch_the_task_reward():
    data = make_data()
    inputs = inputs_of(data)
    assert inputs.groups == tuple(GROUPS) and inputs.task_ids == tuple(TASKS)
    assert inputs.num_turns == tuple(LENGTHS) and inputs.finals == tuple(FINISHED)
    assert [list(r) for r in inputs.hook_rewards["oprl"]] == data["hooks"]["oprl"]
    assert inputs.hook_details["rlvmr"][0][0]["tag"] == data["tags"][0][0]
    assert [list(r) for r in inputs.anchors] == data["states"]
    assert [list(r) for r in inputs.invalid] == data["invalid"]
    np.testing.assert_allclose(np.concatenate(inputs.entropies), np.concatenate(entropies(data)))
    bare = inputs_of(data, weights={})
    assert inputs.env_rewards == bare.env_rewards == tuple(tuple(r) for r in data["env"])
    assert inputs.outcomes == bare.outcomes == tuple(totals(data["env"]))
    # shaping appears only where an estimator asks for it
    np.testing.assert_allclose(inputs.shaped_returns(), totals(shaped(data)))
    np.testing.assert_allclose(bare.shaped_returns(), totals(data["env"]))
    with pytest.raises(dataclasses_frozen()):
        inputs.groups = ()


def dataclasses_frozen():
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_inputs_reject_an_unscored_batch_and_wrong_reward_shapes():
    data = make_data()
    with pytest.raises(InvalidArgumentError, match=r"turn_rewards\['kl_hook'\].*annotate"):
        EstimatorInputs.from_trajectories(
            build_trajectories(data), env_rewards=data["env"], hook_weights={"kl_hook": 1.0}
        )
    with pytest.raises(InvalidArgumentError, match="one reward per turn"):
        EstimatorInputs.from_trajectories(build_trajectories(data), env_rewards=data["env"][:-1], hook_weights={})


def test_rlvmr_needs_the_hook_details():
    data = make_data()
    trajectories = build_trajectories(data)
    del trajectories[2].turns[1].info["turn_reward_details"]
    inputs = EstimatorInputs.from_trajectories(trajectories, env_rewards=data["env"], hook_weights=WEIGHTS)
    with pytest.raises(InvalidArgumentError, match=r"trajectory 2 turn 1.*lacks \['tag', 'mr_reward'"):
        compute_advantages("rlvmr", inputs, gamma=GAMMA)


def test_gigpo_invalid_penalty_changes_the_advantages():
    inputs = inputs_of(make_data())
    plain = compute_advantages("gigpo", inputs, gamma=GAMMA, kwargs={})
    penalised = compute_advantages("gigpo", inputs, gamma=GAMMA, kwargs={"invalid_penalty": 0.5})
    for a, b, flags in zip(plain, penalised, inputs.invalid):  # every turn whose action was invalid loses
        assert all(b[t] < a[t] for t, bad in enumerate(flags) if bad)
    assert any(any(flags) for flags in inputs.invalid)


def test_igpo_final_turn_is_the_task_return_by_default():
    data = make_data()
    data["hooks"]["igpo"][0][-1] = 123.0  # the hook's own outcome reward, far off the task scale
    inputs = inputs_of(data)
    task = compute_advantages("igpo", inputs, gamma=1.0)
    hook = compute_advantages("igpo", inputs, gamma=1.0, kwargs={"outcome": "hook"})
    want_task = E.igpo_advantages(igpo_rewards(data, "task"), GROUPS, gamma=1.0, finals=FINISHED)
    np.testing.assert_allclose(np.concatenate(task), np.concatenate(want_task))
    assert not np.allclose(np.concatenate(task), np.concatenate(hook))


# ------------------------------------------------------------------ validation
def test_check_estimator_unknown_name_lists_the_valid_ones():
    with pytest.raises(InvalidArgumentError, match="did you mean 'grpo'") as info:
        check_estimator("grpoo", {}, [])
    assert all(name in str(info.value) for name in ESTIMATORS)


def test_check_estimator_bad_kwarg_names_the_accepted_ones():
    with pytest.raises(InvalidArgumentError, match="did you mean 'invalid_penalty'") as info:
        check_estimator("gigpo", {"invalid_penalti": 0.1}, [])
    assert "step_weight" in str(info.value) and "similarity" in str(info.value)
    with pytest.raises(InvalidArgumentError, match="accepted: none"):
        check_estimator("rloo", {"std": "none"}, [])
    with pytest.raises(InvalidArgumentError, match="'anchors' of estimator 'gigpo' is filled by the regis"):
        check_estimator("gigpo", {"anchors": []}, [])
    with pytest.raises(InvalidArgumentError, match="'alpha'.*hook weight"):
        check_estimator("oprl", {"alpha": 2.0}, ["oprl"])
    with pytest.raises(InvalidArgumentError, match=r"'std'.*\('unbiased', 'population', 'none'\).*'biased'"):
        check_estimator("grpo", {"std": "biased"}, [])
    with pytest.raises(InvalidArgumentError, match=r"outcome.*\('task', 'hook'\)"):
        check_estimator("igpo", {"outcome": "env"}, ["igpo"])
    check_estimator("vspo", {"clip": 2.0, "difficulty_weight": 0.5, "rms_decay": 0.8}, [])
    assert "difficulty_weight" in accepted_kwargs("vspo") and "rms" not in accepted_kwargs("vspo")


def test_check_estimator_consumed_hook_missing():
    for name in ("rlvmr", "oprl", "igpo"):
        with pytest.raises(InvalidArgumentError, match=f"consumes the '{name}' hook.*prs_progressive"):
            check_estimator(name, {}, ["prs_progressive"])
        check_estimator(name, {}, [name])
    inputs = inputs_of(make_data(), weights={"rlvmr": 1.0})
    with pytest.raises(InvalidArgumentError, match="consumes the 'oprl' hook"):
        compute_advantages("oprl", inputs, gamma=GAMMA)


def test_every_rule_is_one_sentence_and_says_how_hooks_enter():
    for entry in ESTIMATORS.values():
        assert entry.rule and "hook" in entry.rule and entry.rule.count(". ") == 0


# ------------------------------------------------------------------ VSPO
def test_vspo_task_value_shape():
    p = np.linspace(0, 1, 101)
    v = E.vspo_task_value(p, difficulty_weight=1.0)
    assert v[0] == 0 and v[-1] == 0 and np.all(v[1:-1] > 0)
    assert 0 < p[np.argmax(v)] < 0.5  # the peak leans to the harder side
    for q in (0.1, 0.3, 0.45):  # of two equally uncertain tasks, the harder is worth more
        assert E.vspo_task_value(q) > E.vspo_task_value(1 - q)
    sym = E.vspo_task_value(p, difficulty_weight=0.0)
    np.testing.assert_allclose(sym, sym[::-1], atol=1e-12)  # d = 0: the Bernoulli variance alone
    assert E.vspo_task_value(0.25) == pytest.approx(0.25 * 0.75 * 1.75)


def recorded_state(**kw):
    state = VSPOState(**kw)
    state.record(
        ["mastered"] * 4 + ["hopeless"] * 4 + ["mixed"] * 4, list("aaaabbbbcccc"), [1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 1]
    )
    return state


def test_vspo_pick_is_deterministic_per_rng_and_skips_value_zero_tasks():
    candidates = ["mastered", "hopeless", "mixed", "unseen"]
    state = recorded_state(prior=0.0)  # raw pass rates: mastered 1, hopeless 0 -> value 0
    first = state.pick(candidates, 5, np.random.default_rng(3))
    assert first == state.pick(candidates, 5, np.random.default_rng(3))
    for seed in range(20):
        picks = state.pick(candidates, 5, np.random.default_rng(seed))
        assert len(picks) == 5 and set(picks) <= {"mixed", "unseen"}
    assert sorted(state.pick(candidates, 2, np.random.default_rng(0))) == ["mixed", "unseen"]  # no repeats
    # every value 0: uniform over the candidates
    draws = state.pick(["mastered", "hopeless"], 400, np.random.default_rng(1))
    assert 150 < draws.count("mastered") < 250
    # Beta(1,1) smoothing: never exactly 0, but the uncertain task is drawn far more often
    smooth = recorded_state()
    draws = smooth.pick(["mastered", "mixed"], 2000, np.random.default_rng(2))
    assert draws.count("mixed") > 1.5 * draws.count("mastered") > 0
    assert smooth.pass_rate("mastered") == pytest.approx(5 / 6) and smooth.pass_rate("unseen") == 0.5


def test_vspo_memory_follows_the_policy():
    state = VSPOState(memory=0.5)
    state.record(["t"] * 2, ["g"] * 2, [0, 0])
    state.record(["t"] * 2, ["g"] * 2, [1, 1])
    assert state.pass_rate("t") == pytest.approx((2 + 1) / (3 + 2))  # old evidence counts half


def test_vspo_clipping_bounds_advantages():
    outcomes = [10.0, 0, 0, 0, 0, 0, 0, 0]
    plain = np.concatenate(E.vspo_advantages(outcomes, ["g"] * 8, clip=None, std="none"))
    clipped = np.concatenate(E.vspo_advantages(outcomes, ["g"] * 8, clip=2.0, rms=1.5, std="none"))
    assert plain.max() == pytest.approx(8.75) and np.abs(clipped).max() == pytest.approx(3.0)
    np.testing.assert_allclose(clipped[1:], plain[1:])  # inside the bound nothing changes
    # through the registry the running RMS is used: clip=1 changes GRPO's advantages on the test batch
    data = make_data()
    grpo = E.grpo_advantages(totals(shaped(data)), GROUPS, num_turns=LENGTHS)
    vspo = compute_advantages("vspo", inputs_of(data), gamma=1.0, kwargs={"clip": 1.0}, state=VSPOState())
    assert not np.allclose(np.concatenate(grpo), np.concatenate(vspo))
    with pytest.raises(InvalidArgumentError, match="clip > 0"):
        E.vspo_advantages(outcomes, ["g"] * 8, clip=-1.0, rms=1.0)


def test_vspo_state_rms_zero_variance_groups_and_round_trip():
    data = make_data()
    data["env"][3:] = [[1.0], [0.5, 0.5], [0.0, 1.0]]  # group g1: every return 1
    for h in data["hooks"].values():
        h[3:] = [[0.0] * n for n in LENGTHS[3:]]
    inputs = inputs_of(data)
    state = ESTIMATORS["vspo"].new_state(rms_decay=0.5)
    assert state.zero_variance_groups(inputs) == ["g1"]
    assert state.rms is None
    compute_advantages("vspo", inputs, gamma=1.0, state=state)
    first = state.rms
    assert first == pytest.approx(np.sqrt(2 / 3))  # a group of 3 with spread, unbiased std: sqrt((n-1)/n)
    state.observe_advantages([2.0, -2.0, 0.0], ["x", "x", "y"])
    assert state.rms == pytest.approx(np.sqrt(0.5 * 2 / 3 + 0.5 * 4.0))
    state.record(inputs.task_ids, inputs.groups, inputs.outcomes)
    copy = VSPOState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert copy.to_dict() == state.to_dict()
    assert copy.pick(["t0", "t1", "new"], 3, np.random.default_rng(5)) == state.pick(
        ["t0", "t1", "new"], 3, np.random.default_rng(5)
    )
    assert state.metrics()["vspo/zero_variance_fraction"] == pytest.approx(0.5)  # g1's task returns tie
    assert set(state.metrics()) >= {"vspo/tasks_tracked", "vspo/rms", "vspo/mean_task_value"}
    with pytest.raises(InvalidArgumentError, match="needs state="):
        compute_advantages("vspo", inputs, gamma=1.0)
    assert make_state("grpo") is None
