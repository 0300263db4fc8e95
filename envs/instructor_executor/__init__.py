"""Instructor–executor (cooperative, two seats over a single-agent engine): the single-agent view
``agentgym/InstructorExecutor-v0`` and the PettingZoo ``env()`` (AEC) / ``parallel_env()`` constructors; the env
card is in :mod:`agentgym.envs.instructor_executor.env`."""

from agentgym.extras import needs

with needs("multiagent"):  # one line naming the extra when it is missing
    from agentgym.envs.instructor_executor.engine import FollowerExecutor, InstructorExecutorGame
    from agentgym.envs.instructor_executor.env import InstructorExecutorEnv, env, parallel_env

__all__ = ["FollowerExecutor", "InstructorExecutorEnv", "InstructorExecutorGame", "env", "parallel_env"]
