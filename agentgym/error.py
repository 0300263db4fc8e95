"""The exceptions agentgym raises.

Every message states what was expected, what was received and how to fix it. Bad *actions* never
raise (the env answers them with an observation and ``action_valid=False``); these exceptions are for
bad *arguments*, bad task files and engine faults.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: object, options: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the option closest to ``word``, or ``""`` when none is close (the hint
    every "unknown name" message of agentgym ends with)."""
    close = difflib.get_close_matches(str(word), list(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


class AgentGymError(Exception):
    """Base class of every agentgym exception."""


class UnknownTaskError(AgentGymError, KeyError):
    """A task id that is not in the selected split."""

    def __init__(self, task_id: object, split: str, known: Iterable[str]):
        known = list(known)
        close = difflib.get_close_matches(str(task_id), known, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        super().__init__(
            f"Unknown task id {task_id!r} in split {split!r} ({len(known)} tasks; see env.unwrapped.task_ids).{hint}"
        )
        self.task_id = task_id

    def __str__(self) -> str:  # KeyError would otherwise wrap the message in quotes
        return str(self.args[0])


class InvalidArgumentError(AgentGymError, ValueError):
    """A constructor or function argument with a value that cannot work."""


class TaskFileError(AgentGymError, ValueError):
    """A malformed task or game file; the message names the file and the record."""


class EngineFault(AgentGymError, RuntimeError):
    """The engine behind an env crashed, hung or died mid-episode.

    The env stays usable: the next ``reset()`` starts a fresh engine.
    """

    def __init__(self, message: str, task_id: str | None = None):
        where = f" (task {task_id!r})" if task_id is not None else ""
        super().__init__(f"{message}{where}. Call env.reset() to start a fresh engine.")
        self.task_id = task_id


class ResetNeeded(AgentGymError, RuntimeError):
    """``step()`` was called before ``reset()`` or after the episode ended."""


class DependencyNotInstalled(AgentGymError, ImportError):
    """An optional engine package is missing."""


class NotCopyableError(AgentGymError, TypeError):
    """``copy.deepcopy`` or ``pickle`` of an env whose engine state cannot be copied (a native game, a JVM, a
    sandbox on disk). Make a new env with ``gym.make`` instead, or snapshot an episode with
    ``env.unwrapped.clone_state()`` where the family offers it."""


class StateCloningUnsupported(AgentGymError, NotImplementedError):
    """``clone_state()``/``restore_state()`` on a family whose engine cannot snapshot an episode cheaply."""


class WorkerStartError(AgentGymError, RuntimeError):
    """Env worker processes could not start (a script that starts them at import time, without
    ``if __name__ == "__main__":``); the message says what to change."""
