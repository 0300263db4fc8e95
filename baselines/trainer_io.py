"""Checkpoints that resume exactly and the metrics logger of the LLM trainer
(:mod:`agentgym.baselines.train_pg`)."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import random
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np


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
                    step: int, run_name: str, estimator_state: Any = None,
                    hook_states: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write ``folder/checkpoint-<step>`` atomically and return it.

    It holds ``agent.json`` (``kind: llm``, the base model, the agent's settings: an agent for
    ``agentgym eval``), ``adapter/`` (LoRA) or ``model/`` (full weights and tokenizer), and
    ``trainer_state.pt`` (optimizer, RNG states, step, arguments, the estimator's state: VSPO's pass-rate
    buffer) and, when a hook keeps state (``hook.state_dict()``: OPRL's PRM, its optimizer and reference,
    PRS's stage), ``hooks.pt`` with ``{hook name: state}``.
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
                "args": dataclasses.asdict(args), "run_name": run_name, "estimator_state": estimator_state},
               tmp / "trainer_state.pt")
    kept = {name: state for name, state in (hook_states or {}).items() if state}
    if kept:
        torch.save(kept, tmp / "hooks.pt")
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
    return final


def load_hook_states(checkpoint: Path, hooks: list[Any]) -> None:
    """Give each hook (a :class:`~agentgym.baselines.trainer_common.HookSpec`'s ``hook``) the state the
    checkpoint holds for it (``hooks.pt``; a hook absent there starts as built)."""
    import torch

    path = checkpoint / "hooks.pt"
    states = torch.load(path, weights_only=False) if path.exists() else {}
    for hook in hooks:
        if hook.name in states:
            hook.load_state_dict(states[hook.name])


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
