"""Small hand-made trajectories for the reward-hook tests (imported by the test modules)."""

from __future__ import annotations

from agentgym.trajectory import Trajectory, Turn


def make_trajectory(
    actions,
    observations=None,
    *,
    won=False,
    valid=None,
    scores=None,
    truth=None,
    group="g",
    end="terminated",
    episode_id="e",
    rewards=None,
):
    """A finished trajectory from lists (one entry per turn)."""
    n = len(actions)
    observations = observations or [f"You see room {k}." for k in range(n)]
    valid = valid if valid is not None else [True] * n
    scores = scores if scores is not None else [0.0] * (n - 1) + [1.0 if won else 0.0]
    rewards = rewards if rewards is not None else [0.0] * n
    turns = []
    for k in range(n):
        last = k == n - 1
        info = {
            "action_valid": valid[k],
            "won": bool(won and last),
            "score": scores[k],
            "ground_truth": truth,
            "anchor_obs": observations[k],
            "turn": k + 1,
        }
        turns.append(
            Turn(
                observations[k],
                actions[k],
                rewards[k],
                last and end == "terminated",
                last and end == "truncated",
                info,
            )
        )
    return Trajectory(
        episode_id,
        "test",
        "task",
        0,
        "test",
        "You are in a kitchen. Find the coin.",
        {"goal": "Find the coin.", "ground_truth": truth, "anchor_obs": "start", "score": 0.0},
        turns,
        group_id=group,
    )
