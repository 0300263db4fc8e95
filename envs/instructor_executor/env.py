"""Instructor–executor: a cooperative pair solves a text-game task; one knows the goal, the other acts.

Env card
--------
* **Ids**: ``agentgym/InstructorExecutor-v0`` (one seat with a scripted partner, a :class:`~agentgym.core.TextEnv`);
  PettingZoo ``env()`` (AEC) and ``parallel_env()`` from this module, agents ``instructor`` and ``executor``.
* **Engine**: any agentgym single-agent family, given as ``task_env``: its :class:`~agentgym.core.TextEnv` class
  or a factory called as ``task_env(split=..., max_turns=..., **task_env_kwargs)``, or a
  registered id (``"agentgym/ALFWorld-v0"``: its class, from the registry). The default is TextWorld's class
  (the real TextWorld engine), found through the registry, since families do not import each other.
  ``task_env_kwargs`` passes its options (game files, a data dir). The engine is the bare env, without
  ``gym.make``'s wrappers; its costly info keys are the game's (``info_keys=`` is passed on).
* **Tasks**: the engine's split (same task ids and definitions; the engine version names the protocol).
* **Turns**: the instructor moves first. The instructor's action is a message (any text) and never reaches the
  game; the executor's action is one game command, optionally followed by ``| <note to the instructor>``.
  They alternate: message, command, message, command...
* **Observations**: the instructor sees the goal and, after each command, the command and what the executor
  saw; the executor sees the game's text with the goal removed (wherever the engine prints it) and the
  instructor's latest message. The executor never sees the goal.
* **Reward**: both agents get the engine's reward for each command (TextWorld: the score change), so both are
  rewarded when the task is solved. ``won``/``score`` are the engine's, shared.
* **Termination**: the engine's (won or lost). **Truncation**: ``max_turns`` moves (PettingZoo views: both
  agents' moves, default 100; single-agent view: the learner's moves, default 50).
* **info**: the standard keys per agent. Instructor: ``goal`` is the task, ``expert_action`` the engine's expert
  command (what a perfect instructor relays), ``admissible_actions`` None (free text). Executor: ``goal`` None,
  ``admissible_actions`` the engine's commands on its move (``[]`` while waiting), ``expert_action`` None (it
  would reveal the goal). ``anchor_obs`` is the engine's state key (TextWorld: room and inventory); the
  executor's, with the goal redacted, also holds the instructor's message it acts on. Under
  ``info["instructorexecutor"]``: ``message`` (the instructor's latest message),
  ``command`` and ``note`` (the executor's latest), and ``engine`` (the engine's own family info).
* **Bad actions**: the common checks for both agents (the instructor's messages may span several lines); the
  executor's commands then get the engine's own checks.

Scripted partners: the instructor :class:`~agentgym.agents.ExpertAgent` relays ``info["expert_action"]``;
:class:`FollowerExecutor` sends the instructor's message as its command. Together they are the expert pair.

Version history: v0, initial release. Issue 18: ``task_env`` takes the engine's class or a factory (an id
still works, resolved to its class); the engine is no longer wrapped by ``gym.make``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from agentgym.agents import ExpertAgent
from agentgym.envs.instructor_executor.engine import AGENTS, EngineFactory, FollowerExecutor, InstructorExecutorGame
from agentgym.error import InvalidArgumentError
from agentgym.multiagent import pettingzoo_constructors
from agentgym.turngame import SingleAgentView


class InstructorExecutorEnv(SingleAgentView):
    """``agentgym/InstructorExecutor-v0``: one seat of the pair with a scripted partner (see the env card).

    Args:
        split: the engine's split (``train``, ``valid``, ``test`` for TextWorld).
        max_turns: cap on the learner's moves (truncation).
        seat: ``instructor`` (the partner is :class:`FollowerExecutor`) or ``executor`` (the partner is the
            expert instructor, :class:`~agentgym.agents.ExpertAgent`).
        task_env: the engine (its class or a factory, or a registered id; ``None``: TextWorld), as for
            :class:`InstructorExecutorGame`. task_env_kwargs: its extra constructor arguments.
        max_action_length: longer actions are answered as invalid.
        render_mode: ``None`` or ``"ansi"``.
        info_keys: which of the engine's costly info keys the learner's ``info`` carries (None: all; the
            scripted partner still gets what it reads).
    """

    family = "InstructorExecutor"

    def __init__(
        self,
        split: str = "train",
        max_turns: int = 50,
        seat: str = "instructor",
        task_env: EngineFactory | str | None = None,
        task_env_kwargs: Mapping[str, Any] | None = None,
        max_action_length: int = 4096,
        render_mode: str | None = None,
        info_keys: Collection[str] | None = None,
    ):
        if seat not in AGENTS:
            raise InvalidArgumentError(f"seat must be one of {list(AGENTS)}, got {seat!r}")
        game = InstructorExecutorGame(split, 2 * max_turns + 1, task_env, task_env_kwargs, max_action_length)
        game.max_turns = None  # the learner's turn limit (the TextEnv's) is the one that applies
        partners = {"executor": FollowerExecutor()} if seat == "instructor" else {"instructor": ExpertAgent()}
        super().__init__(game, seat, partners, max_turns=max_turns, render_mode=render_mode, info_keys=info_keys)


#: The PettingZoo constructors: ``env(...)`` (AEC) and ``parallel_env(...)``, with InstructorExecutorGame's arguments.
env, parallel_env = pettingzoo_constructors(InstructorExecutorGame, __name__)
