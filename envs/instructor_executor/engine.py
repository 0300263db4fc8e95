"""The instructor–executor protocol as a :class:`~agentgym.turngame.TurnGame` over a single-agent engine
(see the env card in :mod:`agentgym.envs.instructor_executor.env`)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from gymnasium.envs.registration import load_env_creator

from agentgym.agents import Agent
from agentgym.core import TextEnv, Transition
from agentgym.error import InvalidArgumentError
from agentgym.registration import FAMILIES, check_env_id, env_id
from agentgym.tasks import Task, TaskSplit
from agentgym.turngame import Outcome, TurnGame

PROTOCOL_VERSION = 0
AGENTS = ("instructor", "executor")
FAMILY_KEY = "instructorexecutor"
#: What ``task_env`` may be: a :class:`~agentgym.core.TextEnv` class or a factory with its keyword arguments
#: (``split``, ``max_turns`` and the engine's own), or a registered agentgym id.
EngineFactory = Callable[..., TextEnv]


def engine_class(task_env: EngineFactory | str | None) -> tuple[EngineFactory, str]:
    """The engine factory ``task_env`` names and a label for the engine version (``None``: TextWorld). An id is
    resolved to its registered entry point, so families never import each other and ``gym.make``'s wrappers
    (order enforcing, the passive checker) stay out of the game's inner engine."""
    if task_env is None:
        task_env = env_id("TextWorld")
    if isinstance(task_env, str):
        import gymnasium as gym

        import agentgym  # noqa: F401  (registers the ids)

        return load_env_creator(gym.spec(check_env_id(task_env)).entry_point), task_env
    if not callable(task_env):
        raise InvalidArgumentError(f"task_env must be a TextEnv class, a factory or an env id, got {task_env!r}")
    family = getattr(task_env, "family", None)
    label = env_id(family) if family in FAMILIES else getattr(task_env, "__qualname__", repr(task_env))
    return task_env, label


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
        task_env: the engine: a :class:`~agentgym.core.TextEnv` class or factory, or a registered id
            (:func:`engine_class`; ``None``: TextWorld).
        task_env_kwargs: extra constructor arguments of the engine.
        max_action_length: longer messages and commands are answered as invalid.
        info_keys: which of the engine's costly info keys to compute (None: all); see
            :meth:`~agentgym.turngame.TurnGame.set_info_keys`.
    """

    family = "InstructorExecutor"
    possible_agents = AGENTS
    message_agents = ("instructor",)

    def __init__(
        self,
        split: str = "train",
        max_turns: int | None = 100,
        task_env: EngineFactory | str | None = None,
        task_env_kwargs: Mapping[str, Any] | None = None,
        max_action_length: int = 4096,
        info_keys: Collection[str] | None = None,
    ):
        factory, label = engine_class(task_env)
        engine_turns = max_turns if max_turns is not None else 10**9
        self._engine: TextEnv = factory(split=split, max_turns=engine_turns, **dict(task_env_kwargs or {}))
        if not isinstance(self._engine, TextEnv):
            raise InvalidArgumentError(f"task_env must build an agentgym TextEnv, got {type(self._engine).__name__}")
        self.costly_info_keys = self._engine.costly_info_keys
        self.engine_family = self._engine.family.lower()
        self.engine_version = f"{self._engine.engine_version}; instructor-executor v{PROTOCOL_VERSION} over {label}"
        super().__init__(
            TaskSplit(split, self._engine.tasks.tasks, self.engine_version),
            max_turns=max_turns,
            max_action_length=max_action_length,
            info_keys=info_keys,
        )
        self._info: dict[str, Any] = {}
        self._seen = ""
        self._message = self._command = self._note = ""

    def set_info_keys(self, keys: Collection[str] | None) -> None:
        """As :meth:`TurnGame.set_info_keys`; the engine computes the same costly keys (the instructor's expert
        move is the engine's, the executor's admissible commands are the engine's)."""
        super().set_info_keys(keys)
        self._engine.set_info_keys(None if keys is None else frozenset(keys) & self._engine.info_key_names)

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
        return self._outcome(
            text,
            None if terminated else "instructor",
            reward=float(reward),
            terminated=bool(terminated),
            command_valid=bool(self._info["action_valid"]),
        )

    def _outcome(
        self, text: dict[str, str], to_move: str | None, *, reward: float, terminated: bool, command_valid: bool
    ) -> Outcome:
        info = self._info
        shared = {
            "message": self._message,
            "command": self._command,
            "note": self._note,
            "engine": dict(info.get(self.engine_family) or {}),
        }
        common = {
            "reward": reward,
            "terminated": terminated,
            "won": bool(info["won"]),
            "score": float(info["score"]),
            "family_info": shared,
        }
        instructor = Transition(
            observation=text["instructor"],
            action_valid=True,
            admissible_actions=None,
            expert_action=None if terminated else info.get("expert_action"),
            ground_truth=info.get("ground_truth"),
            anchor_obs=info.get("anchor_obs"),
            **common,
        )
        executor = Transition(
            observation=text["executor"],
            action_valid=command_valid,
            admissible_actions=list(info.get("admissible_actions") or []) if to_move == "executor" else [],
            expert_action=None,
            anchor_obs=self._redact(info.get("anchor_obs") or "")
            + (f"\n\nInstructor: {self._message}" if to_move == "executor" else ""),
            **common,
        )
        return Outcome({"instructor": instructor, "executor": executor}, to_move)

    def _close_engine(self) -> None:
        self._engine.close()
