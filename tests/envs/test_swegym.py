"""agentgym/SWEGym-v0: users' SWE-bench instances, tools, grading, and the embedded synthesized tasks."""

from __future__ import annotations

import json
import subprocess
import sys

import gymnasium as gym
import pytest

import agentgym  # noqa: F401  (registers the ids)
from agentgym.error import InvalidArgumentError, TaskFileError
from agentgym.sandbox import available

pytestmark = pytest.mark.skipif(not available(), reason="bubblewrap is not installed (bash scripts/system-deps.sh)")

BUGGY = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n"
TESTS = "from calc import add, mul\n\n\ndef test_mul():\n    assert mul(2, 3) == 6\n"
GOLD = (
    "diff --git a/calc/__init__.py b/calc/__init__.py\n--- a/calc/__init__.py\n+++ b/calc/__init__.py\n"
    "@@ -1,5 +1,5 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n \n \n def mul(a, b):\n"
)
TEST_PATCH = (
    "diff --git a/tests/test_calc.py b/tests/test_calc.py\n--- a/tests/test_calc.py\n+++ b/tests/test_calc.py\n"
    "@@ -3,3 +3,7 @@ from calc import add, mul\n \n def test_mul():\n     assert mul(2, 3) == 6\n+\n+\n"
    "+def test_add():\n+    assert add(2, 3) == 5\n"
)


def _git(cwd, *args):
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def user_data(tmp_path):
    """A SWE-bench-style instance on a tiny git repo: a hidden test (test_patch) and the gold fix."""
    clone = tmp_path / "repos" / "acme__calc"
    (clone / "calc").mkdir(parents=True)
    (clone / "tests").mkdir()
    (clone / "calc" / "__init__.py").write_text(BUGGY)
    (clone / "tests" / "test_calc.py").write_text(TESTS)
    _git(clone, "init", "-q")
    _git(clone, "add", "-A")
    _git(clone, "commit", "-qm", "base")
    base = _git(clone, "rev-parse", "HEAD")
    instance = {
        "instance_id": "acme__calc-1",
        "repo": "acme/calc",
        "base_commit": base,
        "patch": GOLD,
        "test_patch": TEST_PATCH,
        "problem_statement": "add(2, 3) returns -1 instead of 5.",
        "hints_text": "",
        "created_at": "2026-01-01",
        "version": "0.1",
        "environment_setup_commit": base,
        "FAIL_TO_PASS": json.dumps(["tests/test_calc.py::test_add"]),
        "PASS_TO_PASS": ["tests/test_calc.py::test_mul"],
    }
    path = tmp_path / "instances.jsonl"
    path.write_text(json.dumps(instance) + "\n")
    return path, tmp_path / "repos", clone


def _make(user_data, **kwargs):
    path, repos, _ = user_data
    return gym.make("agentgym/SWEGym-v0", instances=str(path), repos_dir=str(repos), python=sys.executable, **kwargs)


def test_user_instance_expert_resolves_and_clone_is_untouched(user_data):
    _, _, clone = user_data
    refs_before = _git(clone, "for-each-ref")
    env = _make(user_data)
    obs, info = env.reset(seed=0)
    assert info["task_id"] == "acme__calc-1" and "add(2, 3) returns -1" in obs and "/tmp/repo" in obs
    assert [t["function"]["name"] for t in info["tools"]][-1] == "submit"
    reward, steps = 0.0, 0
    while True:
        obs, reward, terminated, truncated, info = env.step(info["expert_action"])
        steps += 1
        assert info["action_valid"], obs
        if terminated or truncated:
            break
    assert terminated and reward == 1.0 and info["won"] and info["score"] == 1.0 and steps == 2
    sw = info["swegym"]
    assert sw["resolved"] and sw["grade"]["status"] == "FULL" and "+    return a + b" in sw["patch"]
    assert sw["tests"] == {"tests/test_calc.py::test_add": "PASSED", "tests/test_calc.py::test_mul": "PASSED"}
    env.close()
    assert _git(clone, "status", "--porcelain") == "" and _git(clone, "for-each-ref") == refs_before
    assert not (clone / ".git" / "worktrees").exists()


def test_expert_is_computed_only_when_asked_and_tools_is_a_declared_key(user_data):
    env = _make(user_data, info_keys=())
    _, info = env.reset(seed=0)
    assert "expert_action" not in info and "tools" in env.unwrapped.extra_info_keys
    assert not (env.unwrapped._workspace.root / "target").exists()  # the gold patch was never applied
    info["tools"].clear()  # each info owns its copy of the schemas
    env.unwrapped.set_info_keys(["expert_action"])
    _, _, _, _, info = env.step("view calc/__init__.py")
    assert json.loads(info["expert_action"])["name"] == "str_replace"
    assert [t["function"]["name"] for t in info["tools"]][-1] == "submit"
    env.close()


