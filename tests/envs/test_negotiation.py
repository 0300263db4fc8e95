"""Negotiation: the rules, bad moves, seeded pools, and scripted vs random play."""

from __future__ import annotations

import numpy as np
import pytest
from pettingzoo.utils.conversions import aec_to_parallel, turn_based_aec_to_parallel

from agentgym.agents import Agent, RandomAgent
from agentgym.envs import negotiation
from agentgym.envs.negotiation.engine import other_agent
from agentgym.envs.negotiation.moves import OFFER_KEEPS, offer_text, parse_move
from agentgym.envs.negotiation.scripted import ScriptedNegotiator
from agentgym.envs.negotiation.tasks import MAX_OFFERS, make_pool, split_tasks
from agentgym.matches import main as matches_main
from agentgym.matches import play_games
from agentgym.ratings import RatingStore
from agentgym.testing import BAD_ACTIONS, check_env
from agentgym.turngame import TextObs


@pytest.mark.parametrize("kwargs", [{}, {"seat": "player_1"}, {"opponent": "random", "opponent_seed": 3}])
def test_single_agent_view_conformance(kwargs):
    check_env("agentgym/Negotiation-v0", split="test", **kwargs)


def _game(task_id="pool/200000"):
    env = negotiation.env(split="test")
    env.reset(options={"task_id": task_id})
    return env


def test_deal_pays_each_agent_its_own_value_of_its_share():
    env = _game()
    definition = split_tasks("test")[0].definition
    items, counts, values = definition["items"], definition["counts"], definition["values"]
    keeps = [counts[0], 0, 1]
    env.step(offer_text(items, keeps) + " | take it")
    obs, _, _, _, info = env.last()
    assert env.agent_selection == "player_1" and isinstance(obs, TextObs)
    assert 'player_0 says: "take it"' in obs and info["negotiation"]["message"] == "take it"
    assert "accept" in info["admissible_actions"]
    env.step("accept")
    gives = [c - k for c, k in zip(counts, keeps)]
    expected = {
        "player_0": sum(v * n for v, n in zip(values["player_0"], keeps)),
        "player_1": sum(v * n for v, n in zip(values["player_1"], gives)),
    }
    assert all(env.terminations.values())
    for agent in ("player_0", "player_1"):
        assert env._cumulative_rewards[agent] == expected[agent]
        assert env.infos[agent]["score"] == expected[agent] / 10
        assert env.infos[agent]["won"] == (expected[agent] > expected[other_agent(agent)])
        assert env.infos[agent]["negotiation"]["deal"] == {"player_0": keeps, "player_1": gives}
    env.close()


def test_walk_away_ends_with_nothing_for_both():
    env = _game()
    env.step("offer " + " ".join(f"{i}=0" for i in env.infos["player_0"]["negotiation"]["items"]))
    env.step("walk away | no thanks")
    assert all(env.terminations.values()) and env._cumulative_rewards == {"player_0": 0.0, "player_1": 0.0}
    assert "player_1 walked away" in env.observe("player_0") and "no thanks" in env.observe("player_0")


@pytest.mark.parametrize(
    ("move", "says"),
    [
        ("dance", "unknown move"),
        ("offer", "names no items"),
        ("offer unicorn=1", "there is no 'unicorn' in the pool"),
        ("offer {0}=99", "asks for more than the pool holds"),
        ("offer {0}=-1", "is not a whole number"),
        ("offer {0}=1 {0}=0", "named twice"),
        ("accept", "no offer from the other side to accept"),
    ],
)
def test_invalid_offers_are_answered_clearly_and_the_agent_keeps_the_move(move, says):
    env = _game()
    item = env.infos["player_0"]["negotiation"]["items"][0]
    env.step(move.format(item))
    obs, reward, terminated, truncated, info = env.last()
    assert env.agent_selection == "player_0" and not terminated and not truncated and reward == 0
    assert obs.startswith("Invalid action:") and says in obs, obs
    assert info["action_valid"] is False and info["turn"] == 1
    env.step(info["expert_action"])  # the game goes on
    assert env.agent_selection == "player_1" and env.infos["player_0"]["action_valid"] is True


def test_counter_offer_after_the_last_offer_is_refused():
    env = _game()
    for _ in range(MAX_OFFERS):
        env.step(env.infos[env.agent_selection]["admissible_actions"][0])
    info = env.infos[env.agent_selection]
    assert info["admissible_actions"] == ["accept", "walk away"] and info["negotiation"]["offers_left"] == 0
    env.step("offer " + " ".join(f"{i}=0" for i in info["negotiation"]["items"]))
    assert "no offers are left" in env.observe(env.agent_selection)


