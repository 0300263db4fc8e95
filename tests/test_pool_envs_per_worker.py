"""Several envs per worker process (``EnvPool(envs_per_worker=K)``) and the scheduler's one batch per turn.

Real TextWorld tasks throughout: the layout must not change what is played, every waiting episode must join
the agent's batch (wider than the process count), ``batch_wait_s`` must bound the wait for a slow env, and a
dead worker must name itself and its envs.
"""

import functools
import os
import signal
import time

import gymnasium as gym
import pytest

import agentgym  # noqa: F401
from agentgym.agents import RandomAgent
from agentgym.cli import build_parser, main
from agentgym.envs import negotiation
from agentgym.error import EngineFault
from agentgym.evaluation import evaluate
from agentgym.multiagent import multiagent_rollout
from agentgym.rollout import EnvPool, group_specs, rollout
from agentgym.store import ResultStore

FACTORY = functools.partial(gym.make, "agentgym/TextWorld-v0", split="test", max_turns=6)
TASKS = ["coin_collector/3000", "custom_easy/3001", "treasure_hunter/3000"]


class BatchSizes(RandomAgent):
    """A seeded random agent that records the size of every ``act_batch`` (and can kill a worker in one)."""

    def __init__(self, seed: int = 0, kill: int | None = None):
        super().__init__(seed)
        self.sizes: list[int] = []
        self.kill = kill

    def act_batch(self, observations, infos, episode_ids):
        self.sizes.append(len(observations))
        if self.kill is not None:
            os.kill(self.kill, signal.SIGKILL)
            time.sleep(0.5)  # let the process die before the steps are sent
            self.kill = None
        return super().act_batch(observations, infos, episode_ids)


class PidInfo(gym.Wrapper):
    """Adds ``info["pid"]``: the worker process serving the env."""

    def reset(self, **kwargs):
        observation, info = self.env.reset(**kwargs)
        return observation, {**info, "pid": os.getpid()}


def pid_env():
    return PidInfo(FACTORY())


class SlowReset(gym.Wrapper):
    """Resets with seed 3 take 5 s: one slow env among fast ones."""

    def reset(self, **kwargs):
        if kwargs.get("seed") == 3:
            time.sleep(5)
        return self.env.reset(**kwargs)


def slow_env():
    return SlowReset(FACTORY())


def _dicts(trajectories):
    return [t.to_dict() for t in trajectories]


