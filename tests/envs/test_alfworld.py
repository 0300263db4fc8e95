"""ALFWorld on the real engine: the game generator, splits, the official-data loader, the experts, and (slow)
the generator's walkthroughs winning every valid game and a seeded train sample.

The conformance test (``check_env(..., split="test")``) runs in tests/test_conformance.py.
"""

import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import gymnasium as gym
import pytest

import agentgym  # noqa: F401
from agentgym.envs.alfworld import ALFWorldEnv, floorplans, generator, tasks
from agentgym.error import InvalidArgumentError, TaskFileError

ENV_ID = "agentgym/ALFWorld-v0"


def _small_train_task(task_type):
    """The task of this type on the training floor plan with the fewest receptacles (fast to load)."""
    plan = min(floorplans.feasible_floor_plans(task_type, "train"), key=lambda p: len(floorplans.scene(p).receptacles))
    return tasks.task_id(plan, task_type, 0)


def _init_facts(problem: str) -> list[tuple[str, ...]]:
    init = problem.split("(:init", 1)[1].split("(:goal", 1)[0]
    return [tuple(match.split()) for match in re.findall(r"\(([^()]+)\)", init)]


def test_split_sizes_counts_and_disjointness():
    sizes = {name: len(tasks.split_triples(name)) for name in ("train", "valid_seen", "valid_unseen")}
    assert sizes == {"train": 3553, "valid_seen": 140, "valid_unseen": 134}
    for name, counts in tasks.SPLIT_COUNTS.items():
        assert Counter(t for _, t, _ in tasks.split_triples(name)) == counts
    triples = {name: set(tasks.split_triples(name)) for name in tasks.SPLITS}
    assert len(triples["train"]) == 3553  # no duplicate ids
    assert not triples["train"] & triples["valid_seen"]
    plans = {name: {p for p, _, _ in triples[name]} for name in triples}
    assert plans["valid_seen"] <= plans["train"], "valid_seen must use seen floor plans"
    assert not plans["valid_unseen"] & (plans["train"] | plans["valid_seen"]), "unseen floor plans leak"
    assert triples["test"] == triples["valid_unseen"] and triples["valid"] == triples["valid_seen"]
    # RLVMR-style levels
    held_out = tasks.L2_HELD_OUT
    assert {t for _, t, _ in triples["L2"]} == {held_out}
    assert all(held_out not in {t for _, t, _ in triples[name]} for name in ("train_L", "L0", "L1"))
    assert triples["L0"] <= triples["valid_seen"] and triples["L1"] <= triples["valid_unseen"]
    assert not {p for p, _, _ in triples["L1"]} & {p for p, _, _ in triples["train_L"]}
    assert {t for _, t, _ in triples["train_L"]} | {held_out} == set(tasks.TASK_TYPES)


def test_generation_is_byte_identical_across_processes_and_caches(tmp_path, monkeypatch):
    ids = [
        tasks.task_id(402, "pick_clean_then_place_in_recep", 3),
        tasks.task_id(10, "pick_cool_then_place_in_recep", 0),
    ]
    folders = []
    for name in ("a", "b"):
        monkeypatch.setenv("AGENTGYM_CACHE", str(tmp_path / name))
        folders.append([tasks.game_path(task_id).parent for task_id in ids])
    script = (
        "import sys, json; from agentgym.envs.alfworld import tasks; "
        "print(json.dumps([str(tasks.game_path(t).parent) for t in sys.argv[1:]]))"
    )
    env = {**os.environ, "AGENTGYM_CACHE": str(tmp_path / "c"), "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", script, *ids], env=env, capture_output=True, text=True, check=True)
    folders.append([Path(p) for p in json.loads(out.stdout)])
    for index in range(len(ids)):
        for filename in ("game.tw-pddl", "traj_data.json", "initial_state.pddl"):
            contents = {(run[index] / filename).read_bytes() for run in folders}
            assert len(contents) == 1, f"{ids[index]} {filename} differs between runs"
    # a different seed gives a different game
    other = generator.generate(402, "pick_clean_then_place_in_recep", 4)["initial_state"]
    assert other != (folders[0][0] / "initial_state.pddl").read_text()


