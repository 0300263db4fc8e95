"""Test helpers for the LLM agent and trainer: a trivially learnable text env and a tiny random LM."""

from __future__ import annotations

from agentgym.core import TextEnv, Transition
from agentgym.tasks import Task, TaskSplit

WORDS = ["coin", "key", "chest", "look", "east", "west", "open", "take"]


class SayEnv(TextEnv):
    """``turns`` turns; each turn rewards ``1 / turns`` when the action starts with the letter ``c``.

    The goal asks for a word that starts with c; the admissible actions are a few words. A random policy
    over a tiny byte-level vocabulary starts with a low success rate, and one token decides the reward, so
    policy-gradient training raises the mean reward within a few dozen updates.
    """

    family = "Say"

    def __init__(self, split: str = "train", max_turns: int = 8, turns: int = 1, num_tasks: int = 4):
        self.engine_version = "say-1"
        self.turns = turns
        tasks = TaskSplit(split, [Task(f"say/{k}", {"k": k}) for k in range(num_tasks)], self.engine_version)
        super().__init__(tasks, max_turns=max_turns)
        self._said = 0

    def _start(self, task: Task) -> tuple[Transition, str | None]:
        self._said = 0
        return (
            Transition(f"Round {task.definition['k']}. Say a word.", admissible_actions=list(WORDS)),
            "Say a word that starts with the letter c.",
        )

    def _advance(self, action: str) -> Transition:
        self._said += 1
        good = action.strip().lower().startswith("c")
        done = self._said >= self.turns
        return Transition(
            f"You said {action!r}. " + ("Good." if good else "Wrong letter."),
            reward=(1.0 / self.turns) if good else 0.0,
            terminated=done,
            won=good and done,
            score=1.0 if good else 0.0,
            admissible_actions=list(WORDS),
        )
