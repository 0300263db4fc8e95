"""A small real results database for the store, export, verify, leaderboard and site tests."""

from agentgym.agents import ExpertAgent, RandomAgent
from agentgym.evaluation import evaluate

ENV_ID = "agentgym/TextWorld-v0"


def small_db(path, episodes: int = 3):
    """The expert and the random agent on the same ``episodes`` TextWorld test episodes (a few seconds)."""
    evaluate(ENV_ID, ExpertAgent(), split="test", episodes=episodes, seed=0, db=path, num_workers=1, progress=False)
    evaluate(
        ENV_ID,
        RandomAgent(seed=0),
        split="test",
        episodes=episodes,
        seed=0,
        max_turns=50,
        db=path,
        num_workers=1,
        progress=False,
    )
    return path
