"""Gymnasium's own tools on every registered id, as a new user would try them (issue 20).

Per id the work is tiny (a reset and a step or two): async vectorization, Gymnasium's ``check_env``, the
passive checker in ``gym.make``, ``copy.deepcopy``/``pickle`` and ``clone_state``/``restore_state``.
"""

import copy
import pickle
import warnings

import gymnasium as gym
import pytest
from gymnasium.wrappers.common import PassiveEnvChecker

import agentgym
from agentgym.error import NotCopyableError, StateCloningUnsupported
from agentgym.testing import CHEAP_ACTION as CHEAP
from agentgym.testing import check_copy_and_clone, check_gymnasium, check_vectorization

IDS = agentgym.registered_ids()


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.mark.parametrize("env_id", IDS)
def test_async_vector_env_works_by_default(env_id):
    check_vectorization(env_id, split="test")


@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_check_env_passes(env_id):
    check_gymnasium(env_id, split="test")


@pytest.mark.parametrize("env_id", IDS)
def test_gym_make_keeps_the_passive_env_checker(env_id):
    assert gym.spec(env_id).disable_env_checker is False
    if env_id == "agentgym/TextWorld-v0":  # one real env shows the wrapper in place
        env = gym.make(env_id, split="test")
        try:
            wrapper, found = env, False
            while isinstance(wrapper, gym.Wrapper):
                found |= isinstance(wrapper, PassiveEnvChecker)
                wrapper = wrapper.env
            assert found
        finally:
            env.close()


def _shared(a, b, path=""):
    """Paths of the dicts and lists that two infos share (the same object in both)."""
    if isinstance(a, (dict, list)) and a is b:
        return [path or "/"]
    if isinstance(a, dict) and isinstance(b, dict):
        return [p for key in a if key in b for p in _shared(a[key], b[key], f"{path}/{key}")]
    return []


@pytest.mark.parametrize("env_id", IDS)
def test_infos_of_successive_calls_share_no_objects(env_id):
    """Gymnasium's passive checker warns when two calls' infos share an object (users keep infos and modify
    them): a refused action answers with the last state again, and it must come in fresh objects."""
    env = gym.make(env_id, split="test", disable_env_checker=True)
    try:
        infos = [dict(env.reset(seed=0)[1])]
        for action in ("\x00" * 3000, "\x00" * 3000, CHEAP):
            infos.append(dict(env.step(action)[4]))
        for before, after in zip(infos, infos[1:]):
            assert _shared(before, after) == []
    finally:
        env.close()


@pytest.mark.parametrize("env_id", IDS)
def test_deepcopy_and_pickle_copy_correctly_or_refuse_clearly(env_id):
    check_copy_and_clone(env_id, split="test")


def test_negotiation_copies_and_snapshots_are_independent():
    env = gym.make("agentgym/Negotiation-v0", split="test")
    _, info = env.reset(seed=3)
    move = info["expert_action"] or info["admissible_actions"][0]
    twin = copy.deepcopy(env)
    assert twin.step(move)[:4] == env.step(move)[:4]
    twin.close()
    assert pickle.loads(pickle.dumps(env)).unwrapped.task.task_id == env.unwrapped.task.task_id
    snapshot = env.unwrapped.clone_state()
    after = [env.step(CHEAP)[0] for _ in range(2)]
    for _ in range(2):  # a snapshot can be restored again and again
        env.unwrapped.restore_state(snapshot)
        assert [env.step(CHEAP)[0] for _ in range(2)] == after
    env.close()


def test_swegym_deepcopy_refuses_instead_of_sharing_the_sandbox():
    env = gym.make("agentgym/SWEGym-v0", split="test")
    env.reset(seed=0)
    with pytest.raises(NotCopyableError, match=r"gym\.make\('agentgym/SWEGym-v0'"):
        copy.deepcopy(env)
    with pytest.raises(NotCopyableError, match="cannot be pickled"):
        pickle.dumps(env)
    with pytest.raises(StateCloningUnsupported, match="Replay the episode"):
        env.unwrapped.clone_state()
    obs = env.step(CHEAP)[0]  # the original is untouched
    assert isinstance(obs, str) and obs
    env.close()


# ----------------------------------------------------------------- the CLI, as a new user types it
@pytest.mark.parametrize(
    "argv",
    [
        ["play", "agentgym/TextWrld-v0"],
        ["eval", "--env", "agentgym/textworld-v0", "--agent", "random", "--episodes", "1"],
    ],
)
def test_cli_unknown_env_id_is_one_line_with_close_matches(argv, capsys, tmp_path):
    from agentgym.cli import main

    if argv[0] == "eval":
        argv = [*argv, "--db", str(tmp_path / "r.sqlite")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown env id" in err and "'agentgym/TextWorld-v0'" in err
    assert not (tmp_path / "r.sqlite").exists()


def test_cli_play_reprompts_on_empty_lines_and_out_of_range_numbers(monkeypatch, capsys):
    from agentgym.cli import main

    lines = iter(["", "   ", "0", "999", "1", "quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    assert main(["play", "agentgym/TextWorld-v0", "--split", "test", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert out.count("Pick an action by its number") == 2
    assert "[turn 1 " in out and "[turn 2 " not in out  # only the pick "1" spent a turn


# ----------------------------------------------------------------- rollout workers from a plain script
_SCRIPT = """
import functools
import gymnasium as gym
import agentgym
from agentgym.agents import RandomAgent
from agentgym.rollout import group_specs, rollout

def play():
    make = functools.partial(gym.make, "agentgym/Negotiation-v0", split="test")
    trajectories = rollout(make, RandomAgent(0), group_specs(["pool/200000"], [0], 2), num_workers=2)
    print("played", len(trajectories))
"""


@pytest.mark.parametrize("guarded", [False, True])
def test_rollout_workers_from_a_script_without_main_guard_say_what_to_do(guarded, tmp_path):
    import os
    import subprocess
    import sys

    script = tmp_path / "train.py"
    script.write_text(_SCRIPT + ('if __name__ == "__main__":\n    play()\n' if guarded else "play()\n"))
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=tmp_path,
    )
    if guarded:
        assert done.returncode == 0 and "played 2" in done.stdout, done.stderr
        return
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("agentgym.error.WorkerStartError") and 'if __name__ == "__main__":' in last
    assert "in_process=True" in last and "died" not in done.stderr


def test_webshop_clone_state_branches_a_shopping_episode():
    env = gym.make("agentgym/WebShop-v0", split="test")
    _, info = env.reset(seed=0)
    _, _, _, _, info = env.step(info["expert_action"])  # search: now on the results page
    snapshot = env.unwrapped.clone_state()
    first = []
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(info["expert_action"])
        first.append((obs, reward, terminated, info["anchor_obs"]))
    for _ in range(2):
        env.unwrapped.restore_state(snapshot)
        info = {"expert_action": snapshot.last.expert_action}
        again = []
        for _ in range(3):
            obs, reward, terminated, truncated, info = env.step(info["expert_action"])
            again.append((obs, reward, terminated, info["anchor_obs"]))
        assert again == first
    assert len({anchor for *_, anchor in first}) == 3  # the expert moved through three states
    env.close()
