"""ScienceWorld on the real engine: splits, costly info keys, rewards, failure, the JVM's life and the expert.

Each test holds at most two JVMs (about 0.3-1 GB each).
"""

import functools
import os
import signal
import subprocess
import sys
import time
import warnings

import gymnasium as gym
import pytest

import agentgym  # noqa: F401
from agentgym.agents import RandomAgent
from agentgym.envs.scienceworld import ScienceWorldEnv
from agentgym.envs.scienceworld import tasks as sw_tasks
from agentgym.envs.scienceworld.env import next_gold_action
from agentgym.error import EngineFault, InvalidArgumentError
from agentgym.rollout import EpisodeSpec, rollout

ENV_ID = "agentgym/ScienceWorld-v0"
SHORT_TASK = "lifespan-longest-lived/93"  # test split; a 4-step gold sequence


def _gone(pid: int) -> bool:
    """The process has exited and was reaped (a zombie still has its /proc entry)."""
    return not os.path.exists(f"/proc/{pid}")


@pytest.fixture
def env():
    env = ScienceWorldEnv(split="test")
    yield env
    env.close()


def test_splits_task_ids_and_generalization_levels():
    sizes = {}
    for split in sw_tasks.SPLITS:
        env = ScienceWorldEnv(split=split)
        assert env.jvm_pid is None  # the JVM starts lazily, at the first reset
        sizes[split] = set(env.task_ids)
        assert all(
            task_id.split("/")[0] in sw_tasks.TASK_TYPES and task_id.split("/")[1].isdigit() for task_id in env.task_ids
        )
    assert len(sizes["train"]) + len(sizes["valid"]) + len(sizes["test"]) == 7207
    assert (
        not sizes["train"] & sizes["valid"]
        and not sizes["train"] & sizes["test"]
        and not sizes["valid"] & sizes["test"]
    )
    assert {t.split("/")[0] for t in sizes["test"]} == set(sw_tasks.TASK_TYPES)
    assert "boil/17" in sizes["valid"] and "boil/21" in sizes["test"]
    held_out = set(sw_tasks.HELD_OUT_TYPES)
    assert len(held_out) == 10
    types = {split: {t.split("/")[0] for t in ids} for split, ids in sizes.items()}
    assert types["train_L"] == types["L0"] == types["L1"] == set(sw_tasks.TASK_TYPES) - held_out
    assert types["L2"] == held_out and sizes["L2"] <= sizes["test"]
    assert sizes["train_L"] == sizes["L0"] <= sizes["train"] and sizes["L1"] <= sizes["test"]
    assert not sizes["L0"] & sizes["L1"]
    only = ScienceWorldEnv(split="valid", task_types=["boil", "melt"])
    assert only.task_ids == [f"boil/{v}" for v in range(14, 21)] + [f"melt/{v}" for v in range(14, 21)]
    with pytest.raises(InvalidArgumentError, match="did you mean|Did you mean"):
        ScienceWorldEnv(split="tset")
    with pytest.raises(InvalidArgumentError, match="not in split"):
        ScienceWorldEnv(split="L2", task_types=["boil"])


def test_simplifications_are_part_of_manifest_and_protocol():
    plain, easy = ScienceWorldEnv(split="test"), ScienceWorldEnv(split="test", simplifications="easy")
    assert "simplifications=easy" in easy.manifest.engine_version
    assert plain.manifest.engine_version == "scienceworld 1.2.3"
    assert plain.manifest.hash != easy.manifest.hash
    named = ScienceWorldEnv(split="test", simplifications=["teleportAction", "noElectricalAction", "teleportAction"])
    assert named.simplifications == ("noElectricalAction", "teleportAction")
    assert named.tasks.get("boil/21").definition["simplifications"] == "noElectricalAction,teleportAction"
    assert named.tasks.get("power-component/15").definition["simplifications"] == "teleportAction"
    with pytest.raises(InvalidArgumentError, match="unknown ScienceWorld simplifications"):
        ScienceWorldEnv(simplifications="teleport")


