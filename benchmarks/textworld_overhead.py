"""agentgym's overhead over TextWorld's own API, stepping the same games with the same actions.

Both sides request the same engine infos (admissible commands, the plan, scores). The actions are
recorded once from a seeded random walk and replayed through both, alternating which goes first;
time is this process's CPU time (the engine runs in-process, so it is all counted, and other load on
the machine does not inflate it); each side's time per game is its fastest round, and the ratio is
agentgym time / TextWorld time (goal: under 1.05).

Run: .venv/bin/python benchmarks/textworld_overhead.py [--games 5] [--steps 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import textworld

import agentgym  # noqa: F401

# What agentgym's TextWorld env requests: description and inventory build its state anchor (issue 16).
INFOS = dict(
    admissible_commands=True,
    policy_commands=True,
    intermediate_reward=True,
    objective=True,
    max_score=True,
    score=True,
    won=True,
    lost=True,
    moves=True,
    description=True,
    inventory=True,
    extras=["walkthrough"],
)


def record_actions(path: str, steps: int, seed: int) -> list[list[str]]:
    """Episodes of random admissible commands (a new episode after a win or loss)."""
    rng = np.random.default_rng(seed)
    env = textworld.start(path, request_infos=textworld.EnvInfos(**INFOS))
    episodes, current = [], []
    state = env.reset()
    for _ in range(steps):
        command = state["admissible_commands"][rng.integers(len(state["admissible_commands"]))]
        current.append(command)
        state, _, done = env.step(command)
        if done:
            episodes.append(current)
            current, state = [], env.reset()
    env.close()
    return episodes + [current] if current else episodes


def run_textworld(path: str, episodes: list[list[str]]) -> float:
    env = textworld.start(path, request_infos=textworld.EnvInfos(**INFOS))
    start = time.process_time()
    for actions in episodes:
        env.reset()
        for command in actions:
            env.step(command)
    elapsed = time.process_time() - start
    env.close()
    return elapsed


def run_agentgym(task_id: str, episodes: list[list[str]]) -> float:
    # A fresh env per run, as on the TextWorld side: a TextWorld engine reused over many resets slows
    # down by a few percent (its memoization caches grow), which is the engine's cost, not ours.
    env = gym.make("agentgym/TextWorld-v0", split="test", max_turns=10_000)
    env.reset(options={"task_id": task_id})  # loads the game, as textworld.start does untimed
    start = time.process_time()
    for actions in episodes:
        env.reset(options={"task_id": task_id})
        for command in actions:
            env.step(command)
    elapsed = time.process_time() - start
    env.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", type=int, default=5, help="test-split games to use")
    parser.add_argument("--steps", type=int, default=200, help="steps per game per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating measurement rounds")
    args = parser.parse_args()

    env = gym.make("agentgym/TextWorld-v0", split="test")
    base = env.unwrapped
    task_ids = base.task_ids[:: max(1, len(base.task_ids) // args.games)][: args.games]
    games = {task_id: str(base.game_file(base.tasks.get(task_id))) for task_id in task_ids}
    plans = {task_id: record_actions(path, args.steps, seed=i) for i, (task_id, path) in enumerate(games.items())}
    total_steps = sum(len(a) for plan in plans.values() for a in plan)
    # Per game, the fastest of the rounds on each side: other load on the machine only ever adds time.
    tw_best = {t: float("inf") for t in task_ids}
    ag_best = dict(tw_best)
    for round_index in range(args.rounds):
        for t in task_ids:
            runs = [
                ("tw", lambda t=t: run_textworld(games[t], plans[t])),
                ("ag", lambda t=t: run_agentgym(t, plans[t])),
            ]
            for side, run in runs if round_index % 2 == 0 else runs[::-1]:
                best = tw_best if side == "tw" else ag_best
                best[t] = min(best[t], run())
    env.close()
    tw, ag = sum(tw_best.values()), sum(ag_best.values())
    print(f"games: {len(task_ids)}  steps per game: {args.steps}  total steps: {total_steps}  rounds: {args.rounds}")
    print(f"TextWorld API : {total_steps / tw:8.1f} steps/s  (best of {args.rounds} rounds per game: {tw:.3f} s)")
    print(f"agentgym      : {total_steps / ag:8.1f} steps/s  (best of {args.rounds} rounds per game: {ag:.3f} s)")
    print(f"overhead ratio (agentgym time / TextWorld time): {ag / tw:.3f}  (goal < 1.05)")


if __name__ == "__main__":
    main()
