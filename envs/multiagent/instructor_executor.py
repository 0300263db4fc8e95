"""Instructor–executor: a cooperative pair solves a text-game task; one knows the goal, the other acts.

Env card
--------
* **Ids**: ``agentgym/InstructorExecutor-v0`` (one seat with a scripted partner, a :class:`~agentgym.core.TextEnv`);
  PettingZoo ``env()`` (AEC) and ``parallel_env()`` from this module, agents ``instructor`` and ``executor``.
* **Engine**: any agentgym single-agent family made with ``gymnasium.make(task_env, split=...)``; the default is
  ``agentgym/TextWorld-v0`` (the real TextWorld engine). ALFWorld works the same way once registered
  (``task_env="agentgym/ALFWorld-v0"``); ``task_env_kwargs`` passes its options (a data dir, say).
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

Version history: v0, initial release.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentgym.agents import Agent, ExpertAgent
from agentgym.core import Transition
from agentgym.error import InvalidArgumentError
from agentgym.tasks import Task, TaskSplit

from agentgym.envs.multiagent.base import Outcome, SingleAgentView, TurnGame
from agentgym.envs.multiagent.views import pettingzoo_constructors

PROTOCOL_VERSION = 0
AGENTS = ("instructor", "executor")
FAMILY_KEY = "instructorexecutor"


class FollowerExecutor(Agent):
    """Executes the instructor's latest message as its command (its first line; ``look`` without one)."""

    name = "follower"

    def act(self, observation: str, info: Mapping[str, Any], *, episode_id: str = "") -> str:
        message = (info.get(FAMILY_KEY) or {}).get("message") or ""
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        return lines[0] if lines else "look"


class InstructorExecutorGame(TurnGame):
    """The instructor–executor protocol over a single-agent agentgym env (see the env card).

    Args:
        split: the engine's split.
        max_turns: cap on both agents' moves (``None``: no cap).
        task_env: the engine's env id.
        task_env_kwargs: extra constructor arguments of the engine.
        max_action_length: longer messages and commands are answered as invalid.
    """

    family = "InstructorExecutor"
    possible_agents = AGENTS
    message_agents = ("instructor",)

    def __init__(
        self,
        split: str = "train",
        max_turns: int | None = 100,
        task_env: str = "agentgym/TextWorld-v0",
        task_env_kwargs: Mapping[str, Any] | None = None,
        max_action_length: int = 4096,
    ):
        import gymnasium as gym

        import agentgym  # noqa: F401  (registers the engine ids)

        engine_turns = max_turns if max_turns is not None else 10**9
        self._engine = gym.make(task_env, split=split, max_turns=engine_turns, **dict(task_env_kwargs or {}))
        base = self._engine.unwrapped
        self.engine_family = base.family.lower()
        self.engine_version = f"{base.engine_version}; instructor-executor v{PROTOCOL_VERSION} over {task_env}"
        super().__init__(TaskSplit(split, base.tasks.tasks, self.engine_version), max_turns=max_turns,
                         max_action_length=max_action_length)
        self._info: dict[str, Any] = {}
        self._seen = ""
        self._message = self._command = self._note = ""

    def _redact(self, text: str) -> str:
        goal = self._info.get("goal")
        return text.replace(goal, "[The instructor knows your task.]") if goal else text

    def _start(self, task: Task) -> tuple[Outcome, dict[str, str | None]]:
        obs, self._info = self._engine.reset(options={"task_id": task.task_id})
        self._seen = self._redact(obs)
        self._message = self._command = self._note = ""
        goal = self._info.get("goal")
        text = {
            "instructor": f"You are the instructor. The executor acts in the game but cannot see the goal.\n"
            f"Goal: {goal}\n\nThe executor sees:\n{self._seen}\n\nSend the executor a message (your whole action "
            "is the message).",
            "executor": f"You are the executor. You act in the game; the instructor knows the task.\n\n{self._seen}"
            "\n\nWaiting for the instructor's message.",
        }
        return self._outcome(text, "instructor", reward=0.0, terminated=False, command_valid=True), {
            "instructor": goal,
            "executor": None,
        }

    def _clean_action(self, agent: str, action: str) -> tuple[str | None, str | None]:
        if agent == "executor" and not action.partition("|")[0].strip():
            return None, "the command before '|' is empty; write a game command, then '| <note>' if you like"
        return action, None

    def _advance(self, agent: str, action: str) -> Outcome:
        if agent == "instructor":
            self._message = action
            text = {
                "instructor": "Message sent. Waiting for the executor.",
                "executor": f"{self._seen}\n\nInstructor: {action}\n\nYour command (optionally followed by "
                "'| <note to the instructor>'):",
            }
            return self._outcome(text, "executor", reward=0.0, terminated=False, command_valid=True)
        command, _, note = action.partition("|")
        self._command, self._note = command.strip(), note.strip()
        obs, reward, terminated, _, self._info = self._engine.step(self._command)
        self._seen = self._redact(obs)
        noted = f"\nThe executor notes: {self._note}" if self._note else ""
        text = {
            "instructor": f"The executor did: {self._command}{noted}\nIt sees:\n{self._seen}\n\n"
            + ("The episode is over." if terminated else "Send the next message."),
            "executor": f"{self._seen}\n\n" + ("The episode is over." if terminated else "Waiting for the instructor."),
        }
        return self._outcome(text, None if terminated else "instructor", reward=float(reward),
                             terminated=bool(terminated), command_valid=bool(self._info["action_valid"]))

    def _outcome(self, text: dict[str, str], to_move: str | None, *, reward: float, terminated: bool,
                 command_valid: bool) -> Outcome:
        info = self._info
        shared = {"message": self._message, "command": self._command, "note": self._note,
                  "engine": dict(info.get(self.engine_family) or {})}
        common = {"reward": reward, "terminated": terminated, "won": bool(info["won"]), "score": float(info["score"]),
                  "family_info": shared}
        instructor = Transition(
            observation=text["instructor"], action_valid=True, admissible_actions=None,
            expert_action=None if terminated else info.get("expert_action"), ground_truth=info.get("ground_truth"),
            anchor_obs=info.get("anchor_obs"), **common,
        )
        executor = Transition(
            observation=text["executor"], action_valid=command_valid,
            admissible_actions=list(info.get("admissible_actions") or []) if to_move == "executor" else [],
            expert_action=None, anchor_obs=self._redact(info.get("anchor_obs") or "")
            + (f"\n\nInstructor: {self._message}" if to_move == "executor" else ""), **common,
        )
        return Outcome({"instructor": instructor, "executor": executor}, to_move)

    def _close_engine(self) -> None:
        self._engine.close()