@pytest.mark.slow
def test_every_task_type_starts_and_split_table_matches_engine(env):
    engine_types = set(env._simulator().call("getTaskNames"))
    assert engine_types == set(sw_tasks.TASK_TYPES)
    for task_type in sw_tasks.TASK_TYPES:
        first = sw_tasks.official_variations(task_type, "test")[0]
        obs, info = env.reset(options={"task_id": f"{task_type}/{first}"})
        assert info["goal"] and obs.startswith(info["goal"]) and "This " in info["anchor_obs"]
        sim = env._sim
        for official, method in (
            ("train", "getVariationsTrain"),
            ("dev", "getVariationsDev"),
            ("test", "getVariationsTest"),
        ):
            assert list(sim.call(method)) == list(sw_tasks.official_variations(task_type, official)), task_type


def test_costly_info_keys_are_computed_only_when_asked_and_gold_episode(env):
    calls = []
    _, info = env.reset(options={"task_id": SHORT_TASK})
    sim = env._sim
    original = sim.valid_actions
    sim.valid_actions = lambda: calls.append(1) or original()  # count the engine listings
    assert type(info) is dict and env.info_keys == {"admissible_actions", "expert_action"}  # default: both
    admissible, expert = info["admissible_actions"], info["expert_action"]
    assert len(admissible) == len(set(admissible)) > 10 and expert in admissible
    again = env.reset(options={"task_id": SHORT_TASK})[1]
    assert again["admissible_actions"] == admissible and calls == [1]  # stable order; one listing per state
    gold = env.gold_actions(SHORT_TASK)
    env.unwrapped.set_info_keys(())  # an agent that reads neither: nothing listed, no expert
    _, info = env.reset(options={"task_id": SHORT_TASK})
    calls.clear()
    total, steps, terminated = 0.0, 0, False
    while not terminated:
        assert "admissible_actions" not in info and "expert_action" not in info  # not computed: absent
        obs, reward, terminated, truncated, info = env.step(gold[steps])
        total, steps = total + reward, steps + 1
        assert info["action_valid"] and not truncated
    assert calls == [] and steps >= 2
    family = info["scienceworld"]
    assert info["won"] and info["score"] == 1.0 and family["score"] == 100 and family["completed"]
    assert abs(total - 1.0) < 1e-9 and not family["failed"] and steps <= len(gold)
    env.unwrapped.set_info_keys(["expert_action", "won"])  # cheap names are accepted and change nothing
    _, info = env.reset(options={"task_id": SHORT_TASK})
    assert info["expert_action"] == gold[0] and "admissible_actions" not in info and calls == []
    with pytest.raises(InvalidArgumentError, match="admissible_actions"):
        env.unwrapped.set_info_keys(["admissible_action"])  # a typo names the close match


