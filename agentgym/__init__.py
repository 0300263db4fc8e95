"""agentgym: Gymnasium environments, reward hooks and evaluation for training LLM agents.

``import agentgym`` registers every ``agentgym/<Family>-v<N>`` id with Gymnasium; make one with
``gymnasium.make("agentgym/TextWorld-v0")``.
"""

from agentgym.core import INFO_KEYS, StepInfo, TextEnv, TextSpace, Transition
from agentgym.registration import register_envs, registered_ids

__version__ = "0.1.0"
__all__ = ["INFO_KEYS", "StepInfo", "TextEnv", "TextSpace", "Transition", "registered_ids", "__version__"]

register_envs()