@pytest.mark.parametrize("name", list(BAD_ACTIONS))
def test_bad_actions_never_raise_in_either_pettingzoo_view(name):
    aec = _game()
    aec.step(BAD_ACTIONS[name])
    assert aec.infos["player_0"]["action_valid"] is False and aec.agent_selection == "player_0"
    assert aec.observe("player_0").startswith("Invalid action:")
    par = negotiation.parallel_env(split="test")
    par.reset(seed=0)
    obs, rewards, terminations, truncations, infos = par.step({"player_0": BAD_ACTIONS[name], "player_1": None})
    assert infos["player_0"]["action_valid"] is False and infos["player_0"]["to_move"] == "player_0"
    assert not any(terminations.values()) and par.agents == ["player_0", "player_1"]


def test_parallel_view_ignores_the_waiting_agents_action():
    par = negotiation.parallel_env(split="test")
    obs, infos = par.reset(seed=5)
    assert infos["player_1"]["to_move"] == "player_0" and infos["player_1"]["admissible_actions"] == []
    obs, *_, infos = par.step({"player_1": "accept"})  # not its move; player_0 sent nothing
    assert infos["player_0"]["to_move"] == "player_0" and obs["player_0"].startswith("Invalid action")
    obs, *_, infos = par.step({"player_0": infos["player_0"]["expert_action"], "player_1": "walk away"})
    assert infos["player_1"]["to_move"] == "player_1" and par.agents


def test_info_has_the_standard_keys_per_agent_and_private_values():
    env = _game()
    for agent in env.possible_agents:
        info = env.infos[agent]
        assert info["agent_id"] == agent and info["to_move"] == "player_0"
        assert info["negotiation"]["my_values"] == split_tasks("test")[0].definition["values"][agent]
        assert "private value" in info["goal"] and "private value" in env.observe(agent)


