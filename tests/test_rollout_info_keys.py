"""``info_keys`` on EnvPool and rollout: worker processes compute only the costly info values asked for."""

import gymnasium as gym
import pytest

from agentgym.agents import Agent, ExpertAgent
from agentgym.core import TextEnv, Transition
from agentgym.evaluation import evaluate
from agentgym.rollout import EnvPool, EpisodeSpec, rollout
from agentgym.tasks import Task, TaskSplit


class CountingEnv(TextEnv):
    """Each costly value says how many costly values this env had computed when it was computed."""

    family = "Counting"
    costly_info_keys = frozenset({"admissible_actions", "expert_action"})

    def __init__(self):
        super().__init__(TaskSplit("test", [Task("t/0", {})], "counting 1"), max_turns=3)
        self.engine_version = "counting 1"
        self.computed = 0

    def _counted(self, prefix):
        def compute():
            self.computed += 1
            return [f"{prefix} {self.computed}"] if prefix == "list" else f"{prefix} {self.computed}"

        return compute

    def _transition(self, observation):
        return Transition(
            observation,
            admissible_actions=self._counted("list"),
            expert_action=self._counted("expert"),
            ground_truth="plain",
        )

    def _start(self, task):
        return self._transition("start"), "goal"

    def _advance(self, action):
        return self._transition(action)


class FirstAdmissible(Agent):
    name = "first"

    def act(self, observation, info, *, episode_id=""):
        return (info.get("admissible_actions") or ["none"])[0]


@pytest.mark.parametrize("in_process", [True, False])
def test_envpool_sends_only_the_costly_values_named(in_process):
    # "tools" is another family's key (an agent's info_keys may name several families'): skipped here
    with EnvPool(CountingEnv, 1, in_process=in_process, info_keys=["admissible_actions", "tools"]) as pool:
        pool.send_reset(0, 0, None)
        _, info = pool.receive(0)
        assert info["admissible_actions"] == ["list 1"] and "expert_action" not in info
        assert info["ground_truth"] == "plain"  # values that are not costly always arrive
        for count in (2, 3):
            pool.send_step(0, "go")
            info = pool.receive(0)[4]
            assert info["admissible_actions"] == [f"list {count}"]  # the expert action was never computed
            assert "expert_action" not in info
    with EnvPool(CountingEnv, 1, in_process=in_process) as pool:  # default: every value computed
        pool.send_reset(0, 0, None)
        _, info = pool.receive(0)
        assert info["admissible_actions"] == ["list 1"] and info["expert_action"] == "expert 2"


def test_rollout_records_only_the_costly_values_named():
    specs = [EpisodeSpec("e0", "t/0", 0), EpisodeSpec("e1", "t/0", 1)]
    lean = rollout(CountingEnv, FirstAdmissible(), specs, num_workers=2, info_keys=())
    full = rollout(CountingEnv, FirstAdmissible(), specs, num_workers=2)
    for trajectory in lean:
        assert [turn.action for turn in trajectory.turns] == ["none"] * 3
        assert all(
            "admissible_actions" not in turn.info and "expert_action" not in turn.info for turn in trajectory.turns
        )
    for trajectory in full:
        assert [turn.action for turn in trajectory.turns] == ["list 1", "list 3", "list 5"]
        assert trajectory.turns[-1].info["expert_action"] == "expert 8"


class ExpertOnlyEnv(CountingEnv):
    """Won when the agent plays the expert action computed first in the episode: proof that no other
    costly value was computed before it."""

    def __init__(self, split="test", max_turns=3):  # the keywords evaluate() passes
        super().__init__()

    def _start(self, task):
        self.computed = 0
        return super()._start(task)

    def _advance(self, action):
        won = action == "expert 1"
        return Transition(
            action,
            reward=float(won),
            terminated=won,
            won=won,
            score=float(won),
            admissible_actions=self._counted("list"),
            expert_action=self._counted("expert"),
        )


# Registered under this module's name, so spawned evaluation workers find it by importing the module.
gym.register("ExpertOnly-v0", entry_point=ExpertOnlyEnv, disable_env_checker=True)


def test_evaluate_computes_only_what_the_agent_declares(tmp_path, monkeypatch):
    env_id = f"{__name__}:ExpertOnly-v0"
    lean = evaluate(env_id, ExpertAgent(), episodes=2, db=tmp_path / "lean.sqlite", progress=False)
    assert ExpertAgent.info_keys == {"expert_action"} and lean.success_rate == 1.0
    monkeypatch.setattr(ExpertAgent, "info_keys", None)  # read everything: the listing comes first
    full = evaluate(env_id, ExpertAgent(), episodes=2, db=tmp_path / "full.sqlite", progress=False)
    assert full.success_rate == 0.0


def test_trainer_pools_compute_what_the_agent_and_the_info_reward_read():
    from types import SimpleNamespace

    from agentgym.baselines.trainer_common import open_pool
    from agentgym.rollout import group_specs

    args = SimpleNamespace(
        env_id=f"{__name__}:ExpertOnlyEnv", env_kwargs={}, max_turns=3, num_workers=4, in_process=True, info_reward=None
    )
    with open_pool(args, "test", ExpertAgent(), episodes=2) as pool:
        assert pool.num_envs == 2 and pool.info_keys == {"expert_action"}
        for _ in range(2):  # the pool serves every update; the expert wins because nothing else was listed
            trajectories = rollout(pool, ExpertAgent(), group_specs(["t/0"], [0], group_size=2))
            assert [t.won for t in trajectories] == [True, True]
    args.info_reward = "admissible_actions.0"  # a reward read from a costly field: the workers compute it
    with open_pool(args, "test", ExpertAgent(), episodes=8) as pool:
        assert pool.num_envs == 4 and pool.info_keys == {"expert_action", "admissible_actions"}
