"""The core contract: action checks, text space, task splits and manifests, base-class behaviour."""

import gymnasium as gym
import numpy as np
import pytest

from agentgym.core import TextEnv, TextSpace, Transition, check_action
from agentgym.error import InvalidArgumentError, ResetNeeded, UnknownTaskError
from agentgym.tasks import Task, TaskSplit, choose_split


@pytest.mark.parametrize(
    ("action", "problem"),
    [
        (None, "expected a text string, got NoneType"),
        (b"look", "got bytes; decode it first"),
        ("", "empty"),
        ("  \n ", "empty"),
        ("x" * 5000, "5000 characters long; the limit is 4096"),
        ("look\x00", "control character U+0000 at position 4"),
        ("go \ud800", "unpaired surrogate at position 3"),
    ],
)
def test_check_action_names_the_problem(action, problem):
    clean, message = check_action(action, 4096)
    assert clean is None and problem in message


def test_check_action_strips_surrounding_whitespace():
    assert check_action("  go north\n", 4096) == ("go north", None)
    assert check_action("prendre la clé ✓", 4096) == ("prendre la clé ✓", None)


def test_text_space_admits_any_unicode_up_to_its_length():
    space = TextSpace(5)
    assert space.contains("héllo") and not space.contains("toolong") and not space.contains(b"abc")
    assert space.contains(space.sample())


def _split(name="test", n=4):
    return TaskSplit(name, [Task(f"t/{i}", {"seed": i}) for i in range(n)], "engine 1.0")


def test_manifest_hash_depends_on_definitions_not_order():
    a, b = _split(), TaskSplit("test", list(reversed(_split().tasks)), "engine 1.0")
    assert a.manifest.hash == b.manifest.hash
    changed = TaskSplit("test", [Task("t/0", {"seed": 99})] + _split().tasks[1:], "engine 1.0")
    assert changed.manifest.hash != a.manifest.hash
    assert a.manifest.engine_version == "engine 1.0" and a.manifest.num_tasks == 4


def test_unknown_task_suggests_close_ids():
    with pytest.raises(UnknownTaskError, match=r"Did you mean .*'t/1'"):
        _split().get("t/l")


def test_unknown_split_lists_the_splits():
    with pytest.raises(InvalidArgumentError, match=r"unknown split 'tset'.*Did you mean 'test'"):
        choose_split({"train": 1, "test": 2}, "tset")


def test_selection_draws_from_the_generator_only():
    """The same seed picks the same task; different seeds (and successive draws of one generator) spread
    uniformly over the split: a selection that ignores the generator, or uses another random source, fails."""
    split = _split(n=50)
    picks = [split.select(np.random.default_rng(7)).task_id for _ in range(3)]
    assert len(set(picks)) == 1
    assert picks[0] == split.tasks[int(np.random.default_rng(7).integers(50))].task_id  # drawn from that generator
    by_seed = [split.select(np.random.default_rng(seed)).task_id for seed in range(500)]
    rng = np.random.default_rng(0)
    successive = [split.select(rng).task_id for _ in range(500)]
    for draws in (by_seed, successive):
        counts = np.bincount([split.task_ids.index(t) for t in draws], minlength=50)
        assert counts.min() >= 1 and counts.max() <= 25, counts  # uniform: about 10 each, every task reachable


class CounterEnv(TextEnv):
    """A tiny family used to test the base class: say a number to count up; 'win' at 3."""

    family = "Counter"

    def __init__(self, max_turns=5):
        super().__init__(_split(), max_turns=max_turns)
        self.engine_version = "counter 1"
        self.closed = 0

    def _start(self, task):
        self.count = 0
        return Transition("count: 0", admissible_actions=["up"], expert_action="up"), "reach 3"

    def _advance(self, action):
        if action != "up":
            return Transition(f"unknown {action!r}", action_valid=False, admissible_actions=["up"])
        self.count += 1
        won = self.count == 3
        return Transition(
            f"count: {self.count}",
            reward=1.0,
            terminated=won,
            won=won,
            score=self.count / 3,
            admissible_actions=["up"],
            expert_action=None if won else "up",
        )

    def _close_engine(self):
        self.closed += 1


def test_base_class_counts_turns_truncates_and_carries_state_over_rejections():
    env = CounterEnv(max_turns=3)
    obs, info = env.reset(seed=0)
    assert info["turn"] == 0 and info["goal"] == "reach 3" and info["anchor_obs"] == "count: 0"
    env.step("up")
    obs, reward, terminated, truncated, info = env.step(None)
    assert obs.startswith("Invalid action") and reward == 0.0 and not info["action_valid"]
    assert info["anchor_obs"] == "count: 1" and info["score"] == pytest.approx(1 / 3) and info["turn"] == 2
    assert info["counter"] == {}
    obs, reward, terminated, truncated, info = env.step("up")
    assert (terminated, truncated) == (False, True)
    with pytest.raises(ResetNeeded):
        env.step("up")
    env.close()
    env.close()
    assert env.closed == 2


