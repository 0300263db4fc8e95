"""Small pieces the LLM trainers share: envs and hooks, checkpoints that resume exactly, logging, evaluation.

A trainer's ``Args`` provides the attributes these functions read (``env_id``, ``env_kwargs``, ``max_turns``,
``env_reward_weight``, ``info_reward``, ``info_reward_weight``, ``num_workers``, ``in_process``,
``token_budget``, ``eval_split``, ``eval_episodes``, ``model``, ``lora``); see
:class:`agentgym.baselines.train_pg.Args`.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import functools
import importlib
import json
import os
import random
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from agentgym.rollout import EnvPool, group_specs, rollout
from agentgym.trajectory import Trajectory


# --------------------------------------------------------------------------- envs, hooks, rewards
def make_env(env_id: str, **kwargs: Any) -> Any:
    """``gym.make(env_id, ...)``, or the class named by ``module:Class`` (an env that is not registered)."""
    if ":" in env_id and "/" not in env_id:
        module, _, name = env_id.partition(":")
        return getattr(importlib.import_module(module), name)(**kwargs)
    import gymnasium as gym

    import agentgym  # noqa: F401  (registers the ids)

    return gym.make(env_id, **kwargs)


def env_factory(args: Any, split: str) -> Callable[[], Any]:
    """A picklable factory of the training env on ``split`` (for worker processes)."""
    return functools.partial(make_env, args.env_id, split=split, max_turns=args.max_turns, **args.env_kwargs)


def open_pool(args: Any, split: str, agent: Any, episodes: int) -> EnvPool:
    """Worker processes for ``split`` that a trainer keeps for all its updates (engines start once).

    They carry the lazily computed info values the agent reads (``agent.info_keys``) and the field
    ``info_reward`` names; no other lazy value (an expert plan, a valid-action listing) is computed.
    """
    info_keys = set(agent.info_keys)
    if args.info_reward:
        info_keys.add(args.info_reward.split(".")[0])
    return EnvPool(env_factory(args, split), max(1, min(args.num_workers, episodes)), in_process=args.in_process,
                   info_keys=info_keys)


def split_task_ids(args: Any, split: str) -> list[str]:
    env = env_factory(args, split)()
    try:
        return list(env.unwrapped.task_ids)
    finally:
        env.close()


#: Hook names a config may use; any other name is read as ``module:Class``.
HOOKS = {"rlvmr": "agentgym.wrappers:RLVMRHook", "prs_progressive": "agentgym.wrappers:ProgressiveRewardHook"}


def build_hooks(specs: list[dict[str, Any]]) -> list[tuple[Any, float]]:
    """``[(hook, weight)]`` from ``[{name, weight, kwargs}]``."""
    hooks = []
    for spec in specs:
        module, _, name = HOOKS.get(spec["name"], spec["name"]).partition(":")
        hook = getattr(importlib.import_module(module), name)(**spec.get("kwargs", {}))
        hooks.append((hook, float(spec.get("weight", 1.0))))
    return hooks


def info_value(info: dict[str, Any], key: str | None) -> float:
    """The number at a dotted ``key`` of ``info`` (0 when absent or ``key`` is None)."""
    if not key:
        return 0.0
    value: Any = info
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return float(value or 0.0)


def turn_rewards(
    trajectories: list[Trajectory], args: Any, hooks: list[tuple[Any, float]]
) -> list[list[float]]:
    """Per-turn training rewards: weighted env reward, weighted ``info_reward`` and weighted hook rewards.

    Hooks score the finished trajectories offline (:func:`agentgym.wrappers.annotate`) on the agent's raw
    replies (``agent_info["reply"]``: RLVMR reads the tags the extracted command lacks); their rewards are
    also written into each turn's ``turn_rewards``.
    """
    rewards = [
        [
            args.env_reward_weight * turn.reward
            + args.info_reward_weight * info_value(turn.info, args.info_reward)
            for turn in t.turns
        ]
        for t in trajectories
    ]
    if hooks:
        from agentgym.wrappers import annotate

        views = copy.deepcopy(trajectories)
        for view in views:
            for turn in view.turns:
                turn.action = (turn.agent_info or {}).get("reply", turn.action)
        annotate(views, [hook for hook, _ in hooks])
        for row, view, trajectory in zip(rewards, views, trajectories):
            for k, turn in enumerate(view.turns):
                row[k] += sum(weight * turn.turn_rewards[hook.name] for hook, weight in hooks)
                trajectory.turns[k].turn_rewards.update(turn.turn_rewards)
    return rewards


def rollout_metrics(trajectories: list[Trajectory], rewards: list[list[float]]) -> dict[str, float]:
    """``charts/`` metrics of a batch of rollouts (and ``perf/generated_tokens``)."""
    from agentgym.baselines.estimators import zero_variance_fraction

    infos = [turn.agent_info or {} for t in trajectories for turn in t.turns] or [{}]
    returns = [sum(r) for r in rewards]
    return {
        "charts/mean_reward": float(np.mean(returns)),
        "charts/env_return": float(np.mean([t.total_reward for t in trajectories])),
        "charts/success": float(np.mean([t.won for t in trajectories])),
        "charts/turns": float(np.mean([len(t.turns) for t in trajectories])),
        "charts/zero_variance_groups": float(
            zero_variance_fraction(returns, [t.group_id for t in trajectories])
        ),
        "charts/near_miss_rate": float(np.mean([bool(i.get("near_miss")) for i in infos])),
        "charts/format_fallback_rate": float(np.mean([i.get("parse") == "fallback" for i in infos])),
        "charts/response_truncated_rate": float(np.mean([bool(i.get("response_truncated")) for i in infos])),
        "charts/token_budget_exceeded": float(np.mean([t.token_budget_exceeded for t in trajectories])),
        "perf/generated_tokens": float(
            sum(len(turn.response_token_ids or ()) for t in trajectories for turn in t.turns)
        ),
    }


# --------------------------------------------------------------------------- checkpoints
def rng_state(task_rng: np.random.Generator, agent: Any) -> dict[str, Any]:
    """Every random state a step draws: Python, the task sampler, torch (CPU, CUDA), the agent's sampler."""
    import torch

    state = {"python": random.getstate(), "numpy": task_rng.bit_generator.state,
             "torch": torch.get_rng_state(), "agent": agent.generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], task_rng: np.random.Generator, agent: Any) -> None:
    import torch

    random.setstate(state["python"])
    task_rng.bit_generator.state = state["numpy"]
    torch.set_rng_state(state["torch"])
    agent.generator.set_state(state["agent"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(folder: Path, args: Any, agent: Any, optimizer: Any, task_rng: np.random.Generator,
                    step: int, run_name: str) -> Path:
    """Write ``folder/checkpoint-<step>`` atomically and return it.

    It holds ``agent.json`` (``kind: llm``, the base model, the agent's settings: an agent for
    ``agentgym eval``), ``adapter/`` (LoRA) or ``model/`` (full weights and tokenizer), and
    ``trainer_state.pt`` (optimizer, RNG states, step, arguments).
    """
    import torch

    final = folder / f"checkpoint-{step:06d}"
    tmp = folder / f".tmp-checkpoint-{step:06d}-{os.getpid()}"
    base = str(Path(args.model).resolve()) if Path(args.model).is_dir() else args.model
    meta = {"kind": "llm", "name": f"llm:{run_name}@{step}", "base_model": base, "step": step,
            "adapter": "adapter" if args.lora else None, "model": None if args.lora else "model",
            "agent": agent.config()}
    if args.lora:
        agent.model.save_pretrained(tmp / "adapter")
    else:
        agent.model.save_pretrained(tmp / "model")
        agent.tokenizer.save_pretrained(tmp / "model")
    (tmp / "agent.json").write_text(json.dumps(meta, indent=1))
    torch.save({"step": step, "optimizer": optimizer.state_dict(), "rng": rng_state(task_rng, agent),
                "args": dataclasses.asdict(args), "run_name": run_name}, tmp / "trainer_state.pt")
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
    return final


def latest_checkpoint(folder: Path) -> Path | None:
    found = sorted(folder.glob("checkpoint-*"))
    return found[-1] if found else None


# --------------------------------------------------------------------------- logging, evaluation
class Logger:
    """Metrics to TensorBoard (when installed), ``metrics.csv`` (one row per step) and nowhere else."""

    def __init__(self, folder: Path, use_tensorboard: bool, *, upto_step: int | None = None):
        self.writer = None
        if use_tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(folder))
            except ImportError:
                warnings.warn("tensorboard is not installed; metrics go to metrics.csv only", stacklevel=2)
        self.csv_path = folder / "metrics.csv"
        self.rows: list[dict[str, Any]] = []
        if self.csv_path.exists() and upto_step is not None:  # resumed: keep the rows up to the checkpoint
            with open(self.csv_path, newline="") as handle:
                self.rows = [row for row in csv.DictReader(handle) if int(row["step"]) <= upto_step]

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if self.writer is not None:
            for key, value in metrics.items():
                self.writer.add_scalar(key, value, step)
            self.writer.flush()
        self.rows.append({"step": step, **metrics})
        columns = list(dict.fromkeys(key for row in self.rows for key in row))
        tmp = self.csv_path.with_suffix(".tmp")
        with open(tmp, "w", newline="") as handle:  # rewritten whole: later rows may add columns (eval/)
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(tmp, self.csv_path)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def evaluate_greedy(agent: Any, args: Any, pool: EnvPool | None = None) -> dict[str, float]:
    """Greedy success and score on the first ``eval_episodes`` tasks of ``eval_split`` (seed = index), on
    ``pool`` (from :func:`open_pool` on ``eval_split``) or on workers started for this call."""
    task_ids = split_task_ids(args, args.eval_split)
    n = args.eval_episodes
    specs = group_specs([task_ids[i % len(task_ids)] for i in range(n)], range(n), 1)
    greedy, agent.greedy = agent.greedy, True
    try:
        with contextlib.nullcontext(pool) if pool else open_pool(args, args.eval_split, agent, n) as workers:
            trajectories = rollout(workers, agent, specs, env_id=args.env_id, token_budget=args.token_budget)
    finally:
        agent.greedy = greedy
    return {"eval/success": float(np.mean([t.won for t in trajectories])),
            "eval/score": float(np.mean([t.score for t in trajectories])),
            "eval/turns": float(np.mean([len(t.turns) for t in trajectories]))}
