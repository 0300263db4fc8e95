"""The adapter to the ``textworld`` package: starting a game with the infos the env reads, resetting, stepping.

Every call into TextWorld goes through here (the env sees plain :class:`State` records), so an engine
upgrade touches one module. TextWorld runs a ``.z8`` game in its bundled frotz through jericho and tracks
score, the win and the admissible commands itself; :data:`REQUESTED_INFOS` names what it is asked to track.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

from agentgym.error import DependencyNotInstalled

#: The ``textworld.EnvInfos`` fields the env reads (``policy_commands`` gives the expert's plan from the
#: current state; ``description``/``inventory`` the state key, ``anchor_obs``).
REQUESTED_INFOS: tuple[str, ...] = (
    "admissible_commands",
    "policy_commands",
    "intermediate_reward",
    "objective",
    "max_score",
    "score",
    "won",
    "lost",
    "moves",
    "description",
    "inventory",
)


def textworld_version() -> str:
    """The installed TextWorld's version (raises :class:`DependencyNotInstalled` without it)."""
    try:
        from importlib.metadata import version

        import textworld  # noqa: F401  (a broken install fails here, not at the first game)

        return version("textworld")
    except ImportError as exc:
        raise DependencyNotInstalled("agentgym/TextWorld-v0 needs `pip install textworld==1.7.0`") from exc


@dataclasses.dataclass(frozen=True)
class State:
    """What the env reads of one TextWorld game state (engine values, ``None`` where TextWorld gave none)."""

    feedback: str
    score: int | None
    max_score: int | None
    won: bool
    lost: bool
    admissible_commands: list[str]
    #: The shortest winning plan from this state (TextWorld's ``policy_commands``).
    plan: list[str]
    objective: str | None
    description: str
    inventory: str
    intermediate_reward: Any
    moves: int | None

    @classmethod
    def of(cls, state: Any) -> State:
        """From a ``textworld.GameState``."""
        return cls(
            feedback=state.feedback,
            score=state["score"],
            max_score=state["max_score"],
            won=bool(state["won"]),
            lost=bool(state["lost"]),
            admissible_commands=list(state["admissible_commands"] or []),
            plan=list(state["policy_commands"] or []),
            objective=state["objective"],
            description=state["description"] or "",
            inventory=state["inventory"] or "",
            intermediate_reward=state["intermediate_reward"],
            moves=state["moves"],
        )


class Game:
    """One game file loaded in TextWorld, with the infos of :data:`REQUESTED_INFOS` tracked.

    Args:
        path: a ``.z8`` game with TextWorld's ``.json`` beside it.
    """

    def __init__(self, path: Path):
        import textworld

        self.path = path
        infos = textworld.EnvInfos(**{name: True for name in REQUESTED_INFOS}, extras=["walkthrough"])
        with warnings.catch_warnings():
            # jericho warns that it cannot track score in TextWorld games; TextWorld tracks it itself.
            warnings.filterwarnings("ignore", message=".*is not fully supported", category=UserWarning)
            self._env = textworld.start(str(path), request_infos=infos)

    def reset(self) -> State:
        """The game from its start (the intro banner as feedback)."""
        return State.of(self._env.reset())

    def step(self, command: str) -> tuple[State, int]:
        """Send one command; the state after it and the score the step reports."""
        state, score, _ = self._env.step(command)
        return State.of(state), score or 0

    def close(self) -> None:
        self._env.close()
