"""ALFWorld's fast engine path against the stock engine (issue 11): identical observations, admissible
commands, rewards, scores, won flags and state anchors on the same actions; ``exact_stock=True`` runs the
unmodified engine even in a process where fast envs run; the seam check falls back to stock speed, with a
warning, when a seam is missing; the on-disk translation cache gives the same results, and leaving the
costly expert out of ``info_keys`` changes nothing else."""

import cProfile
import json
import pickle
import pstats
import random
import subprocess
import sys

import pytest

from agentgym.envs.alfworld import ALFWorldEnv, caches, engine, floorplans, patches, seams, tasks


def _small_train_tasks(per_type):
    """``per_type`` train tasks of each of the six types, on the floor plans with the fewest receptacles."""
    chosen = []
    triples = tasks.split_triples("train")
    for task_type in tasks.TASK_TYPES:
        ranked = sorted(
            (t for t in triples if t[1] == task_type), key=lambda t: (len(floorplans.scene(t[0]).receptacles), t)
        )
        chosen += [tasks.task_id(*t) for t in ranked[:per_type]]
    return chosen


def _engine_class(env):
    return type(env._engine.pddl_env)


def _record(obs, reward, terminated, truncated, info):
    return {
        "observation": obs,
        "reward": reward,
        "terminated": terminated,
        "truncated": truncated,
        "admissible_actions": info["admissible_actions"],
        "action_valid": info["action_valid"],
        "score": info["score"],
        "won": info["won"],
        "anchor_obs": info["anchor_obs"],
    }


def _scripted(turn):
    """The scripted action kinds: an invalid command every 7th turn, a mis-cased admissible one every 9th
    (the engine answers "Nothing happens." but ``action_valid`` normalises case), else a random one."""
    return "jump over the fridge" if turn % 7 == 6 else "UPPER" if turn % 9 == 4 else "RANDOM"


#: engine.py's functions that only the fast path runs.
FAST_ONLY = {"_applicable_actions", "_gather_infos", "_derive_commands", "static_templates", "_static_flags", "load"}


def _fast_functions_called(profile):
    """Functions of the fast path that ran: of the patches and memos (other than the dispatchers that call the
    originals), and FastPddlEnv's own (engine.py's Engine adapter runs for both paths)."""
    stats = pstats.Stats(profile).stats
    fast_files = {patches.__file__, caches.__file__}
    return {
        name
        for (file, _, name) in stats
        if (file in fast_files and name != "call") or (file == engine.__file__ and name in FAST_ONLY)
    }


