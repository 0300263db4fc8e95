"""ALFWorld's ``anchor_obs`` is a key of the engine state (issue 16): revisiting a state gives the same
anchor, failed and refused actions leave it unchanged, changing the state changes it, and over a random walk
anchors and engine states correspond one to one; the fast path and ``exact_stock=True`` give the same
anchors."""

import random

import pytest

from agentgym.envs.alfworld import ALFWorldEnv, anchor, floorplans, tasks

TASK = "FloorPlan1/pick_and_place_simple/200000"  # bread 2 on countertop 1, goal: put it in fridge 1


@pytest.fixture(scope="module")
def env():
    made = ALFWorldEnv(split="valid_unseen", expert=None, max_turns=200)
    yield made
    made.close()


def _engine_key(env):
    """The world state itself: every PDDL fact except those the anchor leaves out by design (and textworld's
    ``not_`` residue of removed facts, which is history)."""
    state = env._engine.pddl_state
    return frozenset(str(fact) for fact in state.facts if fact.name not in anchor.LEFT_OUT and not fact.is_negation)


def test_revisits_failed_actions_and_changes(env):
    obs, info = env.reset(options={"task_id": TASK})
    start = info["anchor_obs"]
    assert start == "at: the middle of the room\nseen: nothing\nholding: nothing"
    _, _, _, _, info = env.step("go to countertop 1")
    at_counter = info["anchor_obs"]
    assert at_counter.startswith("at: countertop 1\nseen: bread 2, ") and "holding: nothing" in at_counter
    _, _, _, _, info = env.step("go to countertop 2")
    assert info["anchor_obs"] not in (start, at_counter)
    _, _, _, _, info = env.step("go to countertop 1")
    assert info["anchor_obs"] == at_counter, "the same state revisited must give the same anchor"
    obs, _, _, _, info = env.step("take bread 9 from countertop 1")  # the engine cannot: same state
    assert obs == "Nothing happens." and not info["action_valid"] and info["anchor_obs"] == at_counter
    obs, _, _, _, info = env.step("go to\x00countertop 2")  # refused before the engine
    assert obs.startswith("Invalid action") and info["anchor_obs"] == at_counter
    _, _, _, _, info = env.step("take bread 2 from countertop 1")
    holding = info["anchor_obs"]
    assert holding != at_counter and "holding: bread 2" in holding and "seen: bread 2" not in holding
    assert "-inreceptacle(bread 2, countertop 1)" in holding
    _, _, _, _, info = env.step("go to fridge 1")
    assert info["anchor_obs"].startswith("at: fridge 1 (closed)\nseen: nothing\nholding: bread 2")
    closed = info["anchor_obs"]
    _, _, _, _, info = env.step("open fridge 1")
    opened = info["anchor_obs"]
    assert opened.startswith("at: fridge 1 (open)\nseen: ") and "+opened(fridge 1)" in opened
    _, _, _, _, info = env.step("close fridge 1")  # back to the same state (opening also set `checked`)
    assert info["anchor_obs"] == closed
    _, _, _, _, info = env.step("go to countertop 1")
    assert info["anchor_obs"] != at_counter, "the bread is no longer there: another state"
    obs, info = env.reset(options={"task_id": TASK})
    assert info["anchor_obs"] == start


def _small_train_task(task_type):
    plan = min(floorplans.feasible_floor_plans(task_type, "train"), key=lambda p: len(floorplans.scene(p).receptacles))
    return tasks.task_id(plan, task_type, 0)


@pytest.mark.parametrize(
    ("split", "task_id"),
    [("valid_unseen", TASK), ("train", _small_train_task("pick_clean_then_place_in_recep"))],
)
def test_anchors_and_engine_states_correspond_one_to_one(split, task_id):
    """A seeded random walk (admissible commands, every 9th one invalid, a reset after a win): equal
    anchors if and only if equal engine states."""
    env = ALFWorldEnv(split=split, expert=None, max_turns=500)
    rng = random.Random(3)
    state_of_anchor, anchor_of_state = {}, {}
    obs, info = env.reset(options={"task_id": task_id})
    for turn in range(120):
        state = _engine_key(env)
        assert state_of_anchor.setdefault(info["anchor_obs"], state) == state, "one anchor, two states"
        assert anchor_of_state.setdefault(state, info["anchor_obs"]) == info["anchor_obs"], "two anchors"
        action = "jump" if turn % 9 == 8 else rng.choice(sorted(info["admissible_actions"]))
        obs, _, terminated, _, info = env.step(action)
        if terminated:
            obs, info = env.reset(options={"task_id": task_id})
    env.close()
    assert len(state_of_anchor) > 15, "the walk must visit many states"


def test_fast_and_stock_give_the_same_anchors():
    stock = ALFWorldEnv(split="valid_unseen", expert=None, exact_stock=True)
    quick = ALFWorldEnv(split="valid_unseen", expert=None)
    rng = random.Random(5)
    anchors = [env.reset(options={"task_id": TASK})[1]["anchor_obs"] for env in (quick, stock)]
    assert anchors[0] == anchors[1]
    admissible = stock.reset(options={"task_id": TASK})[1]["admissible_actions"]
    quick.reset(options={"task_id": TASK})
    for turn in range(30):
        action = "fly" if turn % 7 == 6 else rng.choice(sorted(admissible))
        fast_info, stock_info = quick.step(action)[4], stock.step(action)[4]
        assert fast_info["anchor_obs"] == stock_info["anchor_obs"], action
        admissible = stock_info["admissible_actions"]
    stock.close()
    quick.close()
