"""Negotiation (competitive, two players): the single-agent view ``agentgym/Negotiation-v0`` and the PettingZoo
``env()`` (AEC) / ``parallel_env()`` constructors; the env card is in :mod:`agentgym.envs.negotiation.env`."""

from agentgym.extras import needs

with needs("multiagent"):  # one line naming the extra when it is missing
    from agentgym.envs.negotiation.engine import NegotiationGame
    from agentgym.envs.negotiation.env import NegotiationEnv, env, parallel_env
    from agentgym.envs.negotiation.scripted import ScriptedNegotiator

__all__ = ["NegotiationEnv", "NegotiationGame", "ScriptedNegotiator", "env", "parallel_env"]
