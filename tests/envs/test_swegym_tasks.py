"""The embedded SWEGym task set (built by `python -m agentgym.envs.swegym.tasks`): schema, splits,
conformance, and the expert / empty-submit checks on the test split."""

from __future__ import annotations

import functools
import json

import gymnasium as gym
import pytest

import agentgym  # noqa: F401
from agentgym.agents import Agent, ExpertAgent
from agentgym.envs.swegym import engine, tasks
from agentgym.rollout import EpisodeSpec, rollout
from agentgym.sandbox import available
from agentgym.testing import check_env

BUILT = (tasks.dataset_dir() / "instances.jsonl").exists()
pytestmark = [
    pytest.mark.skipif(not available(), reason="bubblewrap is not installed (bash scripts/system-deps.sh)"),
    pytest.mark.skipif(not BUILT, reason="SWEGym tasks not built: python -m agentgym.envs.swegym.tasks"),
]


@functools.cache
def _instances() -> list[dict]:
    return engine.load_instances(tasks.dataset_dir() / "instances.jsonl")


def test_task_set_schema_and_splits():
    instances = _instances()
    assert len(instances) >= 200
    splits: dict[str, set[tuple[str, str]]] = {"train": set(), "valid": set(), "test": set()}
    for inst in instances:
        for key in (*engine.REQUIRED, "hints_text", "created_at", "version", "environment_setup_commit"):
            assert key in inst
        assert inst["FAIL_TO_PASS"] and inst["PASS_TO_PASS"]
        assert not set(inst["FAIL_TO_PASS"]) & set(inst["PASS_TO_PASS"])
        assert inst["base_commit"] != inst["environment_setup_commit"] and len(inst["base_commit"]) == 40
        assert engine.patch_files(inst["patch"]) == [inst["module"]]
        statement = inst["problem_statement"]
        assert inst["FAIL_TO_PASS"][0] in statement and "diff --git" not in statement and "@@" not in statement
        splits[inst["split"]].add((inst["repo"], inst["module"]))
    assert all(len(s) >= 3 for s in splits.values())
    assert not splits["train"] & splits["test"] and not splits["train"] & splits["valid"]
    assert not splits["valid"] & splits["test"]
    assert len({inst["repo"] for inst in instances}) >= 3
    sizes = {name: sum(1 for i in instances if i["split"] == name) for name in splits}
    assert sizes["train"] > sizes["test"] >= 20, sizes


def test_candidates_are_deterministic_from_the_seed():
    project = tasks.PROJECTS[0]
    tree = tasks.fetch(project)  # cached by the build
    first = tasks.candidates(project, tree, seed=0, per_module=2)
    assert first == tasks.candidates(project, tree, seed=0, per_module=2)
    assert first != tasks.candidates(project, tree, seed=1, per_module=2)


def test_conformance_on_the_test_split():
    check_env("agentgym/SWEGym-v0", split="test")


def test_expert_resolves_and_empty_submit_does_not():
    env = gym.make("agentgym/SWEGym-v0", split="test")
    by_repo: dict[str, str] = {}
    for task_id in env.unwrapped.task_ids:
        by_repo.setdefault(task_id.split(".")[0], task_id)
    task_id = sorted(by_repo.values())[0]
    obs, info = env.reset(options={"task_id": task_id})
    assert info["goal"] in obs
    first = json.loads(info["expert_action"])
    assert first["name"] == "str_replace"
    for _ in range(5):
        obs, reward, terminated, truncated, info = env.step(info["expert_action"])
        if terminated:
            break
    assert terminated and reward == 1.0 and info["swegym"]["grade"]["status"] == "FULL"
    env.reset(options={"task_id": task_id})
    _, reward, terminated, _, info = env.step("submit")
    assert terminated and reward == 0.0 and info["swegym"]["f2p_fraction"] == 0.0
    env.close()


class _SubmitAgent(Agent):
    name = "submit"

    def act(self, observation, info, *, episode_id=""):
        return "submit"


@pytest.mark.slow
def test_expert_resolves_every_test_task_and_empty_submit_none():
    make = functools.partial(gym.make, "agentgym/SWEGym-v0", split="test")
    probe = make()
    task_ids = probe.unwrapped.task_ids
    probe.close()
    specs = [EpisodeSpec(f"e{i}", task_id, 0) for i, task_id in enumerate(task_ids)]
    expert = rollout(make, ExpertAgent(), specs, num_workers=2)
    assert [t.task_id for t in expert if not t.won] == []
    empty = rollout(make, _SubmitAgent(), specs, num_workers=2)
    assert [t.task_id for t in empty if t.won] == []
