"""ScienceWorld family: ``agentgym/ScienceWorld-v0`` (see :mod:`agentgym.envs.scienceworld.env` for the env card)."""

from agentgym.extras import needs

with needs("scienceworld"):  # one line naming the extra when it is missing
    from agentgym.envs.scienceworld.env import ScienceWorldEnv

__all__ = ["ScienceWorldEnv"]