@pytest.mark.slow
def test_fast_path_is_identical_to_stock_on_500_states(tmp_path, monkeypatch):
    """Replays the same actions (random admissible commands, invalid and mis-cased ones, a reset after
    steps, then the walkthrough to the win) through a fast env and an ``exact_stock=True`` env side by
    side in one process, on games of all six task types; half the games are loaded from the on-disk
    translation cache. The stock env must never run a fast branch."""
    monkeypatch.setenv("AGENTGYM_CACHE", str(tmp_path))
    fast_env = ALFWorldEnv(split="train", expert=None, max_turns=200)
    stock_env = ALFWorldEnv(split="train", expert=None, max_turns=200, exact_stock=True)
    warmer = ALFWorldEnv(split="train", expert=None, max_turns=200)
    assert fast_env.fast_engine and not stock_env.fast_engine
    states = 0
    types, won_types = set(), set()
    for index, task_id in enumerate(_small_train_tasks(per_type=2)):
        if index % 2:  # fill the disk cache, forget the in-memory memos: the fast env loads from disk
            warmer.reset(options={"task_id": task_id})
            caches.clear_memory_caches()
        rng = random.Random(task_id)
        both = [env.reset(options={"task_id": task_id}) for env in (fast_env, stock_env)]
        if index == 0:  # the stock env runs only the unpatched originals, even with fast envs alive
            profile = cProfile.Profile()
            profile.runcall(stock_env.reset, options={"task_id": task_id})
            profile.runcall(stock_env.step, both[1][1]["alfworld"]["walkthrough"][0])
            assert not _fast_functions_called(profile)
            both[1] = stock_env.reset(options={"task_id": task_id})
        assert _engine_class(fast_env) is not _engine_class(stock_env)
        assert _engine_class(stock_env).__module__ == "textworld.envs.pddl.pddl"
        (fast_obs, fast_info), (stock_obs, stock_info) = both
        assert (fast_obs, fast_info["admissible_actions"]) == (stock_obs, stock_info["admissible_actions"])
        assert fast_info["anchor_obs"] == stock_info["anchor_obs"]
        stock_step = {"admissible_actions": stock_info["admissible_actions"], "terminated": False}
        walkthrough = stock_info["alfworld"]["walkthrough"]
        # even games: random commands, a reset after steps (no new load), the walkthrough to the win;
        # odd games: a longer run of random commands
        plan = [_scripted(turn) for turn in range(20 if index % 2 == 0 else 56)]
        if index % 2 == 0:
            plan += ["RESET", *walkthrough]
        states += 1
        for action in plan:
            if action == "RESET":  # a reset after steps, without a new load
                outcomes = [env.reset(options={"task_id": task_id}) for env in (fast_env, stock_env)]
                assert outcomes[0][0] == outcomes[1][0]
                assert outcomes[0][1]["admissible_actions"] == outcomes[1][1]["admissible_actions"]
                assert outcomes[0][1]["anchor_obs"] == outcomes[1][1]["anchor_obs"]
                stock_step = {"admissible_actions": outcomes[1][1]["admissible_actions"], "terminated": False}
                states += 1
                continue
            if stock_step["terminated"]:
                continue  # won during the random commands: wait for the reset
            if action == "RANDOM":
                action = rng.choice(sorted(stock_step["admissible_actions"]))
            elif action == "UPPER":
                action = "  " + rng.choice(stock_step["admissible_actions"]).upper()
            fast_step = _record(*fast_env.step(action))
            stock_step = _record(*stock_env.step(action))
            assert fast_step == stock_step, (task_id, action)
            states += 1
        if index % 2 == 0:
            assert stock_step["won"] and stock_step["score"] == 1.0, f"{task_id}: the walkthrough must win"
            won_types.add(task_id.split("/")[1])
        types.add(task_id.split("/")[1])
    for env in (fast_env, stock_env, warmer):
        env.close()
    assert types == won_types == set(tasks.TASK_TYPES)
    assert states >= 500, states


def test_expert_action_is_computed_only_when_asked_for_and_changes_nothing_else(tmp_path, monkeypatch):
    """``info_keys=()`` leaves the costly ``expert_action`` out of info (absent, not None); observations and
    admissible commands are those of an env that computes it; the info pickles."""
    monkeypatch.setenv("AGENTGYM_CACHE", str(tmp_path))
    task_id = _small_train_tasks(per_type=1)[0]
    full, lean = ALFWorldEnv(split="train"), ALFWorldEnv(split="train", info_keys=())
    assert ALFWorldEnv.costly_info_keys == {"expert_action"}
    obs, info = full.reset(options={"task_id": task_id})
    lean_obs, lean_info = lean.reset(options={"task_id": task_id})
    assert "expert_action" not in lean_info and info["expert_action"] in info["admissible_actions"]
    rng = random.Random(7)
    for turn in range(12):
        action = "look around the room" if turn == 5 else rng.choice(info["admissible_actions"])
        obs, reward, terminated, truncated, info = full.step(action)
        lean_obs, _, _, _, lean_info = lean.step(action)
        assert lean_obs == obs and lean_info["admissible_actions"] == info["admissible_actions"]
        assert lean_info["action_valid"] == info["action_valid"] == (turn != 5)
        assert "expert_action" not in lean_info and "expert_action" in info
    assert pickle.loads(pickle.dumps(lean_info))["admissible_actions"] == info["admissible_actions"]
    full.close()
    lean.close()


