"""TextWorld family: ``agentgym/TextWorld-v0`` (see :mod:`agentgym.envs.textworld.env` for the env card)."""

from agentgym.extras import needs

with needs("textworld"):  # one line naming the extra when it is missing
    from agentgym.envs.textworld.env import TextWorldEnv

__all__ = ["TextWorldEnv"]
