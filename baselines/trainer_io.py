"""Checkpoints of the LLM trainer (:mod:`agentgym.baselines.train_pg`) that resume exactly (the run folder
and the metrics log: :mod:`agentgym.baselines.runs`)."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from agentgym.baselines.runs import checkpoint_dir


# --------------------------------------------------------------------------- checkpoints
def rng_state(task_rng: np.random.Generator, agent: Any) -> dict[str, Any]:
    """Every random state a step draws: Python, the task sampler, torch (CPU, CUDA), the agent's sampler
    (``agent.generator``, its generation backend's; None for a backend that keeps no torch generator)."""
    import torch

    state = {
        "python": random.getstate(),
        "numpy": task_rng.bit_generator.state,
        "torch": torch.get_rng_state(),
        "agent": agent.generator.get_state() if agent.generator is not None else None,
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], task_rng: np.random.Generator, agent: Any) -> None:
    import torch

    random.setstate(state["python"])
    task_rng.bit_generator.state = state["numpy"]
    torch.set_rng_state(state["torch"])
    if agent.generator is not None and state["agent"] is not None:  # a backend without one (vLLM) seeds itself
        agent.generator.set_state(state["agent"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    folder: Path,
    args: Any,
    agent: Any,
    optimizer: Any,
    task_rng: np.random.Generator,
    step: int,
    run_name: str,
    estimator_state: Any = None,
    hook_states: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """Write ``folder/checkpoint-NNNNNN`` atomically and return it.

    It holds ``agent.json`` (``kind: llm``, the base model, the agent's settings: an agent for
    ``agentgym eval``), ``adapter/`` (LoRA) or ``model/`` (full weights and tokenizer), and
    ``trainer_state.pt`` (optimizer, RNG states, step, arguments, the estimator's state: VSPO's pass-rate
    buffer) and, when a hook keeps state (``hook.state_dict()``: OPRL's PRM, its optimizer and reference,
    PRS's stage), ``hooks.pt`` with ``{hook name: state}``.
    """
    import torch

    final = checkpoint_dir(folder, step)
    tmp = folder / f".tmp-checkpoint-{step:06d}-{os.getpid()}"
    base = str(Path(args.model).resolve()) if Path(args.model).is_dir() else args.model
    meta = {
        "kind": "llm",
        "name": f"llm:{run_name}@{step}",
        "base_model": base,
        "step": step,
        "adapter": "adapter" if args.lora else None,
        "model": None if args.lora else "model",
        "agent": agent.config(),
    }
    if args.lora:
        agent.model.save_pretrained(tmp / "adapter")
    else:
        agent.model.save_pretrained(tmp / "model")
        agent.tokenizer.save_pretrained(tmp / "model")
    (tmp / "agent.json").write_text(json.dumps(meta, indent=1))
    torch.save(
        {
            "step": step,
            "optimizer": optimizer.state_dict(),
            "rng": rng_state(task_rng, agent),
            "args": dataclasses.asdict(args),
            "run_name": run_name,
            "estimator_state": estimator_state,
        },
        tmp / "trainer_state.pt",
    )
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
