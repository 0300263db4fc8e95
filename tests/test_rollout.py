"""Rollouts over worker processes, groups, token budgets and the JSONL trajectory format."""

import functools
import os

import gymnasium as gym
import numpy as np
import pytest

import agentgym  # noqa: F401
from agentgym.agents import Agent, RandomAgent
from agentgym.rollout import EnvPool, EpisodeSpec, group_specs, rollout
from agentgym.trajectory import Decision, Trajectory, Turn, jsonable, load_jsonl, save_jsonl

FACTORY = functools.partial(gym.make, "agentgym/TextWorld-v0", split="test", max_turns=8)


def test_parallel_rollout_equals_serial_rollout():
    specs = group_specs(["coin_collector/3000", "custom_easy/3001"], seeds=[0, 1], group_size=3)
    parallel = rollout(FACTORY, RandomAgent(seed=5), specs, num_workers=2)
    serial = rollout(FACTORY, RandomAgent(seed=5), specs, in_process=True)
    assert [t.to_dict() for t in parallel] == [t.to_dict() for t in serial]
    assert [t.episode_id for t in parallel] == [s.episode_id for s in specs]
    groups = {t.group_id for t in parallel}
    assert groups == {"coin_collector/3000@0", "custom_easy/3001@1"}
    for t in parallel:
        assert t.task_id == t.group_id.split("@")[0] and t.agent == "random"
        assert 1 <= len(t.turns) <= 8 and (t.terminated or t.truncated)
        assert t.turns[-1].info["turn"] == len(t.turns)
    # members of a group differ (per-episode agent randomness), the same spec repeats exactly
    actions = [[turn.action for turn in t.turns] for t in parallel[:3]]
    assert len({tuple(a) for a in actions}) > 1


def test_on_turn_reports_every_batch_of_turns_decided():
    """``on_turn(n)`` follows each ``act_batch``: the counts sum to the turns played, in batches of up to
    the pool's width (a progress bar's turn count)."""
    specs = group_specs(["coin_collector/3000", "custom_easy/3001"], seeds=[0, 1], group_size=3)
    with EnvPool(FACTORY, 3, in_process=True) as pool:
        counts: list[int] = []
        trajectories = rollout(pool, RandomAgent(seed=2), specs, on_turn=counts.append)
    assert sum(counts) == sum(len(t.turns) for t in trajectories) > len(specs)
    assert max(counts) == 3 and all(1 <= n <= 3 for n in counts)


class WorkerPid(Agent):
    """Records which worker process served each episode (``info["pid"]`` of :class:`PidEnv`)."""

    name = "pid"

    def __init__(self, fail_after: int | None = None):
        self.pids, self.calls, self.fail_after = set(), 0, fail_after

    def act(self, observation, info, *, episode_id=""):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("the agent broke mid-rollout")
        self.pids.add(info["pid"])
        return "look"


class PidInfo(gym.Wrapper):
    """Adds ``info["pid"]``: the worker process serving the env."""

    def reset(self, **kwargs):
        observation, info = self.env.reset(**kwargs)
        return observation, {**info, "pid": os.getpid()}

    def step(self, action):
        *result, info = self.env.step(action)
        return (*result, {**info, "pid": os.getpid()})


def pid_env():
    return PidInfo(FACTORY())


def _played(trajectories):
    """The trajectories as dicts, minus which worker served each turn (that may differ between calls)."""
    played = [t.to_dict() for t in trajectories]
    for trajectory in played:
        for info in [trajectory["initial_info"], *(turn["info"] for turn in trajectory["turns"])]:
            info.pop("pid")
    return played


def test_rollout_reuses_an_open_pool_across_calls():
    specs = group_specs(["coin_collector/3000", "custom_easy/3001"], seeds=[0, 1], group_size=2)
    with EnvPool(pid_env, 2) as pool:
        agent = WorkerPid()
        first = rollout(pool, agent, specs)
        workers = set(agent.pids)
        second = rollout(pool, agent, specs)
        assert agent.pids == workers and len(workers) == 2  # the same two processes served both calls
        assert _played(first) == _played(second)
        # an interrupted rollout leaves answers in flight; the next call on the pool drops them
        with pytest.raises(RuntimeError, match="broke mid-rollout"):
            rollout(pool, WorkerPid(fail_after=3), specs)
        third = rollout(pool, agent, specs)
        assert _played(third) == _played(first)
        with pytest.raises(ValueError, match="info_keys"):
            rollout(pool, agent, specs, info_keys=["admissible_actions"])


class TokenAgent(Agent):
    """Emits a fixed decision with 10 prompt and 5 response tokens per turn."""

    name = "tokens"

    def act(self, observation, info, *, episode_id=""):
        return Decision("look", list(range(10)), [1, 2, 3, 4, 5], [-0.5] * 5)


def test_token_budget_truncates_and_is_recorded(tmp_path):
    specs = [EpisodeSpec("e0", "coin_collector/3000", 0)]
    (trajectory,) = rollout(FACTORY, TokenAgent(), specs, in_process=True, token_budget=40)
    assert len(trajectory.turns) == 3 and trajectory.tokens_used == 45
    assert trajectory.token_budget_exceeded and trajectory.truncated and not trajectory.terminated
    assert trajectory.turns[0].response_logprobs == [-0.5] * 5
    path = tmp_path / "t.jsonl"
    save_jsonl([trajectory], path)
    assert load_jsonl(path)[0] == trajectory


def test_jsonl_round_trip_is_identical(tmp_path):
    specs = group_specs(["treasure_hunter/3000"], seeds=[3], group_size=2)
    trajectories = rollout(FACTORY, RandomAgent(seed=1), specs, in_process=True)
    path = tmp_path / "rollouts.jsonl"
    save_jsonl(trajectories, path)
    assert load_jsonl(path) == trajectories
    assert len(path.read_text().splitlines()) == 2


def test_jsonable_converts_numpy_and_sets():
    value = {"a": np.float32(0.5), "b": np.arange(3), "c": {2, 1}, "d": (1, "x"), "e": float("nan")}
    assert jsonable(value) == {"a": 0.5, "b": [0, 1, 2], "c": [1, 2], "d": [1, "x"], "e": "nan"}


def test_malformed_jsonl_names_the_line(tmp_path):
    import pytest

    from agentgym.error import TaskFileError

    path = tmp_path / "bad.jsonl"
    good = Trajectory("e", "env", "t", 0, "a", "obs", {}, [Turn("o", "a", 0.0, True, False, {})])
    save_jsonl([good], path)
    with open(path, "a") as handle:
        handle.write("{not json\n")
    with pytest.raises(TaskFileError, match=r"bad.jsonl: line 2"):
        load_jsonl(path)
