"""agentgym.testing's checks themselves: a broken env fails them, under ``python -O`` too."""

import subprocess
import sys

import pytest

from agentgym.core import TextEnv, Transition
from agentgym.error import AgentGymError
from agentgym.tasks import Task, TaskSplit
from agentgym.testing import ConformanceError, check_env

#: A family that draws from the global random module instead of its seeded generator: one seed gives two
#: different episodes. Run as a script, so it can run under ``python -O``.
UNSEEDED = """
import random

from agentgym.core import TextEnv, Transition
from agentgym.tasks import Task, TaskSplit


class UnseededEnv(TextEnv):
    family = "Unseeded"

    def __init__(self):
        super().__init__(TaskSplit("test", [Task("t/0", {})], "unseeded 1"), max_turns=5)
        self.engine_version = "unseeded 1"

    def _start(self, task):
        return Transition(f"room {random.random()}", admissible_actions=["look"]), "look around"

    def _advance(self, action):
        return Transition(f"you see {random.random()}", admissible_actions=["look"])
"""

RUN_CHECK = (
    UNSEEDED
    + """
from agentgym.testing import ConformanceError, check_env

try:
    check_env(UnseededEnv)
except ConformanceError as exc:
    print(f"failed: {exc}")
else:
    print("passed")
"""
)


def unseeded_env_class():
    namespace: dict = {}
    exec(compile(UNSEEDED, "unseeded", "exec"), namespace)
    return namespace["UnseededEnv"]


def test_check_env_fails_an_env_that_ignores_its_seed():
    with pytest.raises(ConformanceError, match="the same seed must give the same episode") as caught:
        check_env(unseeded_env_class())
    assert isinstance(caught.value, AgentGymError) and isinstance(caught.value, AssertionError)


@pytest.mark.parametrize("flags", [[], ["-O"], ["-OO"]])
def test_check_env_fails_it_under_python_optimize(flags):
    """``python -O`` strips ``assert`` statements; the checks are explicit, so they still fail the env."""
    result = subprocess.run([sys.executable, *flags, "-c", RUN_CHECK], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("failed: the same seed must give the same episode"), result.stdout


class ScoreOutOfRange(TextEnv):
    """Reports a score of 3 (a count, not a fraction in [0, 1])."""

    family = "ScoreOutOfRange"

    def __init__(self):
        super().__init__(TaskSplit("test", [Task("t/0", {})], "score 1"), max_turns=5)
        self.engine_version = "score 1"

    def _start(self, task):
        return Transition("start", admissible_actions=["up"]), "count"

    def _advance(self, action):
        return Transition("counted", score=3.0, admissible_actions=["up"])


def test_check_env_names_the_bad_info_value():
    with pytest.raises(ConformanceError, match=r"step: info\['score'\] must be a float in \[0, 1\], got 3.0"):
        check_env(ScoreOutOfRange)
