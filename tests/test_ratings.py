"""Elo ratings from pairwise results stored in SQLite."""

from __future__ import annotations

import pytest

from agentgym.agents import ExpertAgent, RandomAgent
from agentgym.envs.negotiation import ScriptedNegotiator
from agentgym.matches import main, play_games
from agentgym.ratings import INITIAL_RATING, Match, RatingStore, elo, format_ratings


def _match(a, b, reward_a, reward_b, env_id="agentgym/Negotiation-v0"):
    return Match(env_id, "test", "0" * 64, "pool/1", 0, a, b, "player_0", "player_1", reward_a, reward_b)


def test_elo_against_a_hand_computed_sequence():
    ratings = elo([_match("a", "b", 5, 3), _match("b", "c", 2, 2), _match("c", "a", 7, 1)], k=32)
    # game 1: equal ratings, a wins: +-16
    ra, rb, rc = 1516.0, 1484.0, 1500.0
    # game 2: b (1484) draws c (1500)
    expected_b = 1 / (1 + 10 ** ((rc - rb) / 400))
    rb, rc = rb + 32 * (0.5 - expected_b), rc - 32 * (0.5 - expected_b)
    # game 3: c beats a
    expected_c = 1 / (1 + 10 ** ((ra - rc) / 400))
    rc, ra = rc + 32 * (1 - expected_c), ra - 32 * (1 - expected_c)
    assert ratings == pytest.approx({"a": ra, "b": rb, "c": rc})
    assert sum(ratings.values()) == pytest.approx(3 * INITIAL_RATING)  # zero-sum


def test_store_keeps_games_across_connections_and_separates_tables(tmp_path):
    db = tmp_path / "results.sqlite"
    with RatingStore(db) as store:
        store.add([_match("a", "b", 6, 4), _match("a", "b", 4, 4)])
        store.add([_match("x", "y", 1, 9, env_id="agentgym/Other-v0")])
    with RatingStore(db) as store:
        assert len(store.matches()) == 3 and len(store.matches("agentgym/Other-v0")) == 1
        rows = store.ratings("agentgym/Negotiation-v0")
    assert [(r.agent, r.games, r.wins, r.draws, r.losses, r.mean_reward) for r in rows] == [
        ("a", 2, 1, 1, 0, 5.0),
        ("b", 2, 0, 1, 1, 4.0),
    ]
    table = format_ratings(rows)
    lines = table.splitlines()
    assert "agentgym/Negotiation-v0" in lines[0] and lines[-2].startswith("a ") and lines[-1].startswith("b ")
    assert "No competitive games" in format_ratings([])


def test_play_games_is_a_round_robin_on_both_seats(tmp_path):
    agents = [ScriptedNegotiator(), RandomAgent(0), ExpertAgent()]
    with RatingStore(tmp_path / "r.sqlite") as store:
        games = play_games(store, "agentgym/Negotiation-v0", "test", agents, games=3, seed=10)
        assert len(games) == 3 * 2 * 3  # pairs x seat assignments x games
        pairs = [("scripted_negotiator", "random"), ("scripted_negotiator", "expert"), ("random", "expert")]
        assert {(g.agent_a, g.agent_b, g.seat_a) for g in games} == {
            (a, b, seat) for a, b in pairs for seat in ("player_0", "player_1")
        }
        assert {g.seed for g in games} == {10, 11, 12}
        assert len(store.matches()) == len(games)


def test_matches_command_line(tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    assert main(["--agents", "expert", "random", "--games", "2", "--db", str(db)]) == 0
    assert capsys.readouterr().out.startswith("4 games stored in")
    with RatingStore(db) as store:
        assert {row.agent for row in store.ratings()} == {"expert", "random"}
    with pytest.raises(SystemExit):
        main(["--env", "agentgym/TextWorld-v0"])