def test_disk_cache_round_trip(tmp_path, monkeypatch):
    """The translation and grammar parse land on disk keyed by the game's content, a fresh process-state
    reads them back with the same result, a damaged entry is recomputed, and the cache can be turned off."""
    monkeypatch.setenv("AGENTGYM_CACHE", str(tmp_path / "cache"))
    caches.clear_memory_caches()  # another test in this worker may have loaded the same game already
    task_id = _small_train_tasks(per_type=1)[1]
    env = ALFWorldEnv(split="train", expert=None)
    first = env.reset(options={"task_id": task_id})
    entries = sorted(caches.disk_cache_dir().rglob("*.pkl.z"))
    assert {entry.parent.parent.name for entry in entries} == {"sas", "grammar"}
    caches.clear_memory_caches()
    env.close()
    env = ALFWorldEnv(split="train", expert=None)
    again = env.reset(options={"task_id": task_id})
    assert again[0] == first[0] and again[1]["admissible_actions"] == first[1]["admissible_actions"]
    for entry in entries:
        entry.write_bytes(b"damaged")
    caches.clear_memory_caches()
    env.close()
    env = ALFWorldEnv(split="train", expert=None)
    repaired = env.reset(options={"task_id": task_id})
    assert repaired[1]["admissible_actions"] == first[1]["admissible_actions"]
    assert all(entry.read_bytes() != b"damaged" for entry in entries)
    env.close()
    monkeypatch.setenv("AGENTGYM_CACHE", str(tmp_path / "off"))
    monkeypatch.setenv(caches.DISK_CACHE_VARIABLE, "0")
    caches.clear_memory_caches()
    env = ALFWorldEnv(split="train", expert=None)
    assert env.reset(options={"task_id": task_id})[0] == first[0]
    assert not (tmp_path / "off" / "alfworld-engine").exists()
    env.close()


def test_seam_check_names_missing_seams_and_versions(monkeypatch):
    assert seams.AVAILABLE and seams.seam_problems() == []
    monkeypatch.setitem(seams.PINNED, "textworld", "0.0.1")
    monkeypatch.setitem(seams.SOURCES, "textworld.envs.pddl.PddlEnv._no_such_seam", "0")
    problems = seams.seam_problems()
    assert any("textworld 1.7.0 (fast path pinned to 0.0.1)" in p for p in problems)
    assert any("PddlEnv._no_such_seam is missing" in p for p in problems)


_FALLBACK = """
import json, sys, warnings
import textworld.envs.pddl as pddl

original = pddl.PddlEnv._gather_infos

def _gather_infos(self):  # a different seam than the one the fast path was verified against
    return original(self)

pddl.PddlEnv._gather_infos = _gather_infos
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from agentgym.envs.alfworld import ALFWorldEnv, seams
    env = ALFWorldEnv(split="train", expert=None)
obs, info = env.reset(options={"task_id": sys.argv[1]})
obs, reward, terminated, truncated, info = env.step(info["alfworld"]["walkthrough"][0])
print(json.dumps({
    "available": seams.AVAILABLE,
    "warnings": [str(w.message) for w in caught if w.category is RuntimeWarning],
    "engine": info["alfworld"]["engine"],
    "engine_class": type(env._engine.pddl_env).__name__,
    "action_valid": info["action_valid"],
}))
"""


def test_missing_seam_falls_back_to_the_stock_engine_with_a_warning():
    task_id = _small_train_tasks(per_type=1)[0]
    out = subprocess.run(
        [sys.executable, "-c", _FALLBACK, task_id], capture_output=True, text=True, check=True, timeout=300
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["available"] is False
    assert len(result["warnings"]) == 1 and "PddlEnv._gather_infos changed" in result["warnings"][0]
    assert "stock" in result["warnings"][0]
    assert result["engine"] == "stock" and result["engine_class"] == "PddlEnv" and result["action_valid"]
