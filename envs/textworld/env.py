"""TextWorld on the real engine.

Env card
--------
* **Id**: ``agentgym/TextWorld-v0``
* **Engine**: the PyPI ``textworld`` package (Z-machine games run by its bundled frotz through jericho),
  reached through :mod:`.engine`.
* **Tasks**: embedded suites generated with TextWorld's own generator (see :mod:`.tasks`): the
  coin-collector and treasure-hunter challenges and custom quests at three difficulties (easy, medium,
  hard); splits ``train`` (50 tasks), ``valid`` (10), ``test`` (10) on disjoint world seeds.
  Users' own games: ``game_files=[...]`` with ``.z8`` files made by ``tw-make`` (the ``.json``
  next to each); they then form the selected split. Each is checked before the engine sees it (the
  Z-machine header's version, length and checksum, the ``.json``'s fields, then one load in a child process
  under a timeout): a bad file raises ``TaskFileError`` naming the file and field instead of killing or
  hanging the process (see :mod:`.tasks`). ``kinds=["coin_collector", ...]`` keeps only those
  kinds of the embedded suites (the manifest hash then names the smaller task set).
* **Observation**: the engine's text (the intro banner at reset). **Action**: one command, plain text.
* **Reward**: the change in the game's score at this step (TextWorld's own reward). ``info["score"]``
  is score / max score; TextWorld's dense shaping signal is ``info["textworld"]["intermediate_reward"]``.
* **Termination**: won or lost. **Truncation**: ``max_turns`` (default 50) reached.
* **info**: the standard keys; ``admissible_actions`` are TextWorld's admissible commands,
  ``expert_action`` the first command of the game's shortest winning plan from the current state
  (the walkthrough's next step while the agent follows it, and a recovery plan when it strays),
  ``action_valid`` whether the command was among the admissible ones, ``ground_truth`` None,
  ``anchor_obs`` a key of the game state: the room's description and the inventory as TextWorld tracks them
  (what ``look`` and ``inventory`` would print, without the status line's score/moves counter), so a state
  revisited at another turn has the same anchor. Under
  ``info["textworld"]``: raw ``score``, ``max_score``, ``intermediate_reward``, ``moves``, ``lost``.
* **Bad actions**: besides the common checks, backslashes are refused (the Z-machine reads them as
  escape sequences), and so are commands longer than the Z-machine's input buffer (198 bytes: jericho's
  ``INPUT_BUFFER_SIZE``, which it would otherwise truncate, possibly mid-character) and non-ASCII
  characters (jericho hands the game UTF-8 bytes, which the Z-machine reads as unrelated ZSCII codes, so
  no non-ASCII word can ever be understood).

Version history: v0, initial release; ``kinds=`` added later in v0 (the default task set is unchanged);
later in v0, commands over 198 bytes or with non-ASCII characters are refused before the engine (they were
truncated or garbled by it, or raised).
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

from agentgym.core import TextEnv, Transition
from agentgym.envs.textworld import tasks as suites
from agentgym.envs.textworld.engine import Game, State, textworld_version
from agentgym.error import InvalidArgumentError
from agentgym.tasks import Task, TaskSplit, choose_split


def _normalize(command: str) -> str:
    return " ".join(command.lower().split())


class TextWorldEnv(TextEnv):
    """TextWorld games as a text env (see the module's env card).

    Args:
        split: ``train``, ``valid`` or ``test`` (embedded suites only).
        max_turns: turn limit; reaching it truncates the episode.
        game_files: a user's own ``tw-make`` games; they replace the embedded suite.
        kinds: keep only these kinds of the embedded suite (``tasks.KINDS``); None keeps all.
        max_action_length: longer actions are answered as invalid.
        render_mode: ``None`` or ``"ansi"``.
    """

    family = "TextWorld"
    #: jericho's INPUT_BUFFER_SIZE (200 - 2): the Z-machine's text buffer less the newline and terminator.
    max_action_bytes = 198
    action_charset = "ascii"

    def __init__(
        self,
        split: str = "train",
        max_turns: int = 50,
        game_files: list[str | os.PathLike] | None = None,
        kinds: list[str] | None = None,
        max_action_length: int = 4096,
        render_mode: str | None = None,
        info_keys: Collection[str] | None = None,
    ):
        self.engine_version = f"textworld {textworld_version()}"  # fails early without textworld
        if game_files is not None:
            if kinds is not None:
                raise InvalidArgumentError("kinds= filters the embedded suites; it cannot be used with game_files=")
            pairs = suites.user_tasks(game_files)
            self._paths: dict[str, Path] = {task.task_id: path for task, path in pairs}
            tasks = TaskSplit(split, [task for task, _ in pairs], self.engine_version)
        else:
            first_seed, per_kind = choose_split(suites.SPLITS, split)
            self._paths = {}
            suite = suites.suite_tasks(first_seed, per_kind)
            if kinds is not None:
                unknown = sorted(set(kinds) - set(suites.KINDS))
                if unknown or not kinds:
                    raise InvalidArgumentError(
                        f"unknown TextWorld kinds {unknown or kinds!r}; choose from {sorted(suites.KINDS)}"
                    )
                suite = [task for task in suite if task.task_id.split("/")[0] in kinds]
            tasks = TaskSplit(split, suite, self.engine_version)
        super().__init__(
            tasks,
            max_turns=max_turns,
            max_action_length=max_action_length,
            render_mode=render_mode,
            info_keys=info_keys,
        )
        self._game: Game | None = None
        self._raw_score = 0

    def game_file(self, task: Task) -> Path:
        """The game file of a task (generated and cached on first use for the embedded suites)."""
        return self._paths.get(task.task_id) or suites.game_path(task)

    # ----------------------------------------------------------------- hooks
    def _start(self, task: Task) -> tuple[Transition, str | None]:
        path = self.game_file(task)
        if self._game is None or self._game.path != path:
            self._close_engine()
            if task.task_id in self._paths:  # a user's game: loaded once under a watchdog first
                suites.check_loads(path, task.definition["sha256"])
            self._game = Game(path)
        state = self._game.reset()
        self._raw_score = state.score or 0
        return self._transition(state, reward=0.0, action_valid=True), state.objective

    def _clean_action(self, action: str) -> tuple[str | None, str | None]:
        if "\\" in action:
            return None, "backslashes are not allowed in TextWorld commands"
        return action, None

    def _advance(self, action: str) -> Transition:
        admissible = {_normalize(command) for command in (self._last.admissible_actions or [])}
        assert self._game is not None
        state, score = self._game.step(action)
        reward = float(score - self._raw_score)
        self._raw_score = score
        return self._transition(state, reward=reward, action_valid=_normalize(action) in admissible)

    def _close_engine(self) -> None:
        if self._game is not None:
            self._game.close()
            self._game = None

    # ----------------------------------------------------------------- helpers
    @staticmethod
    def _transition(state: State, reward: float, action_valid: bool) -> Transition:
        won, lost = state.won, state.lost
        return Transition(
            observation=state.feedback,
            reward=reward,
            terminated=won or lost,
            action_valid=action_valid,
            won=won,
            score=float(state.score or 0) / (state.max_score or 1),
            admissible_actions=state.admissible_commands,
            expert_action=state.plan[0] if state.plan and not (won or lost) else None,
            anchor_obs=f"{state.description}\n\n{state.inventory}",
            family_info={
                "score": state.score,
                "max_score": state.max_score,
                "intermediate_reward": state.intermediate_reward,
                "moves": state.moves,
                "lost": lost,
            },
        )
