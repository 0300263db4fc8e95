"""The trainer's side of the hooks: ``requires_policy``, ``from_policy`` (plain and LoRA policies) and
``on_update`` (OPRL's DPO step and reference sync, PRS's curriculum), on a tiny random local model."""

from __future__ import annotations

import copy
import inspect
import math
import warnings

import pytest
from hook_helpers import make_trajectory

torch = pytest.importorskip("torch")

from agentgym.error import InvalidArgumentError  # noqa: E402
from agentgym.wrappers import (  # noqa: E402
    IGPOHook,
    OPRLHook,
    ProgressiveRewardHook,
    RLVMRHook,
    TurnRewardHook,
    annotate,
)
from agentgym.wrappers.lm import chat_tokens, next_token_logprobs  # noqa: E402


def batch(with_pair=True):
    """Group g: a success and (``with_pair``) a failure; group h: a lone success (no pair)."""
    win = make_trajectory(["open chest", "take coin"], won=True, rewards=[0, 1], group="g", episode_id="w")
    lose = make_trajectory(["go east", "eat key"], won=False, group="g", episode_id="l")
    alone = make_trajectory(["look"], won=True, rewards=[1], group="h", episode_id="x")
    return [win, lose, alone] if with_pair else [win, alone]


def action_logprobs(model, tokenizer, trajectory):
    """Every next-token log-prob of the rendered trajectory (one plain forward pass, no grad)."""
    chat = chat_tokens(trajectory, tokenizer)
    ids = torch.tensor([chat.ids])
    with torch.no_grad():
        return next_token_logprobs(model, ids, torch.ones_like(ids))[0]