def test_env_index_lives_in_worker_index_div_k_and_ready_drains_every_answer():
    with EnvPool(pid_env, 2, envs_per_worker=4) as pool:
        assert pool.num_envs == 8 and len(set(pool.pids)) == 2
        for index in range(8):
            pool.send_reset(index, index, None)
        arrived: set[int] = set()
        while len(arrived) < 8:
            arrived.update(pool.ready([i for i in range(8) if i not in arrived]))
        answers = [pool.receive(index) for index in range(8)]
        assert [info["pid"] for _, info in answers] == [pool.pids[i // 4] for i in range(8)]
        with pytest.raises(ValueError, match="no command in flight"):
            pool.receive(0)


def test_two_workers_of_four_envs_play_like_one_env():
    """9 episodes over 8 envs (a slot is reused) give the trajectories of one env in one worker."""
    specs = group_specs(TASKS, seeds=[0, 1, 2], group_size=3)
    wide = rollout(FACTORY, RandomAgent(seed=4), specs, num_workers=2, envs_per_worker=4)
    narrow = rollout(FACTORY, RandomAgent(seed=4), specs, num_workers=1)
    assert _dicts(wide) == _dicts(narrow)
    assert [t.episode_id for t in wide] == [s.episode_id for s in specs]
    assert all(t.terminated or t.truncated for t in wide)


def test_every_waiting_episode_joins_one_batch():
    """2 workers x 8 envs, 16 episodes: the first turn decides all 16 at once, far more than 2 processes."""
    specs = group_specs(TASKS[:2], seeds=[0, 1], group_size=8)
    agent = BatchSizes(seed=1)
    counts: list[int] = []
    trajectories = rollout(
        FACTORY, agent, specs, num_workers=2, envs_per_worker=8, on_turn=counts.append, batch_wait_s=60
    )
    assert agent.sizes[0] == 16 and counts == agent.sizes
    assert sum(agent.sizes) == sum(len(t.turns) for t in trajectories)
    # nothing waits beyond what is in flight: each batch holds every episode still running
    running = sorted((len(t.turns) for t in trajectories), reverse=True)
    assert agent.sizes == [sum(1 for n in running if n > turn) for turn in range(running[0])]


def test_batch_wait_bounds_the_wait_for_a_slow_env():
    """One env resets in 5 s: with batch_wait_s=1.5 the first batch goes without it (1.5 s after the last fast
    answer), and it joins later."""
    specs = group_specs(["coin_collector/3000"], seeds=[0], group_size=3)
    specs = [*specs, *group_specs(["custom_easy/3001"], seeds=[3], group_size=1)]  # the slow one, on env 3
    agent = BatchSizes(seed=0)
    started = time.perf_counter()
    trajectories = rollout(slow_env, agent, specs, num_workers=2, envs_per_worker=2, batch_wait_s=1.5)
    assert agent.sizes[0] == 3 and sum(agent.sizes) == sum(len(t.turns) for t in trajectories)
    assert all(t.terminated or t.truncated for t in trajectories) and time.perf_counter() - started < 60


def test_in_process_pool_holds_workers_times_k_envs():
    specs = group_specs(TASKS, seeds=[0, 1, 2], group_size=2)
    with EnvPool(FACTORY, 2, envs_per_worker=3, in_process=True) as pool:
        assert pool.num_envs == 6 and pool.pids == []
        agent = BatchSizes(seed=2)
        wide = rollout(pool, agent, specs, num_workers=5, envs_per_worker=5)  # a reused pool keeps its layout
    assert agent.sizes[0] == 6
    assert _dicts(wide) == _dicts(rollout(FACTORY, RandomAgent(seed=2), specs, in_process=True))


def test_a_killed_worker_raises_engine_fault_naming_it_and_its_envs():
    specs = group_specs(TASKS[:2], seeds=[0, 1], group_size=2)
    with EnvPool(FACTORY, 2, envs_per_worker=2) as pool:
        with pytest.raises(EngineFault, match=r"worker process 1 \(envs 2\.\.3\) died"):
            rollout(pool, BatchSizes(seed=0, kill=pool.pids[1]), specs)
        pool.drain()  # the dead worker's envs are dropped, the live one's answers taken
        with pytest.raises(EngineFault, match="worker process 1"):
            rollout(pool, RandomAgent(seed=0), specs)
    # close() ended the live worker too


def test_multiagent_games_share_the_layout_and_the_batch():
    """Self-play Negotiation over 1 worker of 4 envs: one batch holds the moves of all 4 games (the seats
    share the agent), and the games are those of one env in process."""
    make = functools.partial(negotiation.parallel_env, split="test")
    specs = group_specs(["pool/200000", "pool/200007"], seeds=[0, 1], group_size=3)
    agent = BatchSizes(seed=3)
    wide = multiagent_rollout(make, {"player_0": agent, "player_1": agent}, specs, num_workers=1, envs_per_worker=4)
    plain = RandomAgent(seed=3)
    narrow = multiagent_rollout(make, {"player_0": plain, "player_1": plain}, specs, in_process=True)
    assert agent.sizes[0] == 4
    assert [{seat: t.to_dict() for seat, t in game.items()} for game in wide] == [
        {seat: t.to_dict() for seat, t in game.items()} for game in narrow
    ]


def broken_env():
    raise RuntimeError("no engine here")


def test_a_worker_whose_envs_fail_to_build_names_itself():
    with pytest.raises(EngineFault, match=r"env worker \d \(envs \d\.\.\d\) failed: RuntimeError: no engine here"):
        EnvPool(broken_env, 2, envs_per_worker=2)
    with pytest.raises(ValueError, match="envs_per_worker must be at least 1"):
        EnvPool(FACTORY, 1, envs_per_worker=0)


def test_eval_cli_envs_per_worker_stores_the_episodes_of_one_worker(tmp_path, capsys):
    wide_db, narrow_db = str(tmp_path / "wide.sqlite"), str(tmp_path / "narrow.sqlite")
    argv = ["eval", "--env", "agentgym/TextWorld-v0", "--agent", "random", "--episodes", "6", "--max-turns", "5"]
    assert main([*argv, "--workers", "2", "--envs-per-worker", "3", "--db", wide_db, "--quiet"]) == 0
    assert "6 episodes" in capsys.readouterr().out
    evaluate("agentgym/TextWorld-v0", RandomAgent(seed=0), episodes=6, max_turns=5, db=narrow_db, progress=False)
    with ResultStore(wide_db) as wide, ResultStore(narrow_db) as narrow:
        stored = list(wide.stored("agentgym/TextWorld-v0", "random"))
        assert len(stored) == 6
        assert [s.trajectory.to_dict() for s in stored] == [
            s.trajectory.to_dict() for s in list(narrow.stored("agentgym/TextWorld-v0", "random"))
        ]
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*argv, "--envs-per-worker", "0"])
    assert exit_info.value.code == 2
    assert "argument --envs-per-worker: must be at least 1, got 0" in capsys.readouterr().err
