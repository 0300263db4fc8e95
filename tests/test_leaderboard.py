"""The leaderboard: task types, paired comparisons, table formats and the command's errors."""

import csv
import io
import json

import pytest

from agentgym.cli import main as cli_main
from agentgym.report import paired_comparison, render, task_type_breakdown
from agentgym.store import EpisodeResult, Protocol, ResultStore, StoredEpisode, wilson_interval
from agentgym.tasktypes import task_type, task_type_from_id
from tests.results_helpers import ENV_ID, small_db

PROTOCOL = Protocol(ENV_ID, "textworld 1.7.0", "a" * 64, "test", 50)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return small_db(tmp_path_factory.mktemp("board") / "r.sqlite", episodes=3)


def test_task_types_of_every_family():
    assert (
        task_type(
            "FloorPlan1/pick_clean_then_place_in_recep/200001",
            {"floor_plan": 1, "task_type": "pick_clean_then_place_in_recep"},
        )
        == "pick_clean_then_place_in_recep"
    )
    assert task_type_from_id("json_2.1.1/valid_unseen/look_at_obj_in_light-Box-None-FloorLamp-212/trial_1") == (
        "look_at_obj_in_light"
    )
    assert task_type("boil/12", {"task_type": "boil", "variation": 12}) == "boil"
    assert task_type("level2/linear_relu", {"level": 2}) == "level2"
    assert task_type("agentgym-sdist__toolz.invert_if__3e4a", {"repo": "pytoolz/toolz"}) == "pytoolz/toolz"

    class Catalog:
        by_asin = {"B0": {"category": "beauty"}}

    assert task_type("fixed_3", {"asin": "B0"}, Catalog()) == "beauty"
    assert task_type_from_id("coin_collector/3000") == "coin_collector"
    assert task_type_from_id("fixed_3") == "-"


def _episode(agent, index, won, score=None, seed=0, task="t/1"):
    result = EpisodeResult(index, task, index, won, float(won) if score is None else score, 0.0, 1, False, 0.1, "t")
    return StoredEpisode(PROTOCOL, agent, seed, result)


def test_paired_comparison_is_seeded_and_pairs_the_same_episodes():
    episodes = [_episode("a", i, won=i < 8) for i in range(10)] + [_episode("b", i, won=i < 3) for i in range(10)]
    episodes.append(_episode("b", 99, won=True))  # played by b only: not a pair
    (c,) = paired_comparison(episodes, "a", "b", seed=1)
    assert (c.pairs, c.difference) == (10, pytest.approx(0.5))
    low, high = c.ci
    assert 0.1 < low < 0.5 < high <= 0.8
    scored = [_episode("a", i, won=False, score=i / 7) for i in range(10)] + [
        _episode("b", i, won=False, score=(i % 3) / 5) for i in range(10)
    ]
    by_seed = [paired_comparison(scored, "a", "b", metric="score", seed=s)[0].ci for s in (1, 1, 2)]
    assert by_seed[0] == by_seed[1] != by_seed[2]
    (same,) = paired_comparison(episodes, "a", "a")
    assert same.difference == 0 and same.ci == (0.0, 0.0)


def test_breakdown_per_task_type_has_wilson_intervals(db):
    with ResultStore(db, create=False) as store:
        breakdown = task_type_breakdown(store.stored(trajectories=False))
    expert = {t.task_type: t for t in breakdown if t.agent == "expert"}
    assert set(expert) == {"custom_easy", "custom_medium", "treasure_hunter"}
    assert all(t.success_rate == 1.0 and t.success_ci == wilson_interval(1, 1) for t in expert.values())


def test_formats_carry_every_row(db, capsys):
    with ResultStore(db, create=False) as store:
        rows = store.leaderboard()
    table = list(csv.DictReader(io.StringIO(render(rows, "csv"))))
    assert [(r["agent"], float(r["success"])) for r in table] == [(r.agent, r.success_rate) for r in rows]
    assert [r.agent for r in rows] == ["expert", "random"]
    data = json.loads(render(rows, "json"))
    assert data["rows"][0]["ci_low"] == pytest.approx(wilson_interval(3, 3)[0])
    assert "| `expert` | 0 | 100.0% |" in render(rows, "markdown")
    assert r"\texttt{expert} & 0 & 100.0" in render(rows, "latex")
    assert cli_main(["leaderboard", "--db", str(db), "--format", "json"]) == 0
    assert {t["task_type"] for t in json.loads(capsys.readouterr().out)["task_types"]} == {
        "custom_easy",
        "custom_medium",
        "treasure_hunter",
    }


def test_compare_prints_the_paired_difference(db, capsys):
    with ResultStore(db, create=False) as store:
        expert, random = (row.success_rate for row in store.leaderboard())
    assert cli_main(["leaderboard", "--db", str(db), "--compare", "expert", "random"]) == 0
    assert f"expert - random (success) on 3 paired episodes: {expert - random:+.3f}" in capsys.readouterr().out
    assert cli_main(["leaderboard", "--db", str(db), "--compare", "expert", "nobody"]) == 2


def test_unknown_env_is_an_error_with_close_matches(db, capsys):
    assert cli_main(["leaderboard", "--db", str(db), "--env", "agentgym/TextWorl-v0"]) == 2
    assert "Did you mean 'agentgym/TextWorld-v0'" in capsys.readouterr().err
    assert cli_main(["leaderboard", "--db", str(db), "--env", "agentgym/NoSuch-v0"]) == 2
    assert cli_main(["leaderboard", "--db", str(db), "--env", "agentgym/ALFWorld-v0"]) == 2
    assert "no results for 'agentgym/ALFWorld-v0'" in capsys.readouterr().err


@pytest.mark.parametrize("extra", [[], ["--competitive"]])
def test_a_missing_database_is_an_error_and_is_not_created(tmp_path, capsys, extra):
    missing = tmp_path / "missing.sqlite"
    assert cli_main(["leaderboard", "--db", str(missing), *extra]) == 2
    assert "does not exist" in capsys.readouterr().err and not missing.exists()
