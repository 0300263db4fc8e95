"""TextWorld family: ``agentgym/TextWorld-v0`` (see :mod:`agentgym.envs.textworld.env` for the env card)."""

from agentgym.envs.textworld.env import TextWorldEnv

__all__ = ["TextWorldEnv"]
