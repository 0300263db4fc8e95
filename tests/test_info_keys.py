"""Costly info values: computed only when the env's ``info_keys`` ask for them; ``info`` is a plain dict.

A costly key not asked for is absent ("not computed"); a key the family cannot supply is present as None
("not available").
"""

import copy
import json
import pickle

import gymnasium as gym
import pytest

from agentgym.core import INFO_KEYS, TextEnv, Transition
from agentgym.error import InvalidArgumentError
from agentgym.tasks import Task, TaskSplit


class ListingEnv(TextEnv):
    """A tiny family whose admissible actions and expert move are costly: it counts how often it lists."""

    family = "Listing"
    costly_info_keys = frozenset({"admissible_actions", "expert_action"})
    extra_info_keys = ("count",)

    def __init__(self, info_keys=None):
        super().__init__(TaskSplit("test", [Task("t/0", {})], "listing 1"), max_turns=10, info_keys=info_keys)
        self.engine_version = "listing 1"
        self.listed = self.planned = 0
        self.count = 0

    def _list(self, count):
        def compute():
            self.listed += 1
            return [f"say {count + 1}", "say 0"]

        return compute

    def _plan(self):
        self.planned += 1
        return f"say {self.count + 1}"

    def _transition(self):
        return Transition(
            str(self.count),
            admissible_actions=self._list(self.count),
            expert_action=self._plan,
            ground_truth=None,
            extra_info={"count": self.count},
        )

    def _start(self, task):
        self.count = 0
        return self._transition(), "count"

    def _advance(self, action):
        self.count += 1
        return self._transition()


def test_by_default_every_value_is_computed_once_per_transition_into_a_plain_dict():
    env = ListingEnv()
    obs, info = env.reset(seed=0)
    assert type(info) is dict and env.listed == 1 and env.planned == 1
    assert set(INFO_KEYS) <= set(info) and info["admissible_actions"] == ["say 1", "say 0"]
    assert info["expert_action"] == "say 1" and info["ground_truth"] is None  # None: not available
    assert info["count"] == 0 and info["listing"] == {}  # a declared key, and the family's own
    info["admissible_actions"].append("mutated")  # the caller's copy
    _, _, _, _, refused = env.step("")  # answered with the last transition again: nothing recomputed
    assert refused["action_valid"] is False and refused["admissible_actions"] == ["say 1", "say 0"]
    assert (env.listed, env.planned) == (1, 1)
    _, _, _, _, info = env.step("say 1")
    assert (env.listed, env.planned) == (2, 2) and info["count"] == 1
    assert json.loads(json.dumps(info)) == info == pickle.loads(pickle.dumps(info)) == copy.deepcopy(info)


def test_a_costly_key_not_asked_for_is_absent_and_never_computed():
    env = ListingEnv(info_keys=["expert_action", "won"])  # "won" is cheap: accepted, changes nothing
    _, info = env.reset(seed=0)
    assert "admissible_actions" not in info and info["expert_action"] == "say 1"
    for _ in range(3):
        info = env.step("say 1")[4]
        assert "admissible_actions" not in info and "won" in info and info["count"] >= 1
    assert env.listed == 0 and env.planned == 4
    env.set_info_keys(())
    info = env.step("say 1")[4]
    assert "expert_action" not in info and "admissible_actions" not in info and env.planned == 4
    assert env.unwrapped.info_keys == frozenset()
    env.set_info_keys(None)
    assert env.step("say 1")[4]["admissible_actions"] == ["say 6", "say 0"] and env.listed == 1


def test_unknown_info_keys_are_refused_with_a_hint():
    with pytest.raises(
        InvalidArgumentError,
        match=r"unknown info_keys \['admisible_actions'\].*did you mean "
        r"'admissible_actions'",
    ):
        ListingEnv(info_keys=["admisible_actions"])
    with pytest.raises(InvalidArgumentError, match="collection of key names"):
        ListingEnv(info_keys="admissible_actions")


def test_an_undeclared_top_level_key_is_a_family_bug():
    class Undeclared(ListingEnv):
        extra_info_keys = ()

    with pytest.raises(TypeError, match=r"\['count'\].*extra_info_keys"):
        Undeclared().reset(seed=0)


def test_gymnasium_make_passes_info_keys_and_the_passive_checker_stays_on():
    env = gym.make("agentgym/TextWorld-v0", split="test", info_keys=["admissible_actions"])
    try:
        assert "PassiveEnvChecker" in str(env)
        _, info = env.reset(seed=0)
        assert type(info) is dict and info["admissible_actions"]  # TextWorld lists cheaply: always there
        assert "expert_action" in info
    finally:
        env.close()
