"""The results store: trajectories beside their rows, migration of old databases, reading never creates one."""

import sqlite3
import zlib

import pytest

from agentgym.error import InvalidArgumentError
from agentgym.store import (
    EpisodeResult,
    LeaderboardRow,
    Protocol,
    ResultStore,
    format_leaderboard,
    seeds_text,
    wilson_interval,
)
from agentgym.trajectory import Trajectory, Turn
from tests.results_helpers import ENV_ID, small_db

#: The schema of a database written before trajectories and task types were stored (version 1).
V1_SCHEMA = """
CREATE TABLE episodes (
    protocol_key TEXT NOT NULL, env_id TEXT NOT NULL, engine_version TEXT NOT NULL, manifest_hash TEXT NOT NULL,
    split TEXT NOT NULL, max_turns INTEGER NOT NULL, agent TEXT NOT NULL, seed INTEGER NOT NULL,
    episode_index INTEGER NOT NULL, task_id TEXT NOT NULL, episode_seed INTEGER NOT NULL, won INTEGER NOT NULL,
    score REAL NOT NULL, total_reward REAL NOT NULL, turns INTEGER NOT NULL, truncated INTEGER NOT NULL,
    seconds REAL NOT NULL,
    finished_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (protocol_key, agent, seed, episode_index)
);
"""
PROTOCOL = Protocol(ENV_ID, "textworld 1.7.0", "a" * 64, "test", 50)


def _v1_db(path):
    with sqlite3.connect(path) as db:
        db.executescript(V1_SCHEMA)
        db.execute(
            "INSERT INTO episodes (protocol_key, env_id, engine_version, manifest_hash, split, max_turns, "
            "agent, seed, episode_index, task_id, episode_seed, won, score, total_reward, turns, truncated, "
            "seconds) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                PROTOCOL.key,
                *[getattr(PROTOCOL, f) for f in ("env_id", "engine_version", "manifest_hash", "split", "max_turns")],
                "expert",
                0,
                0,
                "coin_collector/3000",
                0,
                1,
                1.0,
                1.0,
                4,
                0,
                0.5,
            ),
        )
    db.close()


def test_an_old_database_is_migrated_in_place_without_losing_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    _v1_db(path)
    with ResultStore(path, create=False) as store:  # a reader reads it as it is
        (old,) = store.episodes(PROTOCOL, "expert", 0)
        assert old.task_type == "coin_collector"  # derived from the id
    with ResultStore(path) as store:  # a writer migrates it
        store.add(
            PROTOCOL,
            "expert",
            0,
            EpisodeResult(1, "treasure_hunter/3000", 1, False, 0.5, 0.5, 9, True, 1.0, "treasure_hunter"),
        )
        results = store.episodes(PROTOCOL, "expert", 0)
    assert [(r.episode_index, r.task_type, r.won) for r in results] == [
        (0, "coin_collector", True),
        (1, "treasure_hunter", False),
    ]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        assert db.execute("SELECT COUNT(*) FROM episodes").fetchone()[0] == 2


def test_trajectory_is_stored_compressed_beside_its_row(tmp_path):
    path = tmp_path / "r.sqlite"
    trajectory = Trajectory(
        "0:0",
        ENV_ID,
        "t/1",
        0,
        "expert",
        "start",
        {"goal": "win"},
        [
            Turn(
                "you win",
                "win",
                1.0,
                True,
                False,
                {"won": True, "score": 1.0},
                turn_rewards={"progress": 0.5},
                prompt_token_ids=[1, 2],
                response_token_ids=[3],
                response_logprobs=[-0.25],
            )
        ],
    )
    with ResultStore(path) as store:
        store.add(
            PROTOCOL,
            "expert",
            0,
            EpisodeResult(0, "t/1", 0, True, 1.0, 1.0, 1, False, 0.1, "t"),
            trajectory,
            {"split": "test"},
        )
        (stored,) = store.stored()
    assert stored.trajectory == trajectory and stored.env_kwargs == {"split": "test"}
    with sqlite3.connect(path) as db:
        encoding, data = db.execute("SELECT encoding, data FROM trajectories").fetchone()
    assert encoding == "json+zlib" and b'"progress": 0.5' in zlib.decompress(data)


def test_reading_a_missing_database_is_an_error_and_creates_nothing(tmp_path):
    path = tmp_path / "missing.sqlite"
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        ResultStore(path, create=False)
    assert not path.exists()


def test_evaluated_episodes_keep_trajectories_and_task_types(tmp_path):
    with ResultStore(small_db(tmp_path / "r.sqlite", episodes=2), create=False) as store:
        episodes = list(store.stored())
    assert len(episodes) == 4 and all(e.trajectory is not None for e in episodes)
    assert {e.result.task_type for e in episodes} == {"custom_easy", "custom_medium"}
    for e in episodes:
        assert e.trajectory.score == e.result.score and len(e.trajectory.turns) == e.result.turns
        assert e.env_kwargs == {"split": "test", "max_turns": 50}


def test_long_agent_names_keep_their_column_and_seeds_are_shown():
    long_name = "llm:" + "x" * 60
    rows = [
        LeaderboardRow(PROTOCOL, long_name, 10, 0.5, wilson_interval(5, 10), 0.5, 3.0, (0, 1, 2)),
        LeaderboardRow(PROTOCOL, "random", 10, 0.1, wilson_interval(1, 10), 0.1, 9.0, (0,)),
    ]
    lines = format_leaderboard(rows).splitlines()
    header, first, second = lines[1], lines[3], lines[4]
    assert first.startswith(long_name + " ") and second.startswith("random ")
    assert first.index("50.0%") == second.index("10.0%")  # the columns line up
    assert "seeds" in header and " 0-2 " in first and seeds_text([0, 2]) == "0,2"


def test_leaderboard_rows_name_their_seeds_or_split_by_seed(tmp_path):
    path = tmp_path / "r.sqlite"
    with ResultStore(path) as store:
        for seed in (0, 1):
            store.add(PROTOCOL, "a", seed, EpisodeResult(0, "t/1", seed, seed == 0, 1.0, 1.0, 1, False, 0.1))
        pooled = store.leaderboard()
        split = store.leaderboard(by_seed=True)
    assert [(r.seeds, r.episodes) for r in pooled] == [((0, 1), 2)]
    assert sorted((r.seeds, r.success_rate) for r in split) == [((0,), 1.0), ((1,), 0.0)]


def test_an_agent_name_is_stored_with_the_configuration_it_hashes(tmp_path):
    from agentgym.agents import make_agent
    from agentgym.evaluation import evaluate

    agent = make_agent("agentgym.agents:RandomAgent", seed=0)
    agent.name, agent.identity = "random@cafe0001", {"kind": "module:Class", "kwargs": {"seed": 0}}
    db = tmp_path / "agents.sqlite"
    evaluate(ENV_ID, agent, split="test", episodes=1, seed=0, db=db, num_workers=1, progress=False)
    with ResultStore(db, create=False) as store:
        assert store.agent_config("random@cafe0001") == {"kind": "module:Class", "kwargs": {"seed": 0}}
        assert store.agent_config("expert") is None  # never evaluated here
