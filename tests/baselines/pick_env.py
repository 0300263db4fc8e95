"""A tiny text env for the trainer's estimator tests: every reward input an estimator reads varies.

``PickEnv`` plays ``turns`` turns. Each turn the agent says a word; the admissible words are
:data:`llm_helpers.WORDS`, half of them :data:`GOOD` (reward ``1 / turns``), so a random choice-format
policy gets returns with spread inside a group. A word outside the list is answered with
``action_valid=False`` (GiGPO's invalid penalty), ``anchor_obs`` is the state (the turn number and the
words said, in order: two rollouts that said the same words share a GiGPO step group), ``score`` the share
of good words so far (IGPO's proxy outcome, PRS's task stage). Task ``pick/0`` is hopeless (no word is
good), so its groups never have reward spread (VSPO replaces them).

``SaidHook`` (a hook from a config as ``pick_env:SaidHook``) pays 1 for each turn that said one of
``words`` (default: the words the env does not reward), so shaping with it changes GRPO's advantages.
"""

from __future__ import annotations

from llm_helpers import WORDS

from agentgym.core import TextEnv, Transition
from agentgym.tasks import Task, TaskSplit
from agentgym.wrappers import TurnRewardHook

GOOD = {"coin", "key", "chest", "take"}


class PickEnv(TextEnv):
    family = "Pick"

    def __init__(self, split: str = "train", max_turns: int = 8, turns: int = 2, num_tasks: int = 3):
        self.engine_version = "pick-1"
        self.turns = turns
        tasks = TaskSplit(split, [Task(f"pick/{k}", {"k": k}) for k in range(num_tasks)], self.engine_version)
        super().__init__(tasks, max_turns=max_turns)
        self._said: list[str] = []
        self._good = 0
        self._hopeless = False

    def _start(self, task: Task) -> tuple[Transition, str | None]:
        self._said, self._good, self._hopeless = [], 0, task.definition["k"] == 0
        return Transition(
            f"Round {task.definition['k']}. Say a word.", admissible_actions=list(WORDS), anchor_obs="turn 0"
        ), "Say a good word."

    def _advance(self, action: str) -> Transition:
        word = action.strip().lower()
        self._said.append(word)
        good = word in GOOD and not self._hopeless
        self._good += good
        done = len(self._said) >= self.turns
        return Transition(
            f"You said {word!r}. " + ("Good." if good else "No."),
            reward=(1.0 / self.turns) if good else 0.0,
            terminated=done,
            action_valid=word in WORDS,
            won=done and self._good == self.turns,
            score=self._good / self.turns,
            admissible_actions=list(WORDS),
            anchor_obs=f"turn {len(self._said)}: {' '.join(self._said)}",
        )


class SaidHook(TurnRewardHook):
    name = "said"

    def __init__(self, *, words: tuple[str, ...] = tuple(sorted(set(WORDS) - GOOD))):
        self.words = set(words)

    def score(self, trajectories):
        return [[float(turn.agent_text.strip().lower() in self.words) for turn in t.turns] for t in trajectories]
