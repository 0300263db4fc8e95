"""agentgym export: jsonl round trip, chat messages per turn, parquet rows; eval --save-trajectories."""

import json

import pytest

from agentgym.cli import main as cli_main
from agentgym.export import export, turn_messages
from agentgym.store import ResultStore
from agentgym.trajectory import load_jsonl
from tests.results_helpers import ENV_ID, small_db


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return small_db(tmp_path_factory.mktemp("export") / "r.sqlite", episodes=2)


def _stored(db):
    with ResultStore(db, create=False) as store:
        return list(store.stored())


def test_jsonl_export_round_trips_the_stored_trajectories(db, tmp_path):
    out = tmp_path / "episodes.jsonl"
    assert cli_main(["export", "--db", str(db), "--format", "jsonl", "--output", str(out)]) == 0
    assert load_jsonl(out) == [e.trajectory for e in _stored(db)]
    written, missing = export(db, "jsonl", tmp_path / "expert.jsonl", agent="expert")
    assert (written, missing) == (2, 0) and {t.agent for t in load_jsonl(tmp_path / "expert.jsonl")} == {"expert"}


def test_eval_save_trajectories_writes_the_runs_episodes(tmp_path):
    db, out = tmp_path / "r.sqlite", tmp_path / "run.jsonl"
    args = [
        "eval",
        "--env",
        ENV_ID,
        "--agent",
        "expert",
        "--episodes",
        "2",
        "--workers",
        "1",
        "--db",
        str(db),
        "--quiet",
        "--save-trajectories",
        str(out),
    ]
    assert cli_main(args) == 0
    first = load_jsonl(out)
    assert [t.episode_id for t in first] == ["0:0", "0:1"] and all(t.won for t in first)
    assert cli_main([*args[:6], "3", *args[7:]]) == 0  # resumed: the stored episodes are in the file too
    assert [t.episode_id for t in load_jsonl(out)] == ["0:0", "0:1", "0:2"] and load_jsonl(out)[:2] == first


def test_messages_export_gives_one_chat_example_per_turn(db, tmp_path):
    out = tmp_path / "messages.jsonl"
    export(db, "messages", out, won_only=True)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    expert = [e for e in _stored(db) if e.agent == "expert"]
    assert len(records) == sum(len(e.trajectory.turns) for e in expert) and {r["agent"] for r in records} == {"expert"}
    first, second = records[0], records[1]
    trajectory = expert[0].trajectory
    assert (
        first["messages"][0]["role"] == "system" and trajectory.initial_info["goal"] in first["messages"][0]["content"]
    )
    assert first["messages"][1] == {"role": "user", "content": trajectory.initial_observation}
    assert first["messages"][-1] == {"role": "assistant", "content": trajectory.turns[0].action}
    # the next turn's prompt holds the history and the observation the first action led to
    assert second["messages"][1:3] == first["messages"][1:3]
    assert second["messages"][3] == {"role": "user", "content": trajectory.turns[0].observation}
    assert turn_messages(trajectory, 1) == second["messages"]


def test_parquet_export_has_one_row_per_turn(db, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "turns.parquet"
    assert cli_main(["export", "--db", str(db), "--format", "parquet", "-o", str(out)]) == 0
    table = pq.read_table(out).to_pylist()
    stored = _stored(db)
    assert len(table) == sum(len(e.trajectory.turns) for e in stored)
    assert [row["action"] for row in table] == [turn.action for e in stored for turn in e.trajectory.turns]
    assert {row["task_type"] for row in table} == {"custom_easy", "custom_medium"}


def test_parquet_needs_a_file(db, capsys):
    assert cli_main(["export", "--db", str(db), "--format", "parquet"]) == 2
    assert "--output" in capsys.readouterr().err
