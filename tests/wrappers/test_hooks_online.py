"""Every hook online on TextWorld in an env.step loop (and through rollout), and offline on saved JSONL."""

from __future__ import annotations

import copy
from functools import partial

import gymnasium as gym
import numpy as np
import pytest

import agentgym  # noqa: F401  (registers the envs)
from agentgym.agents import Agent
from agentgym.baselines.estimators import from_trajectories, gigpo_advantages, igpo_advantages
from agentgym.rollout import group_specs, rollout
from agentgym.trajectory import load_jsonl, save_jsonl
from agentgym.wrappers import (
    IGPOHook,
    OPRLHook,
    ProgressiveRewardHook,
    RLVMRHook,
    TurnRewardWrapper,
    annotate,
)

TASK = "coin_collector/3000"


def tagged_output(turn: int, expert: str | None) -> str:
    """Planning / explore / a malformed turn / reflection, cycling, around the expert's move."""
    action = expert or "look"
    kind = turn % 4
    if kind == 2:
        return "I will just wander"  # no tags: format-invalid, and the env refuses it
    tag = ("planning", "explore", None, "reflection")[kind]
    return f"<{tag}>step {turn}</{tag}><action>{action}</action>"


class TaggedExpert(Agent):
    name = "tagged-expert"

    def __init__(self):
        self.turns: dict[str, int] = {}

    def act(self, observation, info, *, episode_id=""):
        k = self.turns[episode_id] = self.turns.get(episode_id, -1) + 1
        return tagged_output(k, info.get("expert_action"))


@pytest.fixture(scope="module")
def hooks(tiny_lm):
    model, tokenizer = tiny_lm
    prm = copy.deepcopy(model)
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    with torch.no_grad():
        for p in prm.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return [
        RLVMRHook(),
        ProgressiveRewardHook(stage=2),
        IGPOHook(model, tokenizer),
        OPRLHook(prm, tokenizer, reference_model=copy.deepcopy(model)),
    ]


def test_hooks_online_step_loop_match_offline_jsonl(hooks, tmp_path):
    env = TurnRewardWrapper(gym.make("agentgym/TextWorld-v0", split="test", max_turns=12), hooks)
    try:
        obs, info = env.reset(seed=0, options={"task_id": TASK})
        online, done, turn = [], False, 0
        while not done:
            obs, reward, terminated, truncated, info = env.step(tagged_output(turn, info["expert_action"]))
            assert set(info["turn_rewards"]) == {"rlvmr", "prs_progressive", "igpo", "oprl"}
            assert "rlvmr" in info["turn_reward_details"]
            online.append(dict(info["turn_rewards"]))
            done, turn = terminated or truncated, turn + 1
        assert info["won"] and turn >= 4
        episode = info["episode_turn_rewards"]
        trajectory = env.trajectory
    finally:
        env.close()
    # turn 3 (index 2) was malformed: RLVMR's format penalty; the env refused the untagged text
    assert trajectory.turns[2].info["action_valid"] is False and online[2]["rlvmr"] == pytest.approx(-0.1)
    assert episode["rlvmr"][0] == 1.0 and online[0]["rlvmr"] == 0.0  # planning credited once the episode is won
    assert online[-1]["igpo"] == 1.0  # final turn: the env score (TextWorld has no ground truth)
    for name in ("prs_progressive", "igpo", "oprl"):
        assert episode[name] == pytest.approx([row[name] for row in online], abs=1e-6)

    path = tmp_path / "episodes.jsonl"
    save_jsonl([trajectory], path)
    loaded = load_jsonl(path)
    for turn in loaded[0].turns:
        turn.turn_rewards.clear()
    annotate(loaded, hooks)
    for name, values in episode.items():
        assert [t.turn_rewards[name] for t in loaded[0].turns] == pytest.approx(values, abs=1e-5), name


def make_env(hooks):
    return TurnRewardWrapper(gym.make("agentgym/TextWorld-v0", split="test", max_turns=12), hooks)


def test_hooks_through_rollout_feed_the_estimators(hooks):
    trajectories = rollout(
        partial(make_env, hooks[:3]),
        TaggedExpert(),
        group_specs([TASK], [0], 2),
        in_process=True,
        env_id="agentgym/TextWorld-v0",
    )
    assert len(trajectories) == 2
    for trajectory in trajectories:
        assert all(set(turn.turn_rewards) == {"rlvmr", "prs_progressive", "igpo"} for turn in trajectory.turns)
    inputs = from_trajectories(trajectories, hook="igpo")
    assert inputs["turn_rewards"] == [[turn.turn_rewards["igpo"] for turn in t.turns] for t in trajectories]
    adv = igpo_advantages(inputs["turn_rewards"], inputs["groups"], finals=inputs["finals"])
    assert [len(a) for a in adv] == inputs["num_turns"] and all(inputs["finals"])
    # IGPO by hand for two identical finished episodes (gamma 1): the outcome rewards (last turns) are equal,
    # so they normalise to 0; the information gains of the other turns are normalised over the group's
    # pool ((x - mean) / (sqrt(var + 1e-8) + 1e-6), the official code's population std); the advantage of
    # turn t sums the normalised rewards from t on.
    gains = np.array([r for row in inputs["turn_rewards"] for r in row[:-1]])
    assert np.ptp(gains) > 0, "the IGPO hook gave constant information gains: nothing to check"
    normalised = (gains - gains.mean()) / (np.sqrt(gains.var() + 1e-8) + 1e-6)
    for i, row in enumerate(adv):
        mine = normalised[i * (len(row) - 1) : (i + 1) * (len(row) - 1)]
        expected = np.append(np.cumsum(mine[::-1])[::-1], 0.0)
        assert row.tolist() == pytest.approx(expected.tolist(), abs=1e-3)
    gigpo = gigpo_advantages(inputs["step_rewards"], inputs["groups"], inputs["anchors"])
    assert [len(a) for a in gigpo] == inputs["num_turns"]
    # identical deterministic episodes give identical advantages; anchors are states, so the refused turn 2
    # and the retry at turn 3 share an anchor group, and the retry (one step nearer the goal) is preferred
    assert gigpo[0].tolist() == pytest.approx(gigpo[1].tolist())
    assert inputs["anchors"][0][2] == inputs["anchors"][0][3]
    assert gigpo[0][3] > gigpo[0][2]
