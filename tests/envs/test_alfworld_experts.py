"""ALFWorld's experts (issue 20): the default (oracle) expert wins every generated game of every split, per
task type, from the start and after an agent's detour; the planner expert runs inside EnvPool's daemonic
worker processes; ALFWorld's handcoded expert is fed every step in order, asked for or not.

The slow test plays the oracle on every game of train, valid_seen and valid_unseen (3,827 games; the levels
train_L, L0, L1, L2 are subsets of these), in chunks that ``pytest -n 2`` spreads over both cores: about
12 minutes of CPU in all (about 6 on two cores; measured on a shared machine).
"""

from collections import Counter

import pytest

import agentgym  # noqa: F401
from agentgym.agents import ExpertAgent
from agentgym.envs.alfworld import ALFWorldEnv, tasks
from agentgym.evaluation import evaluate

#: Turns the oracle may take: the longest generated walkthrough is well under this.
TURNS = 50


def _play_expert(env, task_id, detour=()):
    """Play ``detour`` (admissible commands), then the expert's actions; (won, turns, bad action or None)."""
    obs, info = env.reset(options={"task_id": task_id})
    for action in detour:
        obs, reward, terminated, truncated, info = env.step(action)
    done = False
    while not done:
        action = info["expert_action"]
        if action is None or action not in info["admissible_actions"]:
            return info["won"], info["turn"], action
        obs, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    return info["won"], info["turn"], None


def test_oracle_wins_one_game_of_each_type_and_recovers_from_a_detour():
    env = ALFWorldEnv(split="valid_unseen", max_turns=TURNS)
    assert env.expert == "oracle"
    by_type = {}
    for task_id in env.task_ids:
        by_type.setdefault(task_id.split("/")[1], task_id)
    assert set(by_type) == set(tasks.TASK_TYPES)
    for _task_type, task_id in sorted(by_type.items()):
        won, turns, bad = _play_expert(env, task_id)
        assert won and bad is None, (task_id, bad)
    # a detour: walk to receptacles and pick up the first thing offered (not a goal object); the expert puts
    # it down and still wins
    task_id = by_type["pick_two_obj_and_place"]
    target = env.unwrapped.game_file(env.unwrapped.tasks.get(task_id)).parent
    wanted = tasks.read_traj(target / "traj_data.json")["pddl_params"]["object_target"].lower()
    obs, info = env.reset(options={"task_id": task_id})
    detour = []
    for turn in range(12):
        takes = [a for a in info["admissible_actions"] if a.startswith("take ") and wanted not in a]
        walks = [a for a in info["admissible_actions"] if a.startswith("go to ")]
        action = takes[0] if takes else walks[5 * turn % len(walks)]
        detour.append(action)
        obs, _, terminated, _, info = env.step(action)
        if takes:
            break
    assert detour[-1].startswith("take "), detour
    won, turns, bad = _play_expert(env, task_id, detour)
    assert won and bad is None, (detour, bad)
    env.close()


def test_oracle_answers_are_the_same_whether_asked_every_step_or_not():
    task_id = "FloorPlan1/pick_two_obj_and_place/200000"
    asked, lean = ALFWorldEnv(split="valid_unseen"), ALFWorldEnv(split="valid_unseen", info_keys=())
    obs, info = asked.reset(options={"task_id": task_id})
    lean.reset(options={"task_id": task_id})
    trace = []
    while info["expert_action"] is not None:
        trace.append(info["expert_action"])
        obs, _, terminated, _, info = asked.step(trace[-1])
        lean_obs, _, _, _, lean_info = lean.step(trace[-1])
        assert lean_obs == obs and "expert_action" not in lean_info
    assert info["won"] and lean_info["won"]
    lean.set_info_keys(None)  # asked again: it answers from the state, with no memory to catch up on
    assert asked.reset(options={"task_id": task_id})[1]["expert_action"] == trace[0]
    assert lean.reset(options={"task_id": task_id})[1]["expert_action"] == trace[0]
    asked.close()
    lean.close()


def test_handcoded_expert_fed_late_answers_as_when_asked_every_step():
    """ALFWorld's handcoded expert keeps memory: steps not asked about are queued and fed in order."""
    task_id = "FloorPlan1/pick_and_place_simple/200000"
    every, late = (ALFWorldEnv(split="valid_unseen", expert="handcoded") for _ in range(2))
    obs, info = every.reset(options={"task_id": task_id})
    late.reset(options={"task_id": task_id})
    late.set_info_keys(())
    answers = []
    for turn in range(8):
        action = info["expert_action"]
        obs, _, terminated, _, info = every.step(action)
        if turn == 5:
            late.set_info_keys(None)
        late_info = late.step(action)[4]
        answers.append((info["expert_action"], late_info.get("expert_action", "absent")))
        if terminated:
            break
    assert all(late == "absent" for _, late in answers[:5])
    assert len(answers) > 6 and [a for a, _ in answers[5:]] == [b for _, b in answers[5:]]
    every.close()
    late.close()


def test_planner_expert_runs_in_pool_workers(tmp_path):
    """EnvPool's workers are daemonic processes, which ``multiprocessing`` forbids to have children; the planner
    forks its child with ``os.fork`` and wins there (two workers, two episodes)."""
    summary = evaluate(
        "agentgym/ALFWorld-v0",
        ExpertAgent(),
        split="valid_unseen",
        episodes=2,
        seed=0,
        max_turns=30,
        db=tmp_path / "results.sqlite",
        num_workers=2,
        env_kwargs={"expert": "planner", "planner_timeout": 60},
        progress=False,
    )
    assert summary.played == 2 and [r.won for r in summary.results] == [True, True]


# -------------------------------------------------------------------------------------- slow: every game
def _chunks():
    train = tasks.split_triples("train")
    chunks = {"valid_seen": tasks.split_triples("valid_seen"), "valid_unseen": tasks.split_triples("valid_unseen")}
    for index in range(4):
        chunks[f"train_{index}"] = train[index::4]
    return chunks


@pytest.mark.slow
@pytest.mark.parametrize("chunk", sorted(_chunks()))
def test_default_expert_wins_every_generated_game(chunk):
    """Every game of the chunk played by the default expert alone: every answer admissible, won within
    ``TURNS``; the result is reported per task type."""
    split = "train" if chunk.startswith("train") else chunk
    env = ALFWorldEnv(split=split, max_turns=TURNS)
    wins, failures = Counter(), []
    triples = _chunks()[chunk]
    for triple in triples:
        task_id = tasks.task_id(*triple)
        won, turns, bad = _play_expert(env, task_id)
        if won:
            wins[triple[1]] += 1
        else:
            failures.append((task_id, turns, bad))
    env.close()
    totals = Counter(t for _, t, _ in triples)
    report = {t: f"{wins[t]}/{totals[t]}" for t in sorted(totals)}
    assert not failures, (report, failures[:5])
