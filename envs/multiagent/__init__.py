"""Multi-agent text environments on the PettingZoo API (see :mod:`agentgym.envs.multiagent.base`).

* Negotiation (competitive): :mod:`agentgym.envs.multiagent.negotiation` — ``agentgym/Negotiation-v0``, and
  PettingZoo ``negotiation.env()`` / ``negotiation.parallel_env()``.
* Instructor–executor (cooperative): :mod:`agentgym.envs.multiagent.instructor_executor` —
  ``agentgym/InstructorExecutor-v0``, and ``instructor_executor.env()`` / ``instructor_executor.parallel_env()``.
* Self-play rollouts with one trajectory per agent: :mod:`agentgym.envs.multiagent.rollout`.
* Competitive games for Elo ratings (:mod:`agentgym.ratings`): :mod:`agentgym.envs.multiagent.matches`.
"""

from agentgym.envs.multiagent.base import SingleAgentView, TextObs, TurnGame
from agentgym.envs.multiagent.views import MoveSpace, TextAECEnv, TextParallelEnv
from agentgym.envs.multiagent.instructor_executor import (
    FollowerExecutor,
    InstructorExecutorEnv,
    InstructorExecutorGame,
)
from agentgym.envs.multiagent.negotiation import NegotiationEnv, NegotiationGame, ScriptedNegotiator

__all__ = [
    "FollowerExecutor",
    "InstructorExecutorEnv",
    "InstructorExecutorGame",
    "MoveSpace",
    "NegotiationEnv",
    "NegotiationGame",
    "ScriptedNegotiator",
    "SingleAgentView",
    "TextAECEnv",
    "TextObs",
    "TextParallelEnv",
    "TurnGame",
]
