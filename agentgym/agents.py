"""The agent interface and the two reference agents.

An agent maps an observation and its ``info`` to an action text. Rollouts call :meth:`Agent.act_batch`
with the pending turns of many envs at once (an LLM agent generates them in one batch); each turn
carries its ``episode_id`` so a stateful agent can keep one history per episode, and so that an
agent's choices do not depend on how the episodes of a parallel rollout interleave.
"""

from __future__ import annotations

import abc
import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agentgym.error import InvalidArgumentError
from agentgym.trajectory import Decision


class Agent(abc.ABC):
    """Maps ``(observation, info)`` to an action text or a :class:`~agentgym.trajectory.Decision`."""

    #: Name recorded with every trajectory and evaluation row.
    name: str = "agent"
    #: The lazily computed info values this agent reads (such as ScienceWorld's ``admissible_actions`` or
    #: ``expert_action``, which cost more than a step); rollouts skip computing the others. None: all.
    info_keys: frozenset[str] | None = None

    @abc.abstractmethod
    def act(self, observation: str, info: Mapping[str, Any], *, episode_id: str = "") -> str | Decision:
        """The action for one turn of one episode."""

    def act_batch(
        self,
        observations: Sequence[str],
        infos: Sequence[Mapping[str, Any]],
        episode_ids: Sequence[str],
    ) -> list[str | Decision]:
        """The actions for one pending turn of each of several episodes. Override to batch work."""
        return [
            self.act(obs, info, episode_id=episode_id)
            for obs, info, episode_id in zip(observations, infos, episode_ids, strict=True)
        ]

    def end_episode(self, episode_id: str) -> None:
        """Forget an episode's state (called by rollouts when it ends)."""


def _episode_rng(seed: int, episode_id: str) -> np.random.Generator:
    digest = int.from_bytes(hashlib.sha256(episode_id.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, digest])


class RandomAgent(Agent):
    """Uniform over the admissible actions; seeded per episode, so parallel runs repeat exactly.

    Falls back to ``look`` in families without admissible actions.
    """

    name = "random"
    info_keys = frozenset({"admissible_actions"})

    def __init__(self, seed: int = 0):
        self.seed = seed
        self._rngs: dict[str, np.random.Generator] = {}

    def act(self, observation: str, info: Mapping[str, Any], *, episode_id: str = "") -> str:
        rng = self._rngs.get(episode_id)
        if rng is None:
            rng = self._rngs[episode_id] = _episode_rng(self.seed, episode_id)
        actions = info.get("admissible_actions") or ["look"]
        return str(actions[int(rng.integers(len(actions)))])

    def end_episode(self, episode_id: str) -> None:
        self._rngs.pop(episode_id, None)


class ExpertAgent(Agent):
    """Follows ``info["expert_action"]`` (``look`` when the family has no expert move)."""

    name = "expert"
    info_keys = frozenset({"expert_action"})

    def act(self, observation: str, info: Mapping[str, Any], *, episode_id: str = "") -> str:
        return info.get("expert_action") or "look"


#: Agent names the CLI accepts, each with a factory taking the seed.
AGENTS: dict[str, Callable[[int], Agent]] = {
    "random": lambda seed: RandomAgent(seed),
    "expert": lambda seed: ExpertAgent(),
}


def make_agent(spec: str, seed: int = 0, **kwargs: Any) -> Agent:
    """The agent an ``agentgym eval --agent`` spec names, with ``kwargs`` from ``--agent-kwargs``.

    The one place that turns a spec into an agent. Specs (:mod:`agentgym.agent_specs` documents each form
    and the identity ``agent.name`` gets): a registered name (:data:`AGENTS`), ``openai:BASE_URL#MODEL``, a
    checkpoint folder (``agent.json``), a Hugging Face model folder (``config.json``) or
    ``package.module:Class``. ``seed`` seeds the agent's sampling. A bad spec raises
    :class:`InvalidArgumentError` in one line that lists the accepted forms.
    """
    from agentgym import agent_specs

    parsed = agent_specs.parse_agent_spec(spec, AGENTS)
    if parsed.kind == "registered":
        if kwargs:
            raise InvalidArgumentError(f"agent {spec!r} takes no --agent-kwargs, got {sorted(kwargs)}")
        return AGENTS[spec](seed)
    if parsed.kind == "checkpoint":
        return load_agent(spec, seed, **kwargs)
    if parsed.kind == "hf":
        return agent_specs.build_hf_agent(spec, seed, kwargs)
    if parsed.kind == "class":
        return agent_specs.build_class_agent(spec, seed, kwargs)
    from agentgym.baselines.openai_agent import OpenAIAgent

    return OpenAIAgent.from_spec(spec, seed=seed, **kwargs)


def load_agent(path: str | os.PathLike, seed: int = 0, **overrides: Any) -> Agent:
    """A trained agent from a checkpoint folder whose ``agent.json`` names its ``kind``.

    ``"llm"``: :meth:`agentgym.baselines.llm_agent.LLMAgent.from_checkpoint` (``overrides`` replace its
    recorded settings; they change the agent's behaviour, so its name gets ``@HASH`` of them);
    ``"drrn"``: :meth:`agentgym.baselines.drrn.DRRNAgent.from_checkpoint`. The baselines are imported here,
    inside the function, so that the core never imports ``baselines`` at module import time (DESIGN.md:
    dependencies point from baselines to the core).
    """
    meta_path = Path(path) / "agent.json"
    try:
        kind = json.loads(meta_path.read_text()).get("kind")
    except (OSError, ValueError, AttributeError) as exc:
        raise InvalidArgumentError(f"{meta_path}: not a readable agent checkpoint ({exc})") from None
    if kind == "llm":
        from agentgym.agent_specs import name_agent
        from agentgym.baselines.llm_agent import LLMAgent

        agent: Agent = LLMAgent.from_checkpoint(path, **{"seed": seed, **overrides})
        if overrides:
            name_agent(agent, agent.name, {"spec": str(path), "kind": "checkpoint", "overrides": overrides})
        return agent
    if kind == "drrn":
        from agentgym.baselines.drrn import DRRNAgent

        if overrides:
            raise InvalidArgumentError(
                f"{meta_path}: a DRRN checkpoint takes no --agent-kwargs, got {sorted(overrides)}"
            )
        return DRRNAgent.from_checkpoint(path)
    raise InvalidArgumentError(f"{meta_path}: unknown agent kind {kind!r}; expected 'llm' or 'drrn'")