def test_pools_are_seeded_valid_and_splits_disjoint():
    assert make_pool(7) == make_pool(7)
    sizes = {split: len(split_tasks(split)) for split in ("train", "valid", "test")}
    assert sizes == {"train": 1000, "valid": 100, "test": 100}
    ids = [set(t.task_id for t in split_tasks(split)) for split in ("train", "valid", "test")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    for task in split_tasks("test"):
        d = task.definition
        a, b = d["values"]["player_0"], d["values"]["player_1"]
        for values in (a, b):
            assert sum(c * v for c, v in zip(d["counts"], values)) == 10
        assert a != b and all(x or y for x, y in zip(a, b)) and any(x and y for x, y in zip(a, b))


def test_parse_move_reads_friendly_forms():
    items, counts = ["book", "hat", "ball"], [3, 1, 2]
    assert parse_move("Offer books=2, hat: 1", items, counts) == (("offer", [2, 1, 0], ""), None)
    assert parse_move("offer 1 ball; 2 book | deal?", items, counts) == (("offer", [2, 0, 1], "deal?"), None)
    assert parse_move("  WALK   away ", items, counts)[0][0] == "walk"


def test_scripted_negotiator_beats_random_over_200_seeded_games():
    with RatingStore(":memory:") as store:
        games = play_games(
            store, "agentgym/Negotiation-v0", "test", [ScriptedNegotiator(), RandomAgent(0)], games=100, seed=0
        )  # 100 seeds x both seat assignments
        rows = {row.agent: row for row in store.ratings()}
    assert len(games) == 200
    scripted = sum(g.reward_a for g in games) / len(games)
    random_ = sum(g.reward_b for g in games) / len(games)
    wins = sum(g.score_a == 1.0 for g in games)
    losses = sum(g.score_a == 0.0 for g in games)
    print(f"scripted {scripted:.2f} vs random {random_:.2f} points per game; {wins} wins, {losses} losses")
    assert scripted - random_ > 2.0  # measured: 7.39 vs 2.44
    assert wins > 3 * losses
    assert rows["scripted_negotiator"].rating > rows["random"].rating


def _play_aec(env, seed):
    env.reset(seed=seed)
    trace = []
    for agent in env.agent_iter(30):
        obs, reward, terminated, truncated, info = env.last()
        trace.append((agent, str(obs), reward, info["task_id"]))
        env.step(None if terminated or truncated else info["admissible_actions"][len(trace) % 5])
    return trace


def test_same_seed_same_game_in_both_pettingzoo_views():
    first, second = negotiation.env(split="test"), negotiation.env(split="test")
    assert _play_aec(first, 11) == _play_aec(second, 11)
    assert _play_aec(first, 11)[0][3] != _play_aec(first, 12)[0][3]  # seeds pick different pools here
    par = negotiation.parallel_env(split="test")
    obs, infos = par.reset(seed=11)
    assert infos["player_0"]["task_id"] == _play_aec(first, 11)[0][3]
    assert par.reset(seed=11, options={"task_id": "pool/200042"})[1]["player_1"]["task_id"] == "pool/200042"


def test_render_ansi_shows_every_agents_view_and_close_twice_is_fine():
    env = negotiation.env(split="test", render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    assert "[player_0]" in text and "[player_1]" in text and "You move first" in text
    env.close()
    env.close()
    with pytest.raises(ValueError, match="render_mode"):
        negotiation.parallel_env(render_mode="rgb_array")
    with pytest.raises(TypeError):
        negotiation.parallel_env(splitt="test")  # misspelled arguments raise


def test_anchor_is_the_position_not_the_words():
    import gymnasium as gym

    anchors = []
    for words in ("", " | please, a fair split"):
        env = gym.make("agentgym/Negotiation-v0", split="test")
        _, info = env.reset(seed=0)
        move = info["admissible_actions"][0]
        _, _, _, _, info = env.step(move + words)
        anchors.append(info["anchor_obs"])
        env.close()
    assert anchors[0] == anchors[1] and "offers made" in anchors[0]


# ----------------------------------------------------------------- PettingZoo conventions (issue 20; PettingZoo's
# own API tests: test_pettingzoo_api.py)
def test_human_render_mode_prints_and_returns_none(capsys):
    env = negotiation.parallel_env(split="test", render_mode="human")
    env.reset(seed=0)
    assert env.render() is None and "You move first" in capsys.readouterr().out
    env.step({"player_0": "walk away"})
    assert "walk" in capsys.readouterr().out.lower()


def test_max_cycles_truncates_every_agent():
    env = negotiation.env(split="test", max_cycles=2)
    env.reset(seed=0)
    moves, ended = 0, {}
    for agent in env.agent_iter():
        _, _, terminated, truncated, _ = env.last()
        if terminated or truncated:
            ended[agent] = (terminated, truncated)
            env.step(None)
        else:
            env.step("look")  # refused: the same agent moves again, and the move counts
            moves += 1
    assert moves == 4 and ended == {"player_0": (False, True), "player_1": (False, True)}
    par = negotiation.parallel_env(split="test", max_cycles=1)
    par.reset(seed=0)
    par.step({"player_0": "look"})
    *_, truncations, _ = par.step({"player_0": "look"})
    assert all(truncations.values()) and par.agents == []
    with pytest.raises(ValueError, match="max_cycles"):
        negotiation.env(max_cycles=0)


def test_action_mask_is_aligned_with_the_move_list_and_samples_legal_moves():
    env = negotiation.env(split="test")
    env.reset(seed=0)
    info = env.infos["player_0"]
    moves = env.game.move_list("player_0")
    mask = info["action_mask"]
    assert mask.dtype == np.int8 and mask.shape == (len(OFFER_KEEPS) + 2,) == (len(moves),)
    assert sorted(m for m, on in zip(moves, mask) if on) == sorted(info["admissible_actions"])
    assert not mask[moves.index("accept")] and mask[moves.index("walk away")]  # nothing on the table yet
    assert not env.infos["player_1"]["action_mask"].any()  # not its move
    space = env.action_space("player_0")
    space.seed(0)
    assert {space.sample(mask) for _ in range(20)} <= set(info["admissible_actions"])
    env.step(info["admissible_actions"][0])
    assert env.infos["player_1"]["action_mask"][moves.index("accept")] == 1  # an offer to accept now


def test_aec_to_parallel_refuses_up_front_and_turn_based_conversion_plays_through_refusals():
    with pytest.raises(AssertionError, match="is_parallelizable"):
        aec_to_parallel(negotiation.env(split="test"))
    par = turn_based_aec_to_parallel(negotiation.env(split="test"))
    _, infos = par.reset(seed=0)
    for action in ("nonsense", "nonsense"):  # a refused move keeps the turn; the conversion follows it
        _, _, _, _, infos = par.step({"player_0": action, "player_1": action})
        assert infos["player_0"]["active_agent"] == "player_0" and not infos["player_0"]["action_valid"]
    _, rewards, terminations, _, _ = par.step({"player_0": "walk away", "player_1": "walk away"})
    assert all(terminations.values()) and rewards == {"player_0": 0.0, "player_1": 0.0} and par.agents == []


class AlwaysWalkAway(Agent):
    """A user's own agent class, played by the matches command as ``<this module>:AlwaysWalkAway``."""

    name = "always_walk_away"

    def act(self, observation, info, *, episode_id=""):
        return "walk away"


def test_matches_command_plays_any_agent_spec(tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    spec = f"{__name__}:AlwaysWalkAway"
    assert matches_main(["--agents", "expert", spec, "--games", "2", "--db", str(db)]) == 0
    assert capsys.readouterr().out.startswith("4 games stored in")
    with RatingStore(db) as store:
        games = store.matches()
    assert {(g.agent_a, g.agent_b) for g in games} == {("expert", "always_walk_away")}
    assert all(g.reward_a == g.reward_b == 0.0 for g in games)  # walking away: no deal, 0 points each
    assert matches_main(["--agents", "expert", f"{__name__}:NoSuchAgent", "--db", str(db)]) == 2
    assert "has no attribute 'NoSuchAgent'" in capsys.readouterr().err
