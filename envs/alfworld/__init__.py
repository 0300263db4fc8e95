"""ALFWorld family: ``agentgym/ALFWorld-v0`` (see :mod:`agentgym.envs.alfworld.env` for the env card)."""

from agentgym.extras import needs

with needs("alfworld"):  # one line naming the extra when it is missing
    from agentgym.envs.alfworld.env import ALFWorldEnv

__all__ = ["ALFWorldEnv"]
