"""agentgym verify replays stored trajectories and finds edited results."""

import json
import shutil
import sqlite3
import zlib

import pytest

from agentgym.cli import main as cli_main
from agentgym.verify import verify
from tests.results_helpers import small_db


@pytest.fixture(scope="module")
def clean_db(tmp_path_factory):
    return small_db(tmp_path_factory.mktemp("verify") / "r.sqlite", episodes=2)


@pytest.fixture
def db(clean_db, tmp_path):
    copy = tmp_path / "r.sqlite"
    shutil.copy(clean_db, copy)
    return copy


def test_untouched_results_verify(db, capsys):
    assert cli_main(["verify", "--db", str(db)]) == 0
    assert "4 ok, 0 mismatched, 0 skipped of 4 episodes" in capsys.readouterr().out


def test_an_edited_score_is_caught(db, capsys):
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE episodes SET score = 1.0, won = 1 WHERE agent = 'random' AND episode_index = 1")
    connection.close()
    assert cli_main(["verify", "--db", str(db)]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH agentgym/TextWorld-v0 random seed=0 episode=1" in out and "1 mismatched" in out


def test_an_edited_trajectory_is_caught_by_the_replay(db):
    """Row and trajectory edited together (a consistent forgery): only the replay can tell."""
    with sqlite3.connect(db) as connection:
        (data,) = connection.execute(
            "SELECT data FROM trajectories WHERE agent='random' AND episode_index=0"
        ).fetchone()
        trajectory = json.loads(zlib.decompress(data))
        trajectory["turns"][-1]["info"].update(won=True, score=1.0)
        trajectory["turns"][-1]["reward"] = 1.0 + trajectory["turns"][-1]["reward"]
        connection.execute(
            "UPDATE trajectories SET data=? WHERE agent='random' AND episode_index=0",
            (zlib.compress(json.dumps(trajectory).encode()),),
        )
        connection.execute(
            "UPDATE episodes SET score=1.0, won=1, total_reward=total_reward+1 WHERE agent='random' AND episode_index=0"
        )
    connection.close()
    verdicts = {(v.agent, v.episode_index): v for v in verify(db)}
    forged = verdicts[("random", 0)]
    assert forged.status == "mismatch" and "replay reward" in forged.reason
    assert [v.status for key, v in verdicts.items() if key != ("random", 0)] == ["ok"] * 3


def test_episodes_without_trajectory_are_skipped(db):
    with sqlite3.connect(db) as connection:
        connection.execute("DELETE FROM trajectories WHERE agent='expert'")
    connection.close()
    statuses = sorted((v.agent, v.status) for v in verify(db))
    assert statuses == [("expert", "skipped")] * 2 + [("random", "ok")] * 2


def test_verify_refuses_a_missing_database(tmp_path, capsys):
    assert cli_main(["verify", "--db", str(tmp_path / "none.sqlite")]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "none.sqlite").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "env_id, agent, kwargs",
    [
        ("agentgym/ALFWorld-v0", "expert", {}),
        ("agentgym/ScienceWorld-v0", "random", {"expert": False}),
        ("agentgym/WebShop-v0", "random", {}),
    ],
)
def test_stored_episodes_of_deterministic_families_verify(tmp_path, env_id, agent, kwargs):
    from agentgym.agents import make_agent
    from agentgym.evaluation import evaluate

    db = tmp_path / "r.sqlite"
    evaluate(
        env_id,
        make_agent(agent),
        split="test",
        episodes=2,
        seed=0,
        max_turns=15,
        db=db,
        num_workers=1,
        env_kwargs=kwargs,
        progress=False,
    )
    assert [v.status for v in verify(db)] == ["ok", "ok"]