def test_unparsed_command_failure_and_gold_planned_mid_episode(env, tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTGYM_CACHE", str(tmp_path))  # no cached gold sequence: it is planned when asked for
    env.set_info_keys(["admissible_actions"])  # the expert not asked for at reset: nothing planned yet
    _, info = env.reset(options={"task_id": "find-animal/225"})
    assert "expert_action" not in info and not list(tmp_path.rglob("gold.json"))
    env.set_info_keys(None)
    obs, reward, terminated, _, unparsed = env.step("xyzzy plugh")
    assert "No known action" in obs and unparsed["action_valid"] is False and not terminated
    # Planning (here, mid-episode) reloads the task, then replays the command above to restore the state.
    assert unparsed["expert_action"] == env.gold_actions("find-animal/225")[0]  # unparsed: changes nothing
    obs, _, _, _, strayed = env.step("look around")
    assert strayed["expert_action"] is None and list(tmp_path.rglob("find-animal-225/gold.json"))
    assert any(action.startswith("focus on") for action in strayed["admissible_actions"])
    obs, reward, terminated, truncated, info = env.step("focus on door to hallway")  # not an animal
    family = info["scienceworld"]
    assert terminated and not truncated and family["failed"] and family["score"] < 0
    assert info["won"] is False and info["score"] == 0.0 and reward < 0
    assert info["expert_action"] is None
    assert next_gold_action(["a", "b"], [("a", True), ("zz", False)]) == "b"
    assert next_gold_action(["a", "b"], [("a", True), ("c", True)]) is None


def test_killed_or_hung_jvm_raises_engine_fault_then_resets_cleanly(env):
    env.set_info_keys(["admissible_actions"])  # no gold planning for boil
    _, info = env.reset(options={"task_id": "boil/21"})  # some history in this JVM first
    for action in info["admissible_actions"][:3]:
        env.step(action)
    seen_obs, info = env.reset(options={"task_id": SHORT_TASK})
    seen = (seen_obs, info["admissible_actions"])
    env.step("look around")
    pid = env.jvm_pid
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(EngineFault, match=SHORT_TASK) as caught:
        env.step("look around")
    assert caught.value.task_id == SHORT_TASK
    assert _gone(pid)
    obs, info = env.reset(options={"task_id": SHORT_TASK})
    assert env.jvm_pid not in (None, pid) and info["turn"] == 0
    assert (obs, info["admissible_actions"]) == seen  # a fresh JVM gives the same state: no history effect
    assert env.step(env.gold_actions(SHORT_TASK)[0])[4]["action_valid"]

    env.step_timeout = 2.0
    pid = env.jvm_pid
    os.kill(pid, signal.SIGSTOP)  # the JVM stops answering
    started = time.monotonic()
    with pytest.raises(EngineFault, match="timed out after 2 s"):
        env.step("look around")
    assert time.monotonic() - started < 10 and _gone(pid)
    env.step_timeout = 60.0
    _, info = env.reset(options={"task_id": SHORT_TASK})
    assert info["task_id"] == SHORT_TASK and env.jvm_pid != pid


def test_close_and_interpreter_exit_stop_the_jvm():
    env = gym.make(ENV_ID, split="test", expert=False)
    _, info = env.reset(options={"task_id": SHORT_TASK})
    assert info["expert_action"] is None and env.step("look around")[4]["expert_action"] is None
    pid = env.unwrapped.jvm_pid
    env.close()
    env.close()
    assert _gone(pid) and env.unwrapped.jvm_pid is None
    script = (
        "from agentgym.envs.scienceworld import ScienceWorldEnv\n"
        "env = ScienceWorldEnv(split='test')\n"
        f"env.reset(options={{'task_id': {SHORT_TASK!r}}})\n"
        "print(env.jvm_pid, flush=True)\n"  # exits without close()
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    pid = int(out.stdout.split()[-1])
    deadline = time.monotonic() + 10
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(pid), "the JVM outlived its Python process"


def test_rollout_with_two_worker_processes():
    factory = functools.partial(gym.make, ENV_ID, split="test", max_turns=4, expert=False)  # no gold planning
    specs = [EpisodeSpec(f"e{i}", task_id, 0) for i, task_id in enumerate([SHORT_TASK, "boil/21"])]
    trajectories = rollout(factory, RandomAgent(seed=1), specs, num_workers=2)
    assert [t.task_id for t in trajectories] == [SHORT_TASK, "boil/21"]
    for trajectory in trajectories:
        assert 1 <= len(trajectory.turns) <= 4
        infos = [trajectory.initial_info] + [turn.info for turn in trajectory.turns]
        for info, turn in zip(infos, trajectory.turns):
            assert turn.action in info["admissible_actions"]  # the random agent picked from them


@pytest.fixture(scope="module")
def expert_env():
    env = ScienceWorldEnv(split="test", max_turns=400)
    yield env
    env.close()


@pytest.mark.slow
@pytest.mark.parametrize("task_type", list(sw_tasks.TASK_TYPES))
def test_expert_solves_first_test_variation(expert_env, task_type):
    task_id = f"{task_type}/{sw_tasks.official_variations(task_type, 'test')[0]}"
    _, info = expert_env.reset(options={"task_id": task_id})
    terminated = truncated = False
    while not (terminated or truncated):
        assert info["expert_action"], f"{task_id}: the gold sequence ran out at turn {info['turn']}"
        _, _, terminated, truncated, info = expert_env.step(info["expert_action"])
    assert info["won"] and info["score"] == 1.0 and info["scienceworld"]["score"] == 100, task_id


def test_anchor_is_a_key_of_the_state_revisits_give_the_same_anchor(env):
    """``anchor_obs`` is the room ("look around") and the inventory, not the engine's last message."""
    env.set_info_keys(())  # always present, whatever info_keys ask for
    _, start = env.reset(options={"task_id": "find-living-thing/225"})  # starts in the art studio, door closed
    assert start["anchor_obs"].startswith("This room is called the art studio.") and "inventory" in start["anchor_obs"]
    opened = env.step("open door to hallway")[4]
    hallway = env.step("go to hallway")[4]
    back = env.step("go to art studio")[4]
    assert "hallway" in hallway["anchor_obs"].splitlines()[0] and hallway["anchor_obs"] != opened["anchor_obs"]
    assert back["anchor_obs"] == opened["anchor_obs"]  # the same state again, at another turn and move count
    assert back["scienceworld"]["moves"] > opened["scienceworld"]["moves"]
    looked = env.step("look around")
    assert looked[4]["anchor_obs"] == opened["anchor_obs"] and looked[0] != env.step("inventory")[0]
    unparsed = env.step("xyzzy plugh")[4]  # "No known action matches that input.": the state is unchanged
    assert not unparsed["action_valid"] and unparsed["anchor_obs"] == opened["anchor_obs"]
    assert opened["anchor_obs"] != start["anchor_obs"]  # the door's state is part of the key


def test_gold_length_in_info_and_a_warning_when_it_exceeds_max_turns():
    from agentgym.envs.scienceworld.gold import GOLD_LENGTHS, GoldExceedsMaxTurns, gold_length_table

    env = ScienceWorldEnv(split="test", max_turns=2)  # SHORT_TASK's gold sequence has 4 actions (wins after 3)
    try:
        # At reset when the gold sequence is in the disk cache, else when the expert action plans it.
        with pytest.warns(
            GoldExceedsMaxTurns, match=r"lifespan-longest-lived/93 .*variation 93.* 4 actions.*max_turns=2"
        ):
            _, info = env.reset(options={"task_id": SHORT_TASK})
            expert = info["expert_action"]
        info = env.step(expert)[4]
        assert info["scienceworld"]["gold_length"] == 4 and info["scienceworld"]["gold_exceeds_max_turns"] is True
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # once per task: no second warning
            _, info = env.reset(options={"task_id": SHORT_TASK})
            assert info["scienceworld"]["gold_exceeds_max_turns"] is True  # known from reset on now
            for _ in range(2):
                _, _, terminated, truncated, info = env.step(info["expert_action"])
        assert truncated and not terminated and not info["won"]  # the expert's truncated episode is a failure
        env.max_turns = 100
        _, info = env.reset(options={"task_id": SHORT_TASK})
        assert info["scienceworld"]["gold_length"] == 4 and info["scienceworld"]["gold_exceeds_max_turns"] is False
    finally:
        env.close()
    assert set(GOLD_LENGTHS) == set(sw_tasks.TASK_TYPES)
    for task_type, splits in GOLD_LENGTHS.items():
        assert set(splits) == {"train", "valid", "test"}, task_type
        for split, (low, high, measured) in splits.items():
            official = {"valid": "dev"}.get(split, split)
            assert 0 < low <= high and 0 < measured <= len(sw_tasks.official_variations(task_type, official))
    low, high, _ = GOLD_LENGTHS["lifespan-longest-lived"]["test"]
    assert low <= 4 <= high
    table = gold_length_table(100)
    assert len(table.splitlines()) == 31 and "*" in table.splitlines()[1]  # boil's test variations pass 100
