"""Negotiation: scripted negotiator vs random over 200 seeded games, self-play outcomes, and env speed.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/multiagent_negotiation.py``. Prints numbers measured in this
run: points per game of each side, win/draw/loss counts, Elo, deal rate, and moves per second of the PettingZoo
AEC env against the single-agent view.
"""

from __future__ import annotations

import time
from functools import partial

import gymnasium as gym

import agentgym  # noqa: F401  (registers the ids)
from agentgym.agents import RandomAgent
from agentgym.envs import negotiation
from agentgym.matches import play_games
from agentgym.multiagent import multiagent_rollout
from agentgym.ratings import RatingStore, format_ratings
from agentgym.rollout import group_specs


def main() -> None:
    scripted, random_agent = negotiation.ScriptedNegotiator(), RandomAgent(0)
    with RatingStore(":memory:") as store:
        start = time.perf_counter()
        games = play_games(store, "agentgym/Negotiation-v0", "test", [scripted, random_agent], games=100, seed=0)
        seconds = time.perf_counter() - start
        print(f"scripted vs random: {len(games)} games (100 seeds x both seats) in {seconds:.1f} s")
        mine = sum(g.reward_a for g in games) / len(games)
        theirs = sum(g.reward_b for g in games) / len(games)
        wins = sum(g.score_a == 1.0 for g in games)
        draws = sum(g.score_a == 0.5 for g in games)
        print(f"  points per game: scripted {mine:.2f}, random {theirs:.2f} (margin {mine - theirs:+.2f} of 10)")
        print(
            f"  scripted wins {wins}, draws {draws}, losses {len(games) - wins - draws}; "
            f"deals {sum(g.reward_a + g.reward_b > 0 for g in games)}"
        )
        print(format_ratings(store.ratings()))

    specs = group_specs([f"pool/{200_000 + i}" for i in range(100)], seeds=[0] * 100, group_size=1)
    episodes = multiagent_rollout(
        partial(negotiation.parallel_env, split="test"),
        {"player_0": scripted, "player_1": scripted},
        specs,
        in_process=True,
    )
    totals = [e["player_0"].total_reward + e["player_1"].total_reward for e in episodes]
    print(
        f"self-play (scripted x scripted, 100 pools): joint points {sum(totals) / len(totals):.2f} of 20, "
        f"deals {sum(t > 0 for t in totals)}/100"
    )

    aec, moves = negotiation.env(split="test"), 0
    start = time.perf_counter()
    for seed in range(200):
        aec.reset(seed=seed)
        for _agent in aec.agent_iter():
            obs, _, terminated, truncated, info = aec.last()
            aec.step(None if terminated or truncated else info["expert_action"])
            moves += not (terminated or truncated)
    aec_rate = moves / (time.perf_counter() - start)
    single, steps = gym.make("agentgym/Negotiation-v0", split="test"), 0
    start = time.perf_counter()
    for seed in range(200):
        obs, info = single.reset(seed=seed)
        done = False
        while not done:
            obs, _, terminated, truncated, info = single.step(info["expert_action"])
            steps, done = steps + 1, terminated or truncated
    single_rate = steps / (time.perf_counter() - start)
    print(
        f"speed: AEC {aec_rate:.0f} moves/s; single-agent view {single_rate:.0f} learner steps/s "
        f"(each includes the opponent's reply); ratio {aec_rate / single_rate:.2f}"
    )


if __name__ == "__main__":
    main()
