"""Instructor–executor over the real TextWorld engine: roles, rewards, the expert pair."""

from __future__ import annotations

import gymnasium as gym
import pytest

from agentgym.agents import ExpertAgent
from agentgym.envs import instructor_executor as ie
from agentgym.envs.textworld import TextWorldEnv
from agentgym.testing import BAD_ACTIONS, check_env
from agentgym.turngame import TextObs

TASK = "treasure_hunter/3000"


@pytest.fixture(scope="module")
def one_game():
    """The engine's options for a one-task split (one test game, given as the user's own game file), so that
    tests which reset many times generate a single game on a cold cache."""
    engine = gym.make("agentgym/TextWorld-v0", split="test").unwrapped
    path = engine.game_file(engine.tasks.get(TASK))
    engine.close()
    return {"game_files": [str(path)]}


def test_max_cycles_and_no_action_mask_for_open_text_moves(one_game):
    env = ie.parallel_env(split="test", task_env_kwargs=one_game, max_cycles=1)
    assert env.task_ids == ["game.z8"]
    env.reset(seed=0)
    assert "action_mask" not in env.game.info("executor")  # open-text moves: no fixed move list to mask
    for _ in range(2):
        *_, truncations, _ = env.step({agent: "look" for agent in env.possible_agents})
    assert all(truncations.values()) and env.agents == []
    env.close()


@pytest.mark.parametrize("seat", ["instructor", "executor"])
def test_single_agent_view_conformance(seat, one_game):
    check_env("agentgym/InstructorExecutor-v0", split="test", seat=seat, task_env_kwargs=one_game)


@pytest.mark.slow  # generates all 10 test games on a cold cache (like the TextWorld expert test)
def test_expert_pair_wins_every_test_task():
    env = ie.parallel_env(split="test")
    pair = {"instructor": ExpertAgent(), "executor": ie.FollowerExecutor()}
    assert len(env.task_ids) == 10
    for task_id in env.task_ids:
        obs, infos = env.reset(options={"task_id": task_id})
        totals = dict.fromkeys(pair, 0.0)
        while env.agents:
            mover = infos["instructor"]["to_move"]
            obs, rewards, terminations, truncations, infos = env.step(
                {mover: pair[mover].act(obs[mover], infos[mover], episode_id=task_id)}
            )
            for agent, reward in rewards.items():
                totals[agent] += reward
        assert all(terminations.values()) and not any(truncations.values()), task_id
        assert infos["instructor"]["won"] and infos["executor"]["won"], task_id
        assert totals["instructor"] == totals["executor"] > 0, task_id  # both rewarded on success
    env.close()


def test_roles_goal_messages_and_notes():
    env = ie.env(split="test")
    env.reset(options={"task_id": TASK})
    goal = env.infos["instructor"]["goal"]
    assert goal and env.infos["executor"]["goal"] is None
    assert goal in env.observe("instructor") and goal not in env.observe("executor")
    assert env.agent_selection == "instructor" and env.infos["instructor"]["admissible_actions"] is None
    expert = env.infos["instructor"]["expert_action"]
    env.step(f"{expert}\nthen tell me what you see")
    obs = env.observe("executor")
    assert isinstance(obs, TextObs) and f"Instructor: {expert}" in obs and goal not in obs
    info = env.infos["executor"]
    assert env.agent_selection == "executor" and info["expert_action"] is None and expert in info["admissible_actions"]
    assert info["instructorexecutor"]["message"].startswith(expert)
    env.step(f"{expert} | done, what next?")
    obs = env.observe("instructor")
    assert f"The executor did: {expert}" in obs and "The executor notes: done, what next?" in obs
    assert env.infos["executor"]["action_valid"] is True and env.infos["executor"]["turn"] == 2
    assert goal not in env.infos["executor"]["anchor_obs"]  # the goal never shows in anything the executor sees
    env.step("goal")  # the instructor may say anything, even the engine's goal command...
    env.step("goal")  # ...and the executor may try it: the answer is redacted
    assert goal not in env.observe("executor")
    env.close()