@pytest.mark.parametrize("split", ["valid_seen", "valid_unseen"])
def test_generated_games_are_well_formed_and_never_half_satisfied(split):
    for plan, task_type, seed in tasks.split_triples(split):
        made = generator.generate(plan, task_type, seed)
        game, traj = made["game"], made["traj_data"]
        assert game["solvable"] is True and game["walkthrough"]
        assert traj["task_type"] == task_type and traj["scene"]["scene_num"] == plan
        assert made["initial_state"] == game["pddl_problem"] and "UNKNOWN GOAL" not in game["grammar"]
        params = traj["pddl_params"]
        facts = _init_facts(game["pddl_problem"])
        types = {f[1]: f[2] for f in facts if f[0] in ("objectType", "receptacleType")}
        inside = [(f[1], f[2]) for f in facts if f[0] == "inReceptacle"]
        targets = [o for o, _ in inside if types[o] == params["object_target"] + "Type"]
        assert len(targets) >= (2 if task_type == "pick_two_obj_and_place" else 1)
        if params["parent_target"]:
            wrong = [(o, r) for o, r in inside if o in targets and types[r] == params["parent_target"] + "Type"]
            assert not wrong, f"{plan}/{task_type}/{seed}: goal half satisfied at the start"
        else:
            assert not any(f[0] in ("isToggled", "holds") for f in facts)


def test_walkthrough_wins_and_info_on_the_real_engine():
    env = gym.make(ENV_ID, split="valid_unseen", expert=None)
    task_id = next(t for t in env.unwrapped.task_ids if t.startswith("FloorPlan30") and "pick_two" in t)
    obs, info = env.reset(options={"task_id": task_id})
    assert obs.startswith("-= Welcome to TextWorld, ALFRED! =-") and f"Your task is to: {info['goal']}" in obs
    family = info["alfworld"]
    assert family["task_source"] == "generated" and family["alfworld_version"] == floorplans.alfworld_version()
    assert family["task_type"] == task_id.split("/")[1] and family["action_vocabulary"] == "move {o} to {r}"
    manifest = env.unwrapped.manifest
    assert "alfworld 0.4.2" in manifest.engine_version and "generated" in manifest.engine_version
    obs, reward, terminated, truncated, info = env.step("fly to the moon")
    assert obs == "Nothing happens." and not info["action_valid"] and reward == 0.0 and not terminated
    walkthrough = family["walkthrough"]
    env.reset(options={"task_id": task_id})
    for index, action in enumerate(walkthrough):
        assert action in info["admissible_actions"]
        obs, reward, terminated, truncated, info = env.step(action)
        assert info["action_valid"] and terminated == (index == len(walkthrough) - 1)
    assert info["won"] and reward == 1.0 and info["score"] == 1.0
    env.close()


@pytest.mark.parametrize(
    "task_type", ["look_at_obj_in_light", "pick_clean_then_place_in_recep", "pick_two_obj_and_place"]
)
def test_handcoded_expert_actions_are_admissible(task_type):
    env = ALFWorldEnv(split="train", expert="handcoded", max_turns=60)
    task_id = _small_train_task(task_type)
    runs = []
    for _ in range(2):
        obs, info = env.reset(options={"task_id": task_id})
        trace = [info["expert_action"]]
        terminated = truncated = False
        while not (terminated or truncated) and info["expert_action"] is not None:
            assert info["expert_action"] in info["admissible_actions"], info["expert_action"]
            obs, reward, terminated, truncated, info = env.step(info["expert_action"])
            trace.append(info["expert_action"])
        runs.append((trace, info["won"]))
    assert runs[0] == runs[1], "the handcoded expert must be deterministic per episode"
    assert len(runs[0][0]) > 1
    env.close()


