"""PettingZoo's own API tests (``api_test``, ``parallel_api_test``, ``render_test``, ``seed_test``) on both turn
games, failing on every warning but the few known to be harmless for a text env (:data:`HARMLESS`)."""

from __future__ import annotations

import re
import warnings
from functools import partial

import gymnasium as gym
import pytest
from pettingzoo.test import api_test, parallel_api_test, render_test, seed_test

from agentgym.envs import instructor_executor, negotiation

#: The warnings PettingZoo's tests give on any text env, each matched by its message, and why each is harmless.
#: Anything else they warn about (an observation outside its space, infos or rewards of the wrong agents, a
#: non-deterministic seed...) fails the test.
HARMLESS = {
    r"^Observation is not a NumPy array$": "observations are text: a TextObs, a str that carries the text space's dtype",
    r"^(Observation|Action) space for each agent probably should be gymnasium\.spaces\.box or gymnasium\.spaces\.discrete$": "advice for numeric envs; a text env's spaces are TextSpace",
    r'^We recommend agents to be named in the format <descriptor>_<number>, like "player_0"$': "a naming style; InstructorExecutor's seats are named for their roles (instructor, executor) on purpose",
    r"^ignoring unknown reset options \['options'\]; the only option is 'task_id'$": "api_test resets with options={'options': 1} to see that an env takes unknown options; the views say "
    "that they ignore it (the contract's own warning)",
}


def run_clean(check, *args, **kwargs) -> None:
    """Run a PettingZoo check; fail on any warning it gives that is not in :data:`HARMLESS`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check(*args, **kwargs)
    unexpected = [
        f"{w.category.__name__}: {w.message}"
        for w in caught
        if not any(re.search(pattern, str(w.message)) for pattern in HARMLESS)
    ]
    assert not unexpected, f"{check.__name__} warned: {unexpected}"


@pytest.fixture(scope="module")
def one_game():
    """InstructorExecutor's engine options for a one-task split (one TextWorld test game, given as the user's own
    game file), so that the API tests, which reset many times, generate a single game on a cold cache."""
    engine = gym.make("agentgym/TextWorld-v0", split="test").unwrapped
    path = engine.game_file(engine.tasks.get("treasure_hunter/3000"))
    engine.close()
    return {"game_files": [str(path)]}


@pytest.fixture(params=["negotiation", "instructor_executor"])
def family(request, one_game):
    """``(env constructor, parallel_env constructor, cycles)`` of one family, on a small split."""
    if request.param == "negotiation":
        return partial(negotiation.env, split="test"), partial(negotiation.parallel_env, split="test"), 200
    kwargs = {"split": "test", "max_turns": 30, "task_env_kwargs": one_game}
    return partial(instructor_executor.env, **kwargs), partial(instructor_executor.parallel_env, **kwargs), 100


def test_api_test(family):
    make, _, cycles = family
    env = make()
    run_clean(api_test, env, num_cycles=cycles)
    env.close()


def test_parallel_api_test(family):
    _, make_parallel, cycles = family
    env = make_parallel()
    run_clean(parallel_api_test, env, num_cycles=cycles)
    env.close()


def test_render_test_and_seed_test(family, capsys):
    make, _, _ = family
    run_clean(render_test, lambda render_mode=None: make(render_mode=render_mode))
    first_agent = make().possible_agents[0]
    assert f"[{first_agent}]" in capsys.readouterr().out  # human mode prints each step's views
    run_clean(seed_test, make, num_cycles=20)


def test_a_warning_that_is_not_known_to_be_harmless_fails():
    def check():
        warnings.warn("Observation is not a NumPy array", stacklevel=2)  # harmless: passes
        warnings.warn("The observation returned by last() is not in the observation space", stacklevel=2)

    with pytest.raises(AssertionError, match="not in the observation space"):
        run_clean(check)