class InstructorExecutorEnv(SingleAgentView):
    """``agentgym/InstructorExecutor-v0``: one seat of the pair with a scripted partner (see the env card).

    Args:
        split: the engine's split (``train``, ``valid``, ``test`` for TextWorld).
        max_turns: cap on the learner's moves (truncation).
        seat: ``instructor`` (the partner is :class:`FollowerExecutor`) or ``executor`` (the partner is the
            expert instructor, :class:`~agentgym.agents.ExpertAgent`).
        task_env: the engine's env id. task_env_kwargs: its extra constructor arguments.
        max_action_length: longer actions are answered as invalid.
        render_mode: ``None`` or ``"ansi"``.
    """

    family = "InstructorExecutor"

    def __init__(
        self,
        split: str = "train",
        max_turns: int = 50,
        seat: str = "instructor",
        task_env: str = "agentgym/TextWorld-v0",
        task_env_kwargs: Mapping[str, Any] | None = None,
        max_action_length: int = 4096,
        render_mode: str | None = None,
    ):
        if seat not in AGENTS:
            raise InvalidArgumentError(f"seat must be one of {list(AGENTS)}, got {seat!r}")
        game = InstructorExecutorGame(split, 2 * max_turns + 1, task_env, task_env_kwargs, max_action_length)
        game.max_turns = None  # the learner's turn limit (the TextEnv's) is the one that applies
        partners = {"executor": FollowerExecutor()} if seat == "instructor" else {"instructor": ExpertAgent()}
        super().__init__(game, seat, partners, max_turns=max_turns, render_mode=render_mode)


#: The PettingZoo constructors: ``env(...)`` (AEC) and ``parallel_env(...)``, with InstructorExecutorGame's arguments.
env, parallel_env = pettingzoo_constructors(InstructorExecutorGame)