def test_planner_expert_follows_to_a_win():
    env = ALFWorldEnv(split="train", expert="planner", planner_timeout=60)
    task_id = _small_train_task("pick_clean_then_place_in_recep")
    obs, info = env.reset(options={"task_id": task_id})
    for _ in range(20):
        assert info["expert_action"] in info["admissible_actions"]
        obs, reward, terminated, truncated, info = env.step(info["expert_action"])
        if terminated:
            break
    assert info["won"] and info["expert_action"] is None
    env.close()


def test_official_layout_loader(tmp_path, monkeypatch):
    pytest.importorskip("alfworld")
    tasks.export_official_layout("valid_unseen", tmp_path, limit=3)
    tasks.export_official_layout("train", tmp_path, limit=2)
    unsolvable = next((tmp_path / "json_2.1.1" / "train").glob("*/trial_*"))
    game = json.loads((unsolvable / "game.tw-pddl").read_text())
    (unsolvable / "game.tw-pddl").write_text(json.dumps({**game, "solvable": False}))
    env = ALFWorldEnv(split="test", data_dir=tmp_path, expert=None)
    assert len(env.task_ids) == 3 and all(t.startswith("valid_unseen/") for t in env.task_ids)
    assert "alfworld-download" in env.manifest.engine_version
    assert all(task.definition["source"] == "alfworld-download" for task in env.tasks.tasks)
    obs, info = env.reset(options={"task_id": env.task_ids[0]})
    assert info["alfworld"]["task_source"] == "alfworld-download"
    for action in info["alfworld"]["walkthrough"]:
        obs, reward, terminated, truncated, info = env.step(action)
    assert info["won"]
    env.close()
    assert len(ALFWorldEnv(split="train", data_dir=tmp_path).task_ids) == 1  # the unsolvable game is skipped
    monkeypatch.setenv("ALFWORLD_DATA", str(tmp_path))
    assert ALFWorldEnv(split="valid_unseen").task_source == "alfworld-download"
    assert ALFWorldEnv(split="valid_unseen", data_dir="generated").task_source == "generated"
    # ALFWorld's own loader finds the same games in the folder
    from alfworld.agents.environment.alfred_tw_env import AlfredTWEnv

    config = {
        "env": {"goal_desc_human_anns_prob": 0, "task_types": [1, 2, 3, 4, 5, 6]},
        "dataset": {
            "eval_ood_data_path": str(tmp_path / "json_2.1.1" / "valid_unseen"),
            "num_eval_games": -1,
        },
    }
    assert len(AlfredTWEnv(config, train_eval="eval_out_of_distribution").game_files) == 3


def test_bad_arguments_raise_helpfully(tmp_path):
    with pytest.raises(InvalidArgumentError, match="valid_unseen"):
        ALFWorldEnv(split="valid_unsen")
    with pytest.raises(TaskFileError, match="json_2.1.1"):
        ALFWorldEnv(data_dir=tmp_path)
    with pytest.raises(InvalidArgumentError, match="expert"):
        ALFWorldEnv(expert="wizard")


# -------------------------------------------------------------------------------------- slow: walkthroughs
def _sample(name):
    if name == "train":
        return random.Random(2024).sample(tasks.split_triples("train"), 200)
    return tasks.split_triples(name)


def _chunks():
    train = _sample("train")
    return {
        "valid_seen": tasks.split_triples("valid_seen"),
        "valid_unseen": tasks.split_triples("valid_unseen"),
        "train_sample_a": train[:100],
        "train_sample_b": train[100:],
    }