def snapshot(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def changed(model, before):
    return {name for name, p in model.named_parameters() if not torch.equal(p.detach(), before[name])}


def policy_update(policy, scale=0.05, seed=1):
    """Stand-in for the trainer's optimiser step: move the trainable weights in place."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in policy.parameters():
            if p.requires_grad:
                p.add_(scale * torch.randn(p.shape, generator=generator))


def lora_policy(model, dropout=0.0):
    """A peft LoRA policy around a copy of ``model``, with non-zero adapters (so they change the log-probs)."""
    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(
        r=4, lora_alpha=8, lora_dropout=dropout, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"
    )
    policy = peft.get_peft_model(copy.deepcopy(model), config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.copy_(0.2 * torch.randn(p.shape, generator=generator))
    return policy


# ------------------------------------------------------------------ flags and signatures
def test_requires_policy_flags_and_introspectable_kwargs():
    assert IGPOHook.requires_policy and OPRLHook.requires_policy
    assert not (TurnRewardHook.requires_policy or RLVMRHook.requires_policy)
    assert not ProgressiveRewardHook.requires_policy
    for cls in (IGPOHook, OPRLHook):
        params = list(inspect.signature(cls.from_policy).parameters.values())
        assert [p.name for p in params[:2]] == ["policy", "tokenizer"]
        assert params[-1].kind is inspect.Parameter.VAR_KEYWORD  # forwarded to the constructor
        init = list(inspect.signature(cls.__init__).parameters.values())[3:]  # after self, model, tokenizer
        assert init and all(p.kind is p.KEYWORD_ONLY and p.default is not p.empty for p in init)
    assert "prm_params" in inspect.signature(OPRLHook.from_policy).parameters


def test_from_policy_refusals(tiny_lm):
    model, tokenizer = tiny_lm
    with pytest.raises(InvalidArgumentError, match="update must be 'after'"):
        OPRLHook.from_policy(model, tokenizer, update="before")
    with pytest.raises(InvalidArgumentError, match="needs a peft"):
        OPRLHook.from_policy(model, tokenizer, prm_params="adapters")
    with pytest.raises(InvalidArgumentError, match="prm_params"):
        OPRLHook.from_policy(model, tokenizer, prm_params="some")


# ------------------------------------------------------------------ OPRL on_update
def test_oprl_on_update_trains_the_prm_then_syncs_the_reference(tiny_lm):
    model, tokenizer = tiny_lm
    policy = copy.deepcopy(model)
    hook = OPRLHook.from_policy(policy, tokenizer, lr=1e-3, beta=0.5)
    assert hook.policy is policy and hook.prm is not policy and hook.reference_model is not policy
    trajectories = batch()
    annotate(trajectories, [hook])  # the trainer scores with the PRM first: PRM == reference, rewards 0
    prm_before, policy_before = snapshot(hook.prm), snapshot(policy)
    policy_update(policy)  # ... then updates the policy ...
    updated_policy = snapshot(policy)
    out = hook.on_update(1, trajectories, {})  # ... then calls on_update
    assert out == {"pairs": 1.0, "prm_loss": pytest.approx(math.log(2)), "mean_step_reward": 0.0}
    assert changed(hook.prm, prm_before)  # one DPO step moved the PRM
    assert not changed(policy, updated_policy) and changed(policy, policy_before)  # the PRM is not the policy
    for trajectory in trajectories:  # the reference is now the updated policy
        assert torch.equal(
            action_logprobs(hook.reference_model, tokenizer, trajectory),
            action_logprobs(policy, tokenizer, trajectory),
        )
    assert all(isinstance(v, float) for v in out.values())


def test_oprl_on_update_without_a_pair_leaves_the_prm(tiny_lm):
    model, tokenizer = tiny_lm
    hook = OPRLHook.from_policy(copy.deepcopy(model), tokenizer, lr=1e-3)
    trajectories = batch(with_pair=False)
    annotate(trajectories, [hook])
    for trajectory in trajectories:
        trajectory.turns[0].turn_rewards["oprl"] = 0.5  # on_update reports what the estimator saw
    before = snapshot(hook.prm)
    out = hook.on_update(1, trajectories, {})
    assert out == {"pairs": 0.0, "mean_step_reward": pytest.approx((0.5 + 0.0 + 0.5) / 3)}
    assert not changed(hook.prm, before)


def test_oprl_recorded_reference_on_update_trains_without_a_reference_model(tiny_lm):
    model, tokenizer = tiny_lm
    trajectories = batch()
    for trajectory in trajectories:
        for turn in trajectory.turns:
            turn.response_logprobs = [-1.0]
    hook = OPRLHook.from_policy(copy.deepcopy(model), tokenizer, reference="recorded", lr=1e-3)
    assert hook.reference_model is None
    before = snapshot(hook.prm)
    assert hook.on_update(1, trajectories, {})["pairs"] == 1.0 and changed(hook.prm, before)


# ------------------------------------------------------------------ a LoRA (peft) policy
def test_oprl_from_a_lora_policy(tiny_lm):
    model, tokenizer = tiny_lm
    policy = lora_policy(model)
    trajectory = batch()[0]
    hook = OPRLHook.from_policy(policy, tokenizer, lr=1e-3, beta=0.5)
    # the PRM is a full model (adapters merged), every weight trainable, and starts as the policy
    assert not hasattr(hook.prm, "peft_config") and all(p.requires_grad for p in hook.prm.parameters())
    assert action_logprobs(hook.prm, tokenizer, trajectory) == pytest.approx(
        action_logprobs(policy, tokenizer, trajectory), abs=1e-5
    )
    assert hook.score([trajectory])[0] == pytest.approx([0.0, 0.0], abs=1e-5)
    before = snapshot(hook.prm)
    policy_update(policy)  # only the adapters move, as LoRA training does
    out = hook.on_update(1, batch(), {})
    assert out["pairs"] == 1.0 and changed(hook.prm, before)
    assert any("layers.0.mlp" in name for name in changed(hook.prm, before))  # not just the adapters' targets
    assert torch.equal(  # the reference follows the policy, adapters included
        action_logprobs(hook.reference_model, tokenizer, trajectory), action_logprobs(policy, tokenizer, trajectory)
    )


def test_oprl_adapters_only_prm(tiny_lm):
    model, tokenizer = tiny_lm
    policy = lora_policy(model)
    hook = OPRLHook.from_policy(policy, tokenizer, prm_params="adapters", lr=1e-3)
    before, policy_before = snapshot(hook.prm), snapshot(policy)
    hook.on_update(1, batch(), {})
    moved = changed(hook.prm, before)
    assert moved and all("lora_" in name for name in moved)
    assert not changed(policy, policy_before)  # the PRM's adapters are its own copy


def test_igpo_from_a_lora_policy_scores_with_the_live_adapters(tiny_lm):
    model, tokenizer = tiny_lm
    policy = lora_policy(model, dropout=0.5)  # dropout: scores would be random outside eval mode
    trajectories = [make_trajectory(["search coin", "<answer>the coin</answer>"], truth="the coin")]
    hook = IGPOHook.from_policy(policy, tokenizer)
    assert hook.model is policy
    policy.train()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # e.g. a KV cache passed under a deprecated name
        beliefs = hook.beliefs(trajectories)[0]
    assert policy.training
    merged = copy.deepcopy(policy).merge_and_unload().eval()
    assert beliefs == pytest.approx(IGPOHook(merged, tokenizer).beliefs(trajectories)[0], abs=1e-5)
    policy_update(policy)  # the hook sees the updated policy (no copy)
    after = hook.beliefs(trajectories)[0]
    assert after != pytest.approx(beliefs, abs=1e-4)


# ------------------------------------------------------------------ PRS curriculum through on_update
def test_prs_on_update_advances_on_schedule():
    hook = ProgressiveRewardHook(schedule="steps", boundaries=(2, 4))
    trajectories = [make_trajectory(["go east", "take coin"], valid=[True, False])]
    stages = [hook.on_update(step, trajectories, {})["stage"] for step in range(1, 6)]
    assert stages == [0.0, 1.0, 1.0, 2.0, 2.0]
    assert hook.weights() == (0.25, 0.25, 1.0)


def test_prs_on_update_advances_on_measured_stage_success():
    hook = ProgressiveRewardHook(schedule="mastery", threshold=0.75)
    good = make_trajectory(["go east", "take coin"], valid=[True, True])
    half = make_trajectory(["a\nb", "take coin"], valid=[False, True])  # one malformed turn: format 1/2
    out = hook.on_update(1, [half], {})
    assert out["stage"] == 0.0 and out["stage_success"] == 0.5  # format rate 0.5 < 0.75: stays
    assert hook.score([good]) == [[1.0, 1.0]]  # format only
    out = hook.on_update(2, [good, half], {})
    assert out["stage"] == 1.0 and out["stage_success"] == 0.75  # format 3/4 reaches it
    assert out["rate_valid"] == 0.75
    assert hook.score([half]) == [[0.0, 1.25]]  # now validity pays; the gated malformed turn gets nothing
    assert hook.on_update(3, [good], {})["stage"] == 2.0
