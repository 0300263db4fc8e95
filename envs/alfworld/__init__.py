"""ALFWorld family: ``agentgym/ALFWorld-v0`` (see :mod:`agentgym.envs.alfworld.env` for the env card)."""

from agentgym.envs.alfworld.env import ALFWorldEnv

__all__ = ["ALFWorldEnv"]