def test_submitting_nothing_or_hacking_the_tests_resolves_nothing(user_data):
    env = _make(user_data)
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step("submit")
    assert terminated and reward == 0.0 and not info["won"]
    assert info["swegym"]["tests"]["tests/test_calc.py::test_add"] == "FAILED"
    assert info["swegym"]["fraction"] == 0.5 and info["score"] == 0.5 and "NOT RESOLVED" in obs
    # a conftest.py that reports every test as passed, and a rewritten test file, are both undone
    env.reset(seed=0)
    hook = (
        "import pytest\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
        "    out = yield\n    rep = out.get_result()\n    rep.outcome = 'passed'\n"
    )
    assert env.step(json.dumps({"name": "create_file", "arguments": {"path": "conftest.py", "content": hook}}))[4][
        "action_valid"
    ]
    env.step('create_file tests/test_calc.py "def test_add():\\n    pass\\n"')
    obs, reward, terminated, _, info = env.step("submit")
    assert terminated and reward == 0.0, obs
    assert "conftest.py" in info["swegym"]["patch"]
    env.close()


def test_tools(user_data):
    env = _make(user_data, command_timeout=2, max_observation_chars=500)
    env.reset(seed=0)

    def step(action):
        obs, _, _, _, info = env.step(action)
        return obs, info

    obs, info = step("view calc/__init__.py 1 2")
    assert "     1\tdef add(a, b):" in obs and "     2\t    return a - b" in obs and "mul" not in obs
    obs, info = step("view /tmp/repo")
    assert "./calc" in obs and "./tests/test_calc.py" in obs
    obs, info = step("search 'return a' calc")
    assert "calc/__init__.py:2:" in obs
    obs, info = step('str_replace calc/__init__.py "return a" "return b"')
    assert not info["action_valid"] and "2 times" in obs
    obs, info = step('str_replace calc/__init__.py "a - b" "a + b"')
    assert info["action_valid"] and "a + b" in obs
    obs, info = step("run_tests")
    assert info["swegym"]["tests"]["tests/test_calc.py::test_mul"] == "PASSED"
    assert "1 passed" in obs and info["swegym"]["f2p_fraction"] == 0.0  # the hidden test is not in the tree
    obs, info = step("undo_edit calc/__init__.py")
    assert info["action_valid"]
    obs, info = step("bash cat calc/__init__.py; id -u")
    assert "a - b" in obs and "[exit code 0]" in obs and "\n0\n" not in obs
    obs, info = step("bash sleep 30")
    assert info["swegym"]["timed_out"] and "timed out" in obs
    obs, info = step("bash seq 1 100000")
    assert info["swegym"]["truncated"] and "characters truncated (observation limit 500)" in obs
    assert len(obs) < 700 and obs.startswith("1\n") and "100000" in obs
    for bad in (
        "view ../../etc/passwd",
        "view /etc/passwd",
        "frobnicate now",
        '{"name": "view"}',
        "create_file x.py not-json",
        "undo_edit calc/__init__.py",
        "view nowhere.py",
    ):
        obs, info = step(bad)
        assert not info["action_valid"] and obs.startswith("Invalid action"), bad
    env.close()


def test_bad_input_is_reported(tmp_path, user_data):
    path, repos, _ = user_data
    broken = tmp_path / "broken.jsonl"
    broken.write_text(path.read_text() + "{not json\n")
    with pytest.raises(TaskFileError, match="line 2"):
        gym.make("agentgym/SWEGym-v0", instances=str(broken), repos_dir=str(repos))
    record = json.loads(path.read_text())
    del record["patch"]
    broken.write_text(json.dumps(record))
    with pytest.raises(TaskFileError, match="patch"):
        gym.make("agentgym/SWEGym-v0", instances=str(broken), repos_dir=str(repos))
    with pytest.raises(InvalidArgumentError, match="acme__calc"):
        gym.make("agentgym/SWEGym-v0", instances=str(path), repos_dir=str(tmp_path / "nowhere"))
    with pytest.raises(InvalidArgumentError, match="repos_dir"):
        gym.make("agentgym/SWEGym-v0", instances=str(path))
    record = json.loads(path.read_text())
    record["base_commit"] = "0" * 40
    broken.write_text(json.dumps(record))
    env = gym.make("agentgym/SWEGym-v0", instances=str(broken), repos_dir=str(repos))
    with pytest.raises(TaskFileError, match="base_commit"):
        env.reset(seed=0)
    env.close()


def test_user_instance_conformance(user_data):
    from agentgym.testing import check_env

    path, repos, _ = user_data
    check_env("agentgym/SWEGym-v0", instances=str(path), repos_dir=str(repos))


def test_a_broken_sandbox_is_an_engine_fault_and_reset_recovers(user_data):
    import shutil

    from agentgym.error import EngineFault

    env = _make(user_data)
    env.reset(seed=0)
    shutil.rmtree(env.unwrapped._workspace.repo)  # the working copy vanishes under the sandbox
    with pytest.raises(EngineFault, match="disappeared"):
        env.step("bash ls")
    obs, info = env.reset(seed=0)
    _, _, _, _, info = env.step("bash ls calc")
    assert info["action_valid"] and info["swegym"]["exit_code"] == 0
    env.close()
