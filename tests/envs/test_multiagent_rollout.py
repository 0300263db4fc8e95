"""Self-play group rollouts over the PettingZoo parallel envs: one trajectory per agent, hooks per agent."""

from __future__ import annotations

from functools import partial

import gymnasium as gym
import pytest

from agentgym.agents import ExpertAgent, RandomAgent
from agentgym.envs import instructor_executor, negotiation
from agentgym.envs.textworld import TextWorldEnv
from agentgym.multiagent import by_episode, multiagent_rollout
from agentgym.rollout import EnvPool, group_specs, rollout
from agentgym.trajectory import Decision, load_jsonl, save_jsonl

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
    episodes = multiagent_rollout(
        NEGOTIATION, {"player_0": agent, "player_1": agent}, specs, in_process=True, env_id="negotiation"
    )
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
        assert deal is not None and first.final_info["negotiation"] == {
            **second.final_info["negotiation"],
            "my_values": first.final_info["negotiation"]["my_values"],
            "message": "",
        }
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
        NEGOTIATION,
        {"player_0": RandomAgent(0), "player_1": ExpertAgent()},
        specs,
        in_process=True,
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
        specs,
        in_process=True,
    )
    for episode in episodes:
        instructor, executor = episode["instructor"], episode["executor"]
        assert instructor.won and executor.won and instructor.total_reward == executor.total_reward > 0
        assert [t.action for t in instructor.turns] == [t.action for t in executor.turns]
        assert executor.initial_info["goal"] is None and instructor.initial_info["goal"]


def test_missing_seat_is_a_clear_error():
    with pytest.raises(ValueError, match="no agent for seat 'player_1'"):
        multiagent_rollout(
            NEGOTIATION, {"player_0": ExpertAgent()}, group_specs(["pool/200000"], [0], 1), in_process=True
        )


# ----------------------------------------------------------------- the shared scheduler (issue 18)
class TokenSpender(negotiation.ScriptedNegotiator):
    """The scripted negotiator, reporting 10 prompt and 5 response tokens per move (as an LLM agent would)."""

    name = "token_spender"

    def act(self, observation, info, *, episode_id=""):
        return Decision(
            text=super().act(observation, info, episode_id=episode_id),
            prompt_token_ids=list(range(10)),
            response_token_ids=list(range(5)),
        )


def test_token_budget_ends_the_game_for_every_seat():
    agent, scripted = TokenSpender(), negotiation.ScriptedNegotiator()
    specs = group_specs(["pool/200000"], seeds=[0], group_size=1)
    (free,) = multiagent_rollout(NEGOTIATION, {"player_0": agent, "player_1": scripted}, specs, in_process=True)
    assert len(free["player_0"].turns) >= 3  # the unlimited game lasts longer than the budget allows
    (capped,) = multiagent_rollout(
        NEGOTIATION, {"player_0": agent, "player_1": scripted}, specs, in_process=True, token_budget=30
    )
    first, second = capped["player_0"], capped["player_1"]
    assert len(first.turns) == 3 and first.tokens_used == 45  # 2 moves fit in 30 tokens; the third exceeds
    assert first.token_budget_exceeded and not second.token_budget_exceeded
    assert first.truncated and second.truncated and not first.terminated
    assert first.turns[:2] == free["player_0"].turns[:2]


def test_an_open_pool_serves_many_rollouts_and_both_kinds_of_episode():
    agents = {"player_0": RandomAgent(1), "player_1": negotiation.ScriptedNegotiator()}
    specs = group_specs(["pool/200001", "pool/200002"], seeds=[0, 0], group_size=2)
    with EnvPool(NEGOTIATION, 2) as pool:
        first = multiagent_rollout(pool, agents, specs)
        again = multiagent_rollout(pool, agents, specs)
    assert first == again == multiagent_rollout(NEGOTIATION, agents, specs, in_process=True)
    single = partial(gym.make, "agentgym/Negotiation-v0", split="test")
    with EnvPool(single, 2, in_process=True) as pool:  # the same scheduler plays single-agent episodes
        trajectories = rollout(pool, negotiation.ScriptedNegotiator(), specs)
    assert [t.episode_id for t in trajectories] == [s.episode_id for s in specs]
    assert all(t.terminated and t.final_info["agent_id"] == "player_0" for t in trajectories)


def test_info_keys_reach_the_games_in_worker_pools():
    specs = group_specs(["pool/200000"], seeds=[0], group_size=1)
    agents = {"player_0": ExpertAgent(), "player_1": ExpertAgent()}
    (episode,) = multiagent_rollout(NEGOTIATION, agents, specs, num_workers=1, info_keys={"expert_action"})
    assert episode["player_0"].turns[-1].info["agent_id"] == "player_0"
    with pytest.raises(ValueError, match="unknown info_keys"):
        negotiation.parallel_env(split="test", info_keys=["expert_actoin"])
    with EnvPool(NEGOTIATION, 1, in_process=True, info_keys={"expert_action"}) as pool:
        with pytest.raises(ValueError, match="its pool was opened with"):
            multiagent_rollout(pool, agents, specs, info_keys={"admissible_actions"})


def test_a_game_leaves_out_the_costly_keys_not_asked_for():
    """InstructorExecutor's costly keys are its engine's: an engine that declares expert_action costly."""

    class CostlyExpertTextWorld(TextWorldEnv):
        costly_info_keys = frozenset({"expert_action"})

    env = instructor_executor.parallel_env(split="test", task_env=CostlyExpertTextWorld)
    _, infos = env.reset(options={"task_id": "coin_collector/3000"})
    assert infos["instructor"]["expert_action"]
    env.set_info_keys({"admissible_actions"})  # as a worker pool does with its agent's keys
    _, _, _, _, infos = env.step({"instructor": "look"})
    assert "expert_action" not in infos["instructor"] and "expert_action" not in infos["executor"]
    assert infos["executor"]["admissible_actions"]
    env.close()