@pytest.mark.slow
@pytest.mark.parametrize("chunk", sorted(_chunks()))
def test_walkthrough_wins_every_game(chunk):
    """Replays each generated game's walkthrough on the real engine (one env reused per chunk; pytest -n 2
    runs the chunks in parallel): every action admissible, and the last one wins."""
    split = "train" if chunk.startswith("train") else chunk
    env = ALFWorldEnv(split=split, expert=None, max_turns=100)
    failures = []
    for plan, task_type, seed in _chunks()[chunk]:
        task_id = tasks.task_id(plan, task_type, seed)
        obs, info = env.reset(options={"task_id": task_id})
        for action in info["alfworld"]["walkthrough"]:
            if action not in info["admissible_actions"]:
                failures.append((task_id, action))
                break
            obs, reward, terminated, truncated, info = env.step(action)
        if not info["won"]:
            failures.append((task_id, "not won"))
    env.close()
    assert not failures, failures[:5]


# -------------------------------------------------------------------------------------- bad user data
def _corrupt(path, change):
    data = json.loads(path.read_text())
    path.write_text(change(data) if callable(change) else change)


@pytest.mark.parametrize(
    ("file", "change", "message"),
    [
        ("traj_data.json", "[]", r"traj_data.json: expected a JSON object .*, got a list"),
        ("traj_data.json", '{"task_type": "pick_and_place_simple", "pdd', r"traj_data.json: not valid JSON"),
        ("traj_data.json", "", r"traj_data.json: not valid JSON"),
        (
            "traj_data.json",
            lambda d: json.dumps({k: v for k, v in d.items() if k != "pddl_params"}),
            r"traj_data.json: missing field 'pddl_params'; expected an object",
        ),
        (
            "traj_data.json",
            lambda d: json.dumps({**d, "pddl_params": {**d["pddl_params"], "object_target": None}}),
            r"traj_data.json: field 'pddl_params.object_target' must be a string, got null",
        ),
        (
            "traj_data.json",
            lambda d: json.dumps({k: v for k, v in d.items() if k != "task_type"}),
            r"traj_data.json: missing field 'task_type'; expected a string",
        ),
        ("game.tw-pddl", "[1, 2]", r"game.tw-pddl: expected a JSON object .*, got a list"),
        (
            "game.tw-pddl",
            lambda d: json.dumps({k: v for k, v in d.items() if k != "grammar"}),
            r"game.tw-pddl: missing field 'grammar'; expected a string",
        ),
    ],
)
def test_bad_official_files_name_file_and_field_at_construction(tmp_path, file, change, message):
    tasks.export_official_layout("valid_unseen", tmp_path, limit=1)
    _corrupt(next(tmp_path.rglob(file)), change)
    with pytest.raises(TaskFileError, match=message):
        ALFWorldEnv(split="valid_unseen", data_dir=tmp_path, expert=None)


def test_a_traj_file_broken_after_construction_fails_at_reset_before_the_engine(tmp_path):
    tasks.export_official_layout("valid_unseen", tmp_path, limit=1)
    env = ALFWorldEnv(split="valid_unseen", data_dir=tmp_path, expert="handcoded")
    _corrupt(next(tmp_path.rglob("traj_data.json")), lambda d: json.dumps({**d, "pddl_params": []}))
    bad_params = r"traj_data.json: field 'pddl_params' must be an object, got a list"
    with pytest.raises(TaskFileError, match=bad_params):
        env.reset(options={"task_id": env.task_ids[0]})
    assert env._engine is None, "no engine may start on a bad task file"
    env.close()


def test_unsolvable_or_other_task_types_are_skipped_without_checking_their_params(tmp_path):
    """As ALFWorld's loader: skipped games are not played, so their pddl_params are not required."""
    tasks.export_official_layout("valid_unseen", tmp_path, limit=2)
    skipped = sorted(tmp_path.rglob("traj_data.json"))[0]
    _corrupt(skipped, lambda d: json.dumps({"task_type": "pick_and_place_with_movable_recep"}))
    env = ALFWorldEnv(split="valid_unseen", data_dir=tmp_path, expert=None)
    assert env.task_ids == [
        path.parent.relative_to(tmp_path / "json_2.1.1").as_posix()
        for path in sorted(tmp_path.rglob("traj_data.json"))
        if path != skipped
    ]
    env.close()
