"""Deferred info values: a family may hand the base class a callable; info computes it only when read."""

import copy
import json
import pickle

from agentgym.core import Deferred, LazyInfo, TextEnv, Transition
from agentgym.tasks import Task, TaskSplit


class ListingEnv(TextEnv):
    """A tiny family whose admissible actions are costly: it counts how often it lists them."""

    family = "Listing"

    def __init__(self):
        super().__init__(TaskSplit("test", [Task("t/0", {})], "listing 1"), max_turns=10)
        self.engine_version = "listing 1"
        self.listed = 0
        self.count = 0

    def _list(self, count):
        def compute():
            self.listed += 1
            return [f"say {count + 1}", "say 0", f"say {count + 1}"][:2]

        return compute

    def _start(self, task):
        self.count = 0
        return Transition("0", admissible_actions=self._list(0), expert_action=lambda: "say 1"), "count"

    def _advance(self, action):
        self.count += 1
        return Transition(str(self.count), admissible_actions=self._list(self.count), expert_action="say")


def test_deferred_values_are_computed_once_and_only_when_read():
    env = ListingEnv()
    obs, info = env.reset(seed=0)
    assert isinstance(info, LazyInfo) and env.listed == 0
    assert info["task_id"] == "t/0" and info["turn"] == 0 and "admissible_actions" in info and env.listed == 0
    assert info.get("expert_action") == "say 1" and env.listed == 0
    assert info["admissible_actions"] == ["say 1", "say 0"] and env.listed == 1
    assert info.get("admissible_actions") == ["say 1", "say 0"] and env.listed == 1
    info["admissible_actions"].append("mutated")  # the caller's copy; the next read is fresh
    _, _, _, _, rejected = env.step("")  # answered by the base class: the state (and listing) carry over
    assert rejected["action_valid"] is False and rejected["admissible_actions"] == ["say 1", "say 0"]
    assert env.listed == 1
    for _ in range(3):
        env.step("say 1")
    assert env.listed == 1  # nobody read them


def test_lazy_info_acts_as_a_plain_dict():
    env = ListingEnv()
    env.reset(seed=0)
    _, _, _, _, info = env.step("say 1")
    plain = dict(info)
    assert list(plain)[:3] == ["task_id", "goal", "admissible_actions"] and len(plain) == len(info)
    assert plain["admissible_actions"] == ["say 2", "say 0"] and plain["expert_action"] == "say"
    assert json.loads(json.dumps(info)) == plain == info and info == plain
    assert type(pickle.loads(pickle.dumps(info))) is dict and pickle.loads(pickle.dumps(info)) == plain
    assert copy.deepcopy(info) == plain and {**info} == plain
    _, _, _, _, fresh = env.step("say 2")
    listed = env.listed
    lazy_copy = fresh.copy()
    assert isinstance(lazy_copy, LazyInfo) and env.listed == listed
    lazy_copy["turn_rewards"] = {"hook": 1.0}
    assert "turn_rewards" not in fresh and lazy_copy["admissible_actions"] == fresh["admissible_actions"]
    assert env.listed == listed + 1  # the copy and the original share one computation
    fresh["admissible_actions"] = ["override"]
    assert fresh["admissible_actions"] == ["override"]


def test_transition_wraps_callables_but_keeps_plain_values():
    assert Transition("x", admissible_actions=["a"], expert_action="a").admissible_actions == ["a"]
    deferred = Transition("x", admissible_actions=lambda: ["a"]).admissible_actions
    assert isinstance(deferred, Deferred) and deferred() == ["a"] and deferred() is deferred()
