"""IGPO and OPRL built as the trainer builds them (``from_policy`` on a LoRA policy) score a real LLM-agent
rollout on TextWorld (the ``textworld.yaml`` setting: no ground truth, the proxy target), reading the token
ids the agent recorded."""

from __future__ import annotations

import copy

import gymnasium as gym
import pytest

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")

import agentgym  # noqa: E402,F401  (registers the envs)
from agentgym.baselines.llm_agent import LLMAgent  # noqa: E402
from agentgym.rollout import group_specs, rollout  # noqa: E402
from agentgym.wrappers import IGPOHook, OPRLHook, annotate  # noqa: E402
from agentgym.wrappers.igpo import PROXY_TARGET  # noqa: E402
from agentgym.wrappers.lm import chat_tokens  # noqa: E402


@pytest.fixture(scope="module")
def played(tiny_lm):
    model, tokenizer = tiny_lm
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    policy = peft.get_peft_model(copy.deepcopy(model), config)
    agent = LLMAgent(
        policy, tokenizer, device="cpu", output_format="action", history=1, max_new_tokens=4, near_miss=True
    )
    trajectories = rollout(
        lambda: gym.make("agentgym/TextWorld-v0", split="train", max_turns=3),
        agent,
        group_specs(["coin_collector/1000"], [0], 2),
        in_process=True,
        env_id="agentgym/TextWorld-v0",
    )
    return policy, tokenizer, trajectories


def test_igpo_scores_textworld_records_on_the_recorded_prompts(played):
    policy, tokenizer, trajectories = played
    hook = IGPOHook.from_policy(policy, tokenizer)
    annotate(trajectories, [hook])
    for trajectory in trajectories:
        turns = trajectory.turns
        assert len(turns) == 3 and all(turn.prompt_token_ids for turn in turns)
        assert hook.target(trajectory) == (PROXY_TARGET, False)  # TextWorld has no ground truth
        contexts = hook.context_ids(trajectory, range(len(turns)))
        assert contexts == [turn.prompt_token_ids for turn in turns]
        chat = chat_tokens(trajectory, tokenizer)  # the fallback would score another context
        assert contexts[1] != chat.ids[: chat.context_ends[1]]
        rewards = [turn.turn_rewards["igpo"] for turn in turns]
        assert rewards[-1] == trajectory.turns[-1].info["score"]  # final turn: the env's normalised score
        assert all(abs(r) < 50 for r in rewards[:-1]) and any(r != 0 for r in rewards[:-1])


def test_oprl_scores_and_learns_from_textworld_records(played):
    policy, tokenizer, trajectories = played
    hook = OPRLHook.from_policy(policy, tokenizer, lr=1e-3)
    annotate(trajectories, [hook])
    assert all(turn.turn_rewards["oprl"] == pytest.approx(0.0, abs=1e-5) for t in trajectories for turn in t.turns)
    trajectories = copy.deepcopy(trajectories)
    trajectories[0].turns[-1].info["won"] = True  # make one success/failure pair
    out = hook.on_update(1, trajectories, {})
    assert out["pairs"] == 1.0 and out["prm_loss"] == pytest.approx(0.6931, abs=1e-3)
    assert any(abs(turn_reward) > 0 for row in hook.score(trajectories) for turn_reward in row)
