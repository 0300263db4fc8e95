"""Self-play group rollouts over the PettingZoo parallel envs: one trajectory per agent, hooks per agent."""

from __future__ import annotations

from functools import partial

import pytest

from agentgym.agents import ExpertAgent, RandomAgent
from agentgym.rollout import group_specs
from agentgym.trajectory import load_jsonl, save_jsonl

from agentgym.multiagent import by_episode, multiagent_rollout

from agentgym.envs import instructor_executor, negotiation

NEGOTIATION = partial(negotiation.parallel_env, split="test")


class InvalidMovePenalty:
    """A turn-level hook (the interface of agentgym.wrappers.hooks.TurnRewardHook): -1 per refused move."""

    name = "invalid_move"

    def __init__(self):
        self.batches = 0

    def score(self, trajectories):
        self.batches += 1
        return [[-1.0 if not turn.info["action_valid"] else 0.0 for turn in t.turns] for t in trajectories]


def test_self_play_groups_give_one_linked_trajectory_per_seat(tmp_path):
    agent = negotiation.ScriptedNegotiator()
    specs = group_specs(["pool/200000", "pool/200007"], seeds=[0, 1], group_size=3)
    episodes = multiagent_rollout(NEGOTIATION, {"player_0": agent, "player_1": agent}, specs, in_process=True,
                                  env_id="negotiation")
    assert len(episodes) == len(specs)
    for spec, episode in zip(specs, episodes):
        first, second = episode["player_0"], episode["player_1"]
        assert first.episode_id == second.episode_id == spec.episode_id
        assert first.group_id == f"{spec.group_id}/player_0" and second.group_id == f"{spec.group_id}/player_1"
        assert first.task_id == second.task_id == spec.task_id
        assert first.initial_info["agent_id"] == "player_0" and second.initial_info["agent_id"] == "player_1"
        # player_1 first moves after player_0's opening offer, and sees it
        assert "player_0 offers" in second.initial_observation
        assert first.turns[-1].terminated and second.turns[-1].terminated
        deal = first.final_info["negotiation"]["deal"]
        assert deal is not None and first.final_info["negotiation"] == {**second.final_info["negotiation"],
                                                                        "my_values": first.final_info["negotiation"]["my_values"],
                                                                        "message": ""}
        for seat, trajectory in episode.items():
            values = trajectory.final_info["negotiation"]["my_values"]
            assert trajectory.total_reward == sum(v * n for v, n in zip(values, deal[seat]))
            assert all(turn.info["agent_id"] == seat for turn in trajectory.turns)
        # alternating moves: the seats' turn counts differ by at most one
        assert abs(len(first.turns) - len(second.turns)) <= 1
    path = tmp_path / "selfplay.jsonl"
    save_jsonl([t for episode in episodes for t in episode.values()], path)
    regrouped = by_episode(load_jsonl(path))
    assert regrouped == {spec.episode_id: episode for spec, episode in zip(specs, episodes)}


def test_hooks_run_per_seat():
    hook = InvalidMovePenalty()
    specs = group_specs(["pool/200003"], seeds=[4], group_size=2)
    episodes = multiagent_rollout(
        NEGOTIATION, {"player_0": RandomAgent(0), "player_1": ExpertAgent()}, specs, in_process=True,
        hooks={"player_0": [hook]},
    )
    assert hook.batches == len(specs)
    for episode in episodes:
        assert all(turn.turn_rewards == {"invalid_move": 0.0} for turn in episode["player_0"].turns)
        assert all(turn.turn_rewards == {} for turn in episode["player_1"].turns)


def test_worker_processes_replay_the_in_process_episodes():
    agents = {"player_0": RandomAgent(1), "player_1": negotiation.ScriptedNegotiator()}
    specs = group_specs(["pool/200001", "pool/200002"], seeds=[0, 0], group_size=2)
    here = multiagent_rollout(NEGOTIATION, agents, specs, in_process=True)
    there = multiagent_rollout(NEGOTIATION, agents, specs, num_workers=2)
    assert here == there


def test_instructor_executor_expert_pair_through_rollout():
    specs = group_specs(["treasure_hunter/3000", "custom_easy/3000"], seeds=[0, 0], group_size=1)
    episodes = multiagent_rollout(
        partial(instructor_executor.parallel_env, split="test"),
        {"instructor": ExpertAgent(), "executor": instructor_executor.FollowerExecutor()},
        specs, in_process=True,
    )
    for episode in episodes:
        instructor, executor = episode["instructor"], episode["executor"]
        assert instructor.won and executor.won and instructor.total_reward == executor.total_reward > 0
        assert [t.action for t in instructor.turns] == [t.action for t in executor.turns]
        assert executor.initial_info["goal"] is None and instructor.initial_info["goal"]


def test_missing_seat_is_a_clear_error():
    with pytest.raises(ValueError, match="no agent for seat 'player_1'"):
        multiagent_rollout(NEGOTIATION, {"player_0": ExpertAgent()}, group_specs(["pool/200000"], [0], 1),
                           in_process=True)