def test_reset_rejects_unknown_options_and_tasks():
    env = CounterEnv()
    with pytest.raises(InvalidArgumentError, match="task_id"):
        env.reset(options={"taskid": "t/0"})
    with pytest.raises(UnknownTaskError):
        env.reset(options={"task_id": "nope"})
    assert env.reset(options={"task_id": "t/2"})[1]["task_id"] == "t/2"


def test_bad_max_turns_is_refused():
    with pytest.raises(InvalidArgumentError, match="max_turns must be a positive int, got 0"):
        CounterEnv(max_turns=0)


def test_unknown_env_kwarg_raises():
    import agentgym  # noqa: F401

    with pytest.raises(TypeError, match="splt"):
        gym.make("agentgym/TextWorld-v0", splt="test")


@pytest.mark.parametrize(
    ("action", "kwargs", "problem"),
    [
        ("😀" * 100, {"max_bytes": 198}, "400 bytes long in UTF-8; this engine's input buffer holds 198"),
        ("x" * 197 + "é", {"max_bytes": 198}, "199 bytes long"),  # would be cut mid-character
        ("take é", {"charset": "ascii"}, "'é' (U+00E9) at position 5; this engine reads plain ASCII text"),
        ("go 😀", {"charset": "bmp"}, "U+1F600"),
        ("look\x00", {"max_bytes": 198}, "control character U+0000"),
    ],
)
def test_check_action_enforces_engine_limits(action, kwargs, problem):
    clean, message = check_action(action, 4096, **kwargs)
    assert clean is None and problem in message


def test_check_action_engine_limits_admit_what_fits():
    assert check_action("é" * 99, 4096, max_bytes=198) == ("é" * 99, None)
    assert check_action("go é", 4096, charset="bmp") == ("go é", None)
    assert check_action("go east", 4096, max_bytes=7, charset="ascii") == ("go east", None)


def test_family_limits_reach_the_engine_never():
    class Tiny(CounterEnv):
        max_action_bytes = 4
        action_charset = "ascii"

        def _advance(self, action):
            self.seen.append(action)
            return super()._advance(action)

    env = Tiny()
    env.seen = []
    env.reset(seed=0)
    for action in ("upupup", "üp", "😀"):
        obs, _, _, _, info = env.step(action)
        assert obs.startswith("Invalid action") and info["action_valid"] is False
    env.step("up")
    assert env.seen == ["up"]


def test_engine_fault_propagates_and_ends_the_episode():
    from agentgym.error import EngineFault

    class Faulty(CounterEnv):
        def _advance(self, action):
            raise EngineFault("the counter died")

    env = Faulty()
    env.reset(seed=0)
    with pytest.raises(EngineFault, match="the counter died"):
        env.step("up")
    with pytest.raises(ResetNeeded):
        env.step("up")
    assert env.reset(seed=0)[0] == "count: 0"


def test_a_family_may_truncate():
    class Stops(CounterEnv):
        def _advance(self, action):
            return Transition("the partner gave up", truncated=True)

    env = Stops(max_turns=5)
    env.reset(seed=0)
    _, _, terminated, truncated, _ = env.step("up")
    assert (terminated, truncated) == (False, True)


@pytest.mark.parametrize("text", ["", "one\ntwo\tend", "clé ✓ 😀", "odd \ud800 half", "x" * 12])
def test_text_space_flattens_any_text_and_back(text):
    from gymnasium.spaces.utils import flatdim, flatten, flatten_space, unflatten

    space = TextSpace(12)
    flat = flatten(space, text)  # Gymnasium's own Text flattening raised KeyError on "\n"
    assert flat.shape == (12,) and flat.dtype == np.int32 and flatten_space(space).contains(flat)
    assert unflatten(space, flat) == text and flatdim(space) == 12


def test_envs_refuse_copies_by_default_and_say_what_to_do():
    import copy
    import pickle

    from agentgym.error import NotCopyableError, StateCloningUnsupported

    env = CounterEnv()
    env.reset(seed=0)
    with pytest.raises(NotCopyableError, match=r"cannot be deep-copied.*gym\.make\(.*no clone_state\(\)"):
        copy.deepcopy(env)
    with pytest.raises(NotCopyableError, match="cannot be pickled"):
        pickle.dumps(env)
    with pytest.raises(StateCloningUnsupported, match="Replay the episode"):
        env.clone_state()
    assert not env.offers_clone_state()


def test_clone_state_and_restore_state_replay_a_plain_python_family():
    class SnapshotCounter(CounterEnv):
        copyable = True

        def _clone_engine(self):
            return {"count": self.count}

        def _restore_engine(self, engine_state):
            self.count = engine_state["count"]

    import copy

    env = SnapshotCounter()
    env.reset(seed=0)
    env.step("up")
    snapshot = env.clone_state()
    after = [env.step("up")[:4] for _ in range(2)]
    assert after[-1][2] is True  # won: the episode is over
    env.restore_state(snapshot)
    assert [env.step("up")[:4] for _ in range(2)] == after and env.offers_clone_state()
    env.restore_state(snapshot)
    twin = copy.deepcopy(env)
    assert twin.step("up")[:4] == env.step("up")[:4] == after[0] and twin.count == env.count == 2
    with pytest.raises(InvalidArgumentError, match="snapshot made by clone_state"):
        env.restore_state({"count": 0})
