"""Evaluation protocol, results store, resume after interruption, leaderboard."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from agentgym.agents import ExpertAgent, RandomAgent
from agentgym.evaluation import episode_plan, evaluate
from agentgym.store import Protocol, ResultStore, format_leaderboard, wilson_interval

ENV_ID = "agentgym/TextWorld-v0"


def test_episode_plan_covers_tasks_before_repeating():
    tasks = [f"t{i}" for i in range(4)]
    plan = episode_plan(tasks, 10, seed=3)
    assert sorted(s.task_id for s in plan[:4]) == tasks
    assert [s.task_id for s in plan[4:8]] == [s.task_id for s in plan[:4]]
    assert [s.seed for s in plan] == list(range(3, 13))
    assert plan == episode_plan(tasks, 10, seed=3) and plan != episode_plan(tasks, 10, seed=4)


def test_wilson_interval():
    low, high = wilson_interval(10, 10)
    assert high == pytest.approx(1.0) and low == pytest.approx(0.7225, abs=1e-3)
    low, high = wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-3), pytest.approx(0.7634, abs=1e-3))


def test_eval_records_and_resumes_without_redoing(tmp_path):
    db = tmp_path / "r.sqlite"
    first = evaluate(ENV_ID, ExpertAgent(), split="test", episodes=3, seed=0, db=db, num_workers=1, progress=False)
    assert first.played == 3 and first.success_rate == 1.0
    again = evaluate(ENV_ID, ExpertAgent(), split="test", episodes=5, seed=0, db=db, num_workers=2, progress=False)
    assert (again.already_done, again.played, len(again.results)) == (3, 2, 5)
    assert [r.episode_index for r in again.results] == [0, 1, 2, 3, 4]
    assert [r.task_id for r in again.results[:3]] == [r.task_id for r in first.results]


def test_leaderboard_compares_only_the_same_protocol(tmp_path):
    db = tmp_path / "r.sqlite"
    evaluate(ENV_ID, ExpertAgent(), split="test", episodes=2, seed=0, db=db, progress=False)
    evaluate(ENV_ID, RandomAgent(seed=0), split="test", episodes=2, seed=0, db=db, progress=False, max_turns=5)
    evaluate(ENV_ID, RandomAgent(seed=0), split="test", episodes=2, seed=0, db=db, progress=False)
    with ResultStore(db) as store:
        rows = store.leaderboard()
    assert len({row.protocol.key for row in rows}) == 2
    full = [row for row in rows if row.protocol.max_turns == 50]
    assert [row.agent for row in full] == ["expert", "random"]
    assert full[0].success_rate == 1.0 and full[0].episodes == 2
    table = format_leaderboard(rows)
    assert table.count("protocol=") == 2 and "95% CI" in table and "max_turns=5 " in table


def test_protocol_key_changes_with_every_field():
    base = Protocol(ENV_ID, "textworld 1.7.0", "a" * 64, "test", 50)
    variants = [
        Protocol("agentgym/Other-v0", "textworld 1.7.0", "a" * 64, "test", 50),
        Protocol(ENV_ID, "textworld 1.8.0", "a" * 64, "test", 50),
        Protocol(ENV_ID, "textworld 1.7.0", "b" * 64, "test", 50),
        Protocol(ENV_ID, "textworld 1.7.0", "a" * 64, "valid", 50),
        Protocol(ENV_ID, "textworld 1.7.0", "a" * 64, "test", 49),
    ]
    assert len({base.key, *(v.key for v in variants)}) == 6


def _count(db):
    try:
        with sqlite3.connect(db, timeout=30) as connection:
            return connection.execute("SELECT COUNT(*) FROM episodes").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.slow
def test_eval_killed_mid_run_resumes_to_exactly_n_episodes(tmp_path):
    db, episodes = tmp_path / "kill.sqlite", 30
    command = [
        sys.executable,
        "-m",
        "agentgym.cli",
        "eval",
        "--env",
        ENV_ID,
        "--agent",
        "random",
        "--split",
        "test",
        "--episodes",
        str(episodes),
        "--seed",
        "7",
        "--workers",
        "2",
        "--max-turns",
        "40",
        "--db",
        str(db),
        "--quiet",
    ]
    process = subprocess.Popen(command, start_new_session=True)
    deadline = time.time() + 300
    while _count(db) < 4 and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert process.poll() is None, "the evaluation finished before it could be killed; make it longer"
    os.killpg(process.pid, signal.SIGKILL)  # kill -9 the whole run, workers included
    process.wait()
    stored = _count(db)
    assert 4 <= stored < episodes
    subprocess.run(command, check=True, timeout=600)
    with sqlite3.connect(db) as connection:
        indices = [i for (i,) in connection.execute("SELECT episode_index FROM episodes ORDER BY episode_index")]
    assert indices == list(range(episodes))