@pytest.mark.parametrize("name", list(BAD_ACTIONS))
def test_bad_actions_never_raise_and_keep_the_move(name):
    env = ie.env(split="test")
    env.reset(options={"task_id": TASK})
    for agent in ("instructor", "executor"):
        assert env.agent_selection == agent
        env.step(BAD_ACTIONS[name])
        assert env.rewards == {"instructor": 0.0, "executor": 0.0}  # a refused move earns nothing
        assert env.infos[agent]["action_valid"] is False and env.observe(agent).startswith("Invalid action:")
        assert env.agent_selection == agent and not any(env.terminations.values())
        env.step(env.infos["instructor"]["expert_action"] or "look")
    env.close()


def test_executor_command_must_come_before_the_note():
    env = ie.env(split="test")
    env.reset(options={"task_id": TASK})
    env.step("look")
    env.step("| just a note")
    assert "command before '|' is empty" in env.observe("executor") and env.agent_selection == "executor"
    env.close()


def test_turn_limit_truncates_both_agents():
    env = ie.parallel_env(split="test", max_turns=3)
    env.reset(options={"task_id": TASK})
    for action in ({"instructor": "hi"}, {"executor": "look"}):
        _, _, terminations, truncations, _ = env.step(action)
        assert not any(truncations.values())
    _, _, terminations, truncations, infos = env.step({"instructor": "hi"})
    assert truncations == {"instructor": True, "executor": True} and not any(terminations.values())
    assert env.agents == [] and infos["executor"]["to_move"] is None
    env.close()


def test_a_message_the_scripted_executor_cannot_act_on_truncates_instead_of_raising():
    env = gym.make("agentgym/InstructorExecutor-v0", split="test", seat="instructor")
    env.reset(options={"task_id": "coin_collector/3000"})
    obs, reward, terminated, truncated, info = env.step("| only a note, no command")
    assert (terminated, truncated) == (False, True) and reward == 0.0
    assert "The scripted executor could not make a valid move (50 refused in a row" in obs
    assert env.reset(seed=0)[1]["turn"] == 0  # alive after reset
    env.close()


@pytest.mark.parametrize("message", ["😀" * 100, "x" * 197 + "é", "go \x00 east"])
def test_messages_the_engine_cannot_take_are_answered_not_raised(message):
    env = gym.make("agentgym/InstructorExecutor-v0", split="test", seat="instructor")
    _, info = env.reset(options={"task_id": "coin_collector/3000"})
    obs, _, terminated, truncated, info = env.step(message)
    assert isinstance(obs, str) and not terminated and not truncated
    _, _, _, _, info = env.step(info["expert_action"])
    assert info["action_valid"] is True
    env.close()


def test_the_engine_is_a_class_a_factory_or_an_id(one_game):
    made = []

    def factory(**kwargs):
        made.append(sorted(kwargs))
        return TextWorldEnv(**kwargs)

    default = ie.InstructorExecutorGame(split="test", task_env_kwargs=one_game)
    by_class = ie.InstructorExecutorGame(split="test", task_env=TextWorldEnv, task_env_kwargs=one_game)
    by_id = ie.InstructorExecutorGame(split="test", task_env="agentgym/TextWorld-v0", task_env_kwargs=one_game)
    by_factory = ie.InstructorExecutorGame(split="test", task_env=factory, task_env_kwargs=one_game)
    assert made == [["game_files", "max_turns", "split"]]
    # the same engine gives the same protocol version and task manifest, however it is named
    assert default.engine_version == by_class.engine_version == by_id.engine_version
    assert default.engine_version.endswith("over agentgym/TextWorld-v0")
    assert default.tasks.manifest == by_class.tasks.manifest == by_id.tasks.manifest
    for game in (default, by_class, by_id, by_factory):
        assert type(game._engine) is TextWorldEnv  # the bare engine, no gym.make wrappers
        game.close()
    with pytest.raises(ValueError, match="unknown env id"):
        ie.InstructorExecutorGame(split="test", task_env="agentgym/TextWrld-v0")
    with pytest.raises(ValueError, match="must build an agentgym TextEnv"):
        ie.InstructorExecutorGame(split="test", task_env=lambda **kwargs: object())


def test_the_single_agent_view_declares_its_seat_keys(one_game):
    env = gym.make(
        "agentgym/InstructorExecutor-v0", split="test", seat="executor", task_env=TextWorldEnv, task_env_kwargs=one_game
    )
    _, info = env.reset(seed=0)
    assert env.unwrapped.extra_info_keys == ("agent_id", "to_move")
    assert info["agent_id"] == "executor" and info["to_move"] == "executor" and info["goal"] is None
    env.close()
