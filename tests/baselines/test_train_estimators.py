"""`train` end to end with every estimator and hook, on a tiny random model (issue 16).

Each run is 1-2 PPO steps of 2 tasks x 2-4 rollouts on :class:`pick_env.PickEnv` (2 turns, a choice among 8
words, half of them rewarded). The trainer's ``on_step`` seam hands over the batch, the inputs and the
advantages it trained on; each test recomputes the advantages from the trajectories with the pure functions
of ``baselines/estimators.py`` (the rule of each estimator written out as plain loops here).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from agentgym.baselines import estimators as E  # noqa: E402
from agentgym.baselines.train_pg import Args, load_config, train  # noqa: E402
from agentgym.error import InvalidArgumentError  # noqa: E402
from agentgym.wrappers.lm import build_tiny_causal_lm  # noqa: E402

PICK = "pick_env:PickEnv"
GAMMA = 0.9


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    torch.set_num_threads(1)
    return str(build_tiny_causal_lm(tmp_path_factory.mktemp("tiny_estimators_lm")))


@dataclasses.dataclass
class Step:
    step: int
    trajectories: list
    inputs: object
    advantages: list
    hooks: list


def run(tiny_path, tmp_path, *, watch=None, **kwargs):
    """``train`` for ``num_steps`` (default 1); returns (history, [Step per step]). ``watch(step, hooks)``
    runs inside ``on_step`` (to read a hook's state before the update)."""
    seen: list[Step] = []

    def on_step(step, trajectories, inputs, advantages, hooks):
        if watch is not None:
            watch(step, hooks)
        seen.append(Step(step, copy.deepcopy(trajectories), inputs, [a.copy() for a in advantages], hooks))

    base = dict(
        env_id=PICK,
        env_kwargs={"turns": 2},
        task_ids=["pick/1", "pick/2"],
        model=tiny_path,
        in_process=True,
        num_workers=4,
        tasks_per_step=2,
        group_size=2,
        output_format="choice",
        history=0,
        output_dir=str(tmp_path),
        run_name="run",
        save_every=0,
        tensorboard=False,
        progress=False,
        minibatch_rows=16,
        micro_batch_rows=8,
        lora_target_modules=["q_proj", "v_proj"],
        learning_rate=1e-2,
        gamma=GAMMA,
        num_steps=1,
        seed=0,
    )
    base.update(kwargs)
    history = train(Args(**base), on_step=on_step).history
    return history, seen


# --------------------------------------------------------------------------- the reference, from trajectories
def _groups(batch):
    return [t.group_id for t in batch]


def _turns(batch):
    return [len(t.turns) for t in batch]


def _shaped(batch, weights, exclude=None):
    """Per turn: the env reward (the task reward here) + weight * hook reward of each hook but ``exclude``."""
    return [
        [turn.reward + sum(w * turn.turn_rewards[h] for h, w in weights.items() if h != exclude) for turn in t.turns]
        for t in batch
    ]


def _sums(rows):
    return [sum(r) for r in rows]


def _details(batch, hook, key):
    return [[turn.info["turn_reward_details"][hook][key] for turn in t.turns] for t in batch]


def _vspo(batch, weights):
    """Step 0 of VSPO: the running RMS starts as the RMS of the GRPO advantages of groups with spread."""
    returns, groups = _sums(_shaped(batch, weights)), _groups(batch)
    raw = [a[0] for a in E.grpo_advantages(returns, groups)]
    spread = [a for g, a in zip(groups, raw) if np.ptp([r for h, r in zip(groups, returns) if h == g]) > 0]
    rms = float(np.sqrt(np.mean(np.square(spread)))) if spread else None
    return E.vspo_advantages(returns, groups, num_turns=_turns(batch), rms=rms)


def _igpo(batch, weights):
    rows = [[turn.turn_rewards["igpo"] for turn in t.turns] for t in batch]
    finals = [t.turns[-1].terminated or t.turns[-1].truncated for t in batch]
    for row, value, final in zip(rows, _sums(_shaped(batch, weights, exclude="igpo")), finals):
        if final:
            row[-1] = value  # the final turn's reward is the task return (the registry's default outcome)
    return E.igpo_advantages(rows, _groups(batch), gamma=GAMMA, finals=finals)


EXPECTED = {
    "grpo": lambda b, w, kw: E.grpo_advantages(_sums(_shaped(b, w)), _groups(b), num_turns=_turns(b), **kw),
    "rloo": lambda b, w, kw: E.rloo_advantages(_sums(_shaped(b, w)), _groups(b), num_turns=_turns(b)),
    "trloo": lambda b, w, kw: E.trloo_advantages(_shaped(b, w), _groups(b), gamma=GAMMA),
    "gigpo": lambda b, w, kw: E.gigpo_advantages(
        _shaped(b, w),
        _groups(b),
        E.from_trajectories(b)["anchors"],
        gamma=GAMMA,
        invalid=[[not turn.info["action_valid"] for turn in t.turns] for t in b],
        **kw,
    ),
    "empg": lambda b, w, kw: E.empg_advantages(
        E.grpo_advantages(_sums(_shaped(b, w)), _groups(b), num_turns=_turns(b)),
        [[-float(np.mean(turn.response_logprobs)) for turn in t.turns] for t in b],
    ),
    "gdpo": lambda b, w, kw: E.gdpo_advantages(
        [
            [sum(turn.reward for turn in t.turns)] + [sum(turn.turn_rewards[h] for turn in t.turns) for h in w]
            for t in b
        ],
        _groups(b),
        weights=[1.0, *w.values()],
        num_turns=_turns(b),
    ),
    "rlvmr": lambda b, w, kw: E.rlvmr_advantages(
        _sums(_shaped(b, w, exclude="rlvmr")),
        _details(b, "rlvmr", "tag"),
        _details(b, "rlvmr", "mr_reward"),
        _groups(b),
        format_rewards=_details(b, "rlvmr", "format_reward"),
        alpha=1 / (1 + w["rlvmr"]),
        weight=w["rlvmr"],
    ),
    "oprl": lambda b, w, kw: E.oprl_advantages(
        _sums(_shaped(b, w, exclude="oprl")),
        [[turn.turn_rewards["oprl"] for turn in t.turns] for t in b],
        _groups(b),
        alpha=w["oprl"],
    ),
    "igpo": lambda b, w, kw: _igpo(b, w),
    "vspo": lambda b, w, kw: _vspo(b, w),
}

#: (estimator, hooks, estimator_kwargs): every estimator, each consumed hook, a rule hook as shaping.
CASES = [
    ("grpo", [{"name": "prs_progressive", "weight": 0.5}], {"std": "none"}),
    ("rloo", [], {}),
    ("trloo", [{"name": "rlvmr", "weight": 0.3}], {}),
    ("gigpo", [], {"step_weight": 1.0, "invalid_penalty": 0.2}),
    ("empg", [], {}),
    ("gdpo", [{"name": "prs_progressive", "weight": 0.5}], {}),
    ("rlvmr", [{"name": "rlvmr", "weight": 1.0}], {}),
    ("oprl", [{"name": "oprl", "weight": 0.5}], {}),
    ("igpo", [{"name": "igpo", "weight": 1.0}], {}),
    ("vspo", [], {}),
]


def test_every_estimator_has_a_case_and_is_listed_in_args():
    import inspect

    from agentgym.baselines import train_pg
    from agentgym.baselines.advantages import ESTIMATORS

    assert {case[0] for case in CASES} == set(ESTIMATORS) == set(EXPECTED)
    source = inspect.getsource(train_pg.Args)
    doc = source[source.index("estimator: str") : source.index("estimator_kwargs:")]
    assert all(name in doc for name in ESTIMATORS), doc  # the --help text lists every valid name


@pytest.mark.parametrize("estimator, hooks, kwargs", CASES, ids=[case[0] for case in CASES])
def test_trainer_advantages_equal_the_pure_function(tiny_path, tmp_path, estimator, hooks, kwargs):
    history, seen = run(tiny_path, tmp_path, estimator=estimator, hooks=hooks, estimator_kwargs=kwargs)
    [step] = seen
    weights = {spec["name"]: spec["weight"] for spec in hooks}
    want = EXPECTED[estimator](step.trajectories, weights, kwargs)
    assert [list(a) for a in step.advantages] == [pytest.approx(list(b), abs=1e-9) for b in want]
    assert any(np.any(a != 0) for a in step.advantages)  # the batch carried a signal (the check can fail)
    assert len(step.trajectories) == 4 and all(len(t.turns) == 2 for t in step.trajectories)
    for name in weights:  # scored by the hook, logged, and the env rewards untouched by it
        assert all(name in turn.turn_rewards for t in step.trajectories for turn in t.turns)
        assert f"hooks/{name}/mean" in history[0]
    assert np.isfinite(history[0]["train/loss"])


def test_hook_rewards_stay_out_of_the_env_return_and_mean_reward(tiny_path, tmp_path):
    # groups of 4, so that some group's hook returns differ (the last assertion needs that spread)
    bare, seen_bare = run(tiny_path, tmp_path / "bare", estimator="grpo", group_size=4)
    said = {"name": "pick_env:SaidHook", "weight": 5.0, "kwargs": {"words": ["look", "east"]}}
    hooked, seen_hooked = run(tiny_path, tmp_path / "hooked", estimator="grpo", hooks=[said], group_size=4)
    assert hooked[0]["hooks/said/mean"] > 0  # the hook paid something ...
    for key in ("rollout/episode_return", "rollout/task_return", "rollout/success_rate"):
        assert hooked[0][key] == bare[0][key], key  # ... that no env-side metric shows
    batch = seen_hooked[0].trajectories
    assert hooked[0]["rollout/task_return"] == pytest.approx(np.mean([t.total_reward for t in batch]))
    assert list(seen_hooked[0].inputs.outcomes) == list(seen_bare[0].inputs.outcomes)
    # GRPO uses the hook as shaping: same episodes, other advantages where a group's hook returns differ
    said_returns = {}
    for t in batch:
        said_returns.setdefault(t.group_id, set()).add(sum(turn.turn_rewards.get("said", 0.0) for turn in t.turns))
    assert any(len(values) > 1 for values in said_returns.values()), said_returns
    assert not all(np.allclose(a, b) for a, b in zip(seen_hooked[0].advantages, seen_bare[0].advantages))


def test_gigpo_invalid_penalty_changes_the_advantages(tiny_path, tmp_path):
    """Free-text replies from a random model are mostly not among the words: invalid turns."""
    common = dict(estimator="gigpo", output_format="action", max_new_tokens=3)
    _, plain = run(tiny_path, tmp_path / "a", estimator_kwargs={"invalid_penalty": 0.0}, **common)
    _, penal = run(tiny_path, tmp_path / "b", estimator_kwargs={"invalid_penalty": 0.5}, **common)
    invalid = [[not turn.info["action_valid"] for turn in t.turns] for t in plain[0].trajectories]
    assert any(any(row) for row in invalid)
    actions = [[turn.action for turn in t.turns] for t in plain[0].trajectories]
    assert actions == [[turn.action for turn in t.turns] for t in penal[0].trajectories]  # same episodes
    a, b = np.concatenate(plain[0].advantages), np.concatenate(penal[0].advantages)
    assert not np.allclose(a, b)
    want = EXPECTED["gigpo"](penal[0].trajectories, {}, {"invalid_penalty": 0.5})
    assert np.allclose(b, np.concatenate(want))


def test_oprl_prm_learns_after_each_step(tiny_path, tmp_path):
    before: dict[int, list] = {}

    def watch(step, hooks):
        prm = hooks[0].hook.prm
        before[step] = [p.detach().clone() for p in prm.parameters() if p.requires_grad]

    history, seen = run(
        tiny_path,
        tmp_path,
        watch=watch,
        estimator="oprl",
        num_steps=2,
        group_size=4,
        hooks=[{"name": "oprl", "weight": 0.5, "kwargs": {"lr": 1e-2}}],
    )
    first = seen[0].trajectories  # the PRM needs a success and a failure in one group to have a DPO pair
    assert any(len({t.total_reward > 0 for t in first if t.group_id == g}) == 2 for g in _groups(first))
    changed = [not torch.equal(a, b) for a, b in zip(before[0], before[1])]
    assert any(changed), "the PRM's parameters did not move after the first policy update"
    logged = {key for key in history[0] if key.startswith("hooks/oprl/") and key != "hooks/oprl/mean"}
    assert logged, history[0]  # on_update's metrics (the DPO loss) are logged under hooks/oprl/


def test_model_based_hook_from_a_local_model_folder(tiny_path, tmp_path):
    """``model:`` builds IGPO from that folder, not from the policy (the same weights, another object)."""
    history, seen = run(tiny_path, tmp_path, estimator="igpo", hooks=[{"name": "igpo", "model": tiny_path}])
    hook = seen[0].hooks[0].hook
    assert hook.model is not None and not hasattr(hook.model, "peft_config")  # not the LoRA-wrapped policy
    assert "hooks/igpo/mean" in history[0]
    want = EXPECTED["igpo"](seen[0].trajectories, {"igpo": 1.0}, {})
    assert [list(a) for a in seen[0].advantages] == [pytest.approx(list(b)) for b in want]


def test_prs_stage_advances_on_measured_success(tiny_path, tmp_path):
    stages: dict[int, int] = {}

    def watch(step, hooks):
        stages[step] = hooks[0].hook.stage

    history, _ = run(
        tiny_path,
        tmp_path,
        watch=watch,
        estimator="grpo",
        num_steps=2,
        hooks=[{"name": "prs_progressive", "kwargs": {"threshold": 0.9}}],
    )
    # choice replies are always well formed and valid: format, then validity, is mastered at once
    assert stages == {0: 0, 1: 1}
    assert [m["hooks/prs_progressive/stage"] for m in history] == [1.0, 2.0]


def test_vspo_replaces_groups_without_reward_spread(tiny_path, tmp_path):
    """Task pick/0 pays nothing: its group never has spread, so VSPO replaces it every step."""
    history, seen = run(tiny_path, tmp_path, estimator="vspo", task_ids=["pick/0", "pick/1"], num_steps=2)
    assert all(m["vspo/replaced_groups"] >= 1 for m in history)
    for step in seen:
        groups = _groups(step.trajectories)
        assert len(groups) == 4 and sorted(groups.count(g) for g in set(groups)) == [2, 2]
    assert history[-1]["vspo/tasks_tracked"] >= 1
    want = EXPECTED["vspo"](seen[0].trajectories, {}, {})
    assert [list(a) for a in seen[0].advantages] == [pytest.approx(list(b)) for b in want]


# --------------------------------------------------------------------------- bad configs: no model loads
BAD_CONFIGS = [
    ({"estimator": "grpoo"}, r"unknown estimator 'grpoo'.*did you mean 'grpo'.*gigpo.*vspo"),
    ({"hooks": [{"name": "rlvmrr"}]}, r"hooks\[0\].*unknown hook 'rlvmrr'.*did you mean 'rlvmr'.*prs_progressive"),
    ({"hooks": [{"name": "no_such_module:Hook"}]}, r"hooks\[0\]: cannot import hook 'no_such_module:Hook'"),
    ({"hooks": [{"name": PICK}]}, r"'pick_env:PickEnv' is not a TurnRewardHook subclass"),
    ({"hooks": [{"name": "rlvmr", "kwargs": {"formatt": "paper"}}]}, r"unknown kwarg 'formatt'.*'format'"),
    ({"hooks": [{"name": "rlvmr"}, {"name": "rlvmr"}]}, r"each hook may appear once, got \['rlvmr'\]"),
    (
        {"hooks": [{"name": "oprl", "kwargs": {"bta": 0.1}}], "estimator": "oprl"},
        r"hooks\[0\] \(oprl\): unknown kwarg 'bta'.*beta.*trajectory_score",
    ),
    ({"hooks": [{"name": "rlvmr", "wieght": 1.0}]}, r"unknown key 'wieght'.*did you mean 'weight'"),
    ({"hooks": [{"name": "rlvmr", "model": "/some/model"}]}, r"'model' is only for model-based hooks"),
    (
        {"hooks": [{"name": "igpo", "model": "/no/such/model"}], "estimator": "igpo"},
        r"hooks\[0\] \(igpo\): 'model' must be a local model folder.*'/no/such/model'",
    ),
    (
        {"estimator": "gigpo", "estimator_kwargs": {"invalid_penalti": 0.1}},
        r"'invalid_penalti'.*did you mean 'invalid_penalty'",
    ),
    ({"estimator": "rlvmr"}, r"consumes the 'rlvmr' hook"),
    ({"estimator_kwargs": ["std", "none"]}, r"'estimator_kwargs' must be a mapping"),
    ({"estimator": "igpo", "hooks": [{"name": "rlvmr"}]}, r"consumes the 'igpo' hook.*rlvmr"),
    (
        {"estimator": "oprl", "hooks": [{"name": "oprl", "kwargs": {"update": "before"}}]},
        r"hooks\[0\] \(oprl\): kwarg 'update' must be one of \['after'\], got 'before'",
    ),
    (
        {"hooks": [{"name": "prs_progressive", "kwargs": {"schedule": "weekly"}}]},
        r"kwarg 'schedule' must be one of \['steps', 'mastery'\]",
    ),
]


@pytest.mark.parametrize(
    "config, match", BAD_CONFIGS, ids=[f"{m.split(chr(39))[1]}-{k}" for k, (_, m) in enumerate(BAD_CONFIGS)]
)
def test_bad_config_fails_before_any_model_loads(monkeypatch, tmp_path, config, match):
    import agentgym.wrappers.lm as lm

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the config was checked")

    monkeypatch.setattr(lm, "load_causal_lm", no_model)
    with pytest.raises(InvalidArgumentError, match=match):
        load_config(dict(config))
    with pytest.raises(InvalidArgumentError, match=match):  # Args built in code are checked by train too
        train(Args(output_dir=str(tmp_path), **config))


# --------------------------------------------------------------------------- the example configs
CONFIGS = sorted(
    path
    for path in (Path(__file__).resolve().parents[2] / "baselines" / "configs").glob("*.yaml")
    if "algo: pg" in path.read_text()
)  # the PPO-clip configs (textworld_drrn.yaml: algo drrn)
#: What issue 16 asks of each family's config: (estimator, hooks).
PAIRINGS = {
    "scienceworld": ("rlvmr", ["rlvmr"]),
    "alfworld": ("gigpo", []),
    "webshop": ("oprl", ["oprl"]),
    "textworld": ("igpo", ["igpo"]),
    "swegym": ("trloo", ["prs_progressive"]),
}


def _config(path):
    import yaml

    config = yaml.safe_load(path.read_text())
    assert config.pop("algo") == "pg"
    return config


def test_family_configs_pair_estimators_and_hooks():
    for stem, (estimator, hooks) in PAIRINGS.items():
        args = load_config(_config(CONFIGS[0].parent / f"{stem}.yaml"))
        assert args.estimator == estimator and [h["name"] for h in args.hooks] == hooks, stem
    alfworld = load_config(_config(CONFIGS[0].parent / "alfworld.yaml"))
    assert alfworld.estimator_kwargs.get("invalid_penalty", 0) > 0


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_estimator_and_hooks_run_on_a_tiny_model(tiny_path, tmp_path, path):
    """Each config's estimator, estimator_kwargs, hooks, reward weights and reply format, for 2 steps on
    TextWorld's coin collector with a tiny random model instead of the family's env and SmolLM2."""
    config = _config(path)
    keep = (
        "estimator",
        "estimator_kwargs",
        "hooks",
        "gamma",
        "output_format",
        "near_miss",
        "near_miss_cutoff",
        "env_reward_weight",
        "system_prompt",
        "lora",
        "kl_coef",
    )
    settings = {key: config[key] for key in keep if key in config}
    if (config.get("info_reward") or "").startswith("textworld."):  # TextWorld's shaping signal
        settings.update(info_reward=config["info_reward"], info_reward_weight=config.get("info_reward_weight", 1.0))
    args = Args(
        env_id="agentgym/TextWorld-v0",
        env_kwargs={"kinds": ["coin_collector"]},
        max_turns=3,
        task_ids=["coin_collector/1000", "coin_collector/1001"],
        model=tiny_path,
        in_process=True,
        num_workers=4,
        tasks_per_step=2,
        group_size=2,
        max_new_tokens=6,
        history=0,
        max_prompt_tokens=256,
        num_steps=2,
        output_dir=str(tmp_path),
        run_name="run",
        save_every=0,
        tensorboard=False,
        progress=False,
        minibatch_rows=16,
        micro_batch_rows=8,
        lora_target_modules=["q_proj", "v_proj"],
        **settings,
    )
    history = train(args).history
    assert len(history) == 2 and all(np.isfinite(m["train/loss"]) for m in history)
    for hook in config.get("hooks", []):
        assert f"hooks/{hook['name']}/mean" in history[-1]


def test_vspo_state_resumes_exactly(tiny_path, tmp_path):
    """The checkpoint holds VSPO's pass rates and running RMS: a resumed step equals the uninterrupted one."""
    common = dict(estimator="vspo", task_ids=["pick/0", "pick/1", "pick/2"], estimator_kwargs={"clip": 1.0})
    full, _ = run(tiny_path, tmp_path / "a", num_steps=3, save_every=2, **common)
    checkpoint = tmp_path / "a" / "run" / "checkpoint-000002"
    resumed, _ = run(tiny_path, tmp_path / "b", num_steps=3, resume=str(checkpoint), **common)
    for key in ("train/loss", "rollout/task_return", "vspo/rms", "vspo/tasks_tracked", "vspo/replaced_groups"):
        assert resumed[0][key] == full[2][key], key
    assert full[2]["vspo/tasks_tracked"] >= 2


def test_hook_states_resume_exactly(tiny_path, tmp_path):
    """OPRL's PRM (weights, optimizer, reference) and PRS's stage are in the checkpoint (``hooks.pt``): a
    resumed step equals the uninterrupted one, hook metrics included."""
    common = dict(
        estimator="oprl",
        group_size=4,
        hooks=[
            {"name": "oprl", "weight": 0.5, "kwargs": {"lr": 1e-2}},
            {"name": "prs_progressive", "weight": 0.1, "kwargs": {"threshold": 0.9}},
        ],
    )
    full, _ = run(tiny_path, tmp_path / "a", num_steps=3, save_every=2, **common)
    checkpoint = tmp_path / "a" / "run" / "checkpoint-000002"
    assert (checkpoint / "hooks.pt").exists()
    resumed, _ = run(tiny_path, tmp_path / "b", num_steps=3, resume=str(checkpoint), **common)
    for key in ("train/loss", "hooks/oprl/mean", "hooks/prs_progressive/stage", "hooks/prs_progressive/mean"):
        assert resumed[0][key] == full[2][key], key
    assert full[2]["hooks/prs_progressive/stage"] == 2.0  # the stage was restored, not rebuilt at 0
