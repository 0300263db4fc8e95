"""TextWorld on the real engine.

Env card
--------
* **Id**: ``agentgym/TextWorld-v0``
* **Engine**: the PyPI ``textworld`` package (Z-machine games run by its bundled frotz through jericho).
* **Tasks**: embedded suites generated with TextWorld's own generator (see :mod:`.games`): the
  coin-collector and treasure-hunter challenges and custom quests at three difficulties (easy, medium,
  hard); splits ``train`` (50 tasks), ``valid`` (10), ``test`` (10) on disjoint world seeds.
  Users' own games: ``game_files=[...]`` with ``.z8`` files made by ``tw-make`` (the ``.json``
  next to each); they then form the selected split. Each is checked before the engine sees it (the
  Z-machine header's version, length and checksum, the ``.json``'s fields, then one load in a child process
  under a timeout): a bad file raises ``TaskFileError`` naming the file and field instead of killing or
  hanging the process (see :mod:`.gamefile`). ``kinds=["coin_collector", ...]`` keeps only those
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

from collections.abc import Collection
import os
import warnings
from pathlib import Path
from typing import Any

from agentgym.core import TextEnv, Transition
from agentgym.error import DependencyNotInstalled, InvalidArgumentError
from agentgym.tasks import Task, TaskSplit, choose_split

from agentgym.envs.textworld import gamefile, games


def _normalize(command: str) -> str:
    return " ".join(command.lower().split())


class TextWorldEnv(TextEnv):
    """TextWorld games as a text env (see the module's env card).

    Args:
        split: ``train``, ``valid`` or ``test`` (embedded suites only).
        max_turns: turn limit; reaching it truncates the episode.
        game_files: a user's own ``tw-make`` games; they replace the embedded suite.
        kinds: keep only these kinds of the embedded suite (``games.KINDS``); None keeps all.
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
        try:
            import textworld  # noqa: F401  (fail early with a clear message)
        except ImportError as exc:
            raise DependencyNotInstalled("agentgym/TextWorld-v0 needs `pip install textworld==1.7.0`") from exc
        self.engine_version = f"textworld {games.textworld_version()}"
        if game_files is not None:
            if kinds is not None:
                raise InvalidArgumentError("kinds= filters the embedded suites; it cannot be used with game_files=")
            pairs = games.user_tasks(game_files)
            self._paths: dict[str, Path] = {task.task_id: path for task, path in pairs}
            tasks = TaskSplit(split, [task for task, _ in pairs], self.engine_version)
        else:
            first_seed, per_kind = choose_split(games.SPLITS, split)
            self._paths = {}
            suite = games.suite_tasks(first_seed, per_kind)
            if kinds is not None:
                unknown = sorted(set(kinds) - set(games.KINDS))
                if unknown or not kinds:
                    raise InvalidArgumentError(
                        f"unknown TextWorld kinds {unknown or kinds!r}; choose from {sorted(games.KINDS)}")
                suite = [task for task in suite if task.task_id.split("/")[0] in kinds]
            tasks = TaskSplit(split, suite, self.engine_version)
        super().__init__(tasks, max_turns=max_turns, max_action_length=max_action_length, render_mode=render_mode,
                         info_keys=info_keys)
        self._engine: Any = None
        self._engine_path: Path | None = None
        self._raw_score = 0

    def game_file(self, task: Task) -> Path:
        """The game file of a task (generated and cached on first use for the embedded suites)."""
        return self._paths.get(task.task_id) or games.game_path(task)

    # ----------------------------------------------------------------- hooks
    def _start(self, task: Task) -> tuple[Transition, str | None]:
        import textworld

        path = self.game_file(task)
        if self._engine is None or self._engine_path != path:
            self._close_engine()
            if task.task_id in self._paths:  # a user's game: loaded once under a watchdog first
                gamefile.check_loads(path, task.definition["sha256"])
            infos = textworld.EnvInfos(
                admissible_commands=True,
                policy_commands=True,
                intermediate_reward=True,
                objective=True,
                max_score=True,
                score=True,
                won=True,
                lost=True,
                moves=True,
                description=True,
                inventory=True,
                extras=["walkthrough"],
            )
            with warnings.catch_warnings():
                # jericho warns that it cannot track score in TextWorld games; TextWorld tracks it itself.
                warnings.filterwarnings("ignore", message=".*is not fully supported", category=UserWarning)
                self._engine = textworld.start(str(path), request_infos=infos)
            self._engine_path = path
        state = self._engine.reset()
        self._raw_score = state["score"] or 0
        return self._transition(state, reward=0.0, action_valid=True), state["objective"]

    def _clean_action(self, action: str) -> tuple[str | None, str | None]:
        if "\\" in action:
            return None, "backslashes are not allowed in TextWorld commands"
        return action, None

    def _advance(self, action: str) -> Transition:
        admissible = {_normalize(command) for command in (self._last.admissible_actions or [])}
        state, score, _ = self._engine.step(action)
        reward = float((score or 0) - self._raw_score)
        self._raw_score = score or 0
        return self._transition(state, reward=reward, action_valid=_normalize(action) in admissible)

    def _close_engine(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine, self._engine_path = None, None

    # ----------------------------------------------------------------- helpers
    @staticmethod
    def _transition(state: Any, reward: float, action_valid: bool) -> Transition:
        max_score = state["max_score"] or 1
        won, lost = bool(state["won"]), bool(state["lost"])
        plan = state["policy_commands"] or []
        return Transition(
            observation=state.feedback,
            reward=reward,
            terminated=won or lost,
            action_valid=action_valid,
            won=won,
            score=float(state["score"] or 0) / max_score,
            admissible_actions=list(state["admissible_commands"] or []),
            expert_action=plan[0] if plan and not (won or lost) else None,
            anchor_obs=f"{state['description'] or ''}\n\n{state['inventory'] or ''}",
            family_info={
                "score": state["score"],
                "max_score": state["max_score"],
                "intermediate_reward": state["intermediate_reward"],
                "moves": state["moves"],
                "lost": lost,
            },
        )
