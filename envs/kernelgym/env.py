"""KernelGYM-style kernel writing: make a PyTorch reference module faster, over several turns.

Env card
--------
* **Id**: ``agentgym/KernelGym-v0``
* **Engine**: real PyTorch. Every submission is checked statically (:mod:`.static`), then evaluated
  (:mod:`.engine`) in a fresh sandbox (:mod:`agentgym.sandbox`:
  bubblewrap, no network, read-only system, an unprivileged uid, CPU/memory limits, a wall-clock
  timeout; ``isolation="process"`` where bubblewrap is missing, which keeps the protocol but not the
  uid and filesystem separation). Inside it a trusted **judge** (:mod:`.worker`, :mod:`.judge`) forks a
  reference runner and a submission runner (:mod:`.runner`); the submission never shares a process
  with the reference or the checker. Every call (warm-up, correctness, timed, profiled) gets fresh
  inputs and the same messages in a random order; the judge times each ``forward`` from outside,
  reads the submission's outputs out of its memory while it waits, and compares them with the
  reference's (``allclose``, 1e-4 for fp32, 1e-2 for fp16/bf16): all must pass. Only the judge holds
  the sandbox's stdout, so the result line cannot be forged. Runtimes are medians of ``perf_trials``
  calls against eager PyTorch (and ``torch.compile`` with ``compile_baseline=True``, cached per task),
  minus the measured pipe round trip; on GPU the runner synchronizes the device and flushes the L2
  cache before each call. The profiler measures the share of time in the submission's own kernels.
  A crash, hang or out-of-memory kills only the sandbox: the turn gets the penalty and the text says so.
* **Tasks** (:mod:`.tasks`): 45 built-in KernelBench-format files in ``tasks/level1`` (single
  operators), ``level2`` (fused operator chains), ``level3`` (small blocks: attention, MLP,
  normalisation, convolution), each with a CPU-sized and a GPU-sized shape set (``SHAPES``), the torch
  ops a submission must not call (``META["forbidden"]``) and its allowed backends; splits ``train``
  / ``valid`` / ``test`` by task (27 / 9 / 9). Users' own folder: ``tasks_dir=DIR`` (the same format;
  a malformed file raises :class:`agentgym.error.TaskFileError` naming it).
* **Backends**: ``torch`` (a plain PyTorch rewrite), ``cpp`` (``torch.utils.cpp_extension.load_inline``
  C++, built once per content hash by a trusted build step that runs no submission code, into a cache
  under ``agentgym.cache.cache_root()/kernelgym`` that submissions see read-only; each library's
  SHA-256 is checked before it is loaded, see :mod:`.buildcache`),
  ``cuda`` (``load_inline`` with ``cuda_sources``) and ``triton`` (``@triton.jit``); detected per
  submission and checked against the task's list and ``backends=``. ``device`` (``"auto"``: CUDA when a
  GPU is usable) picks the shape set and the timing method; both are in ``engine_version``.
* **Observation**: at reset, the task (reference source, shapes in use, device, allowed backends,
  forbidden ops, the rules); after each step, the evaluation: compile errors (trimmed), correctness
  per trial with mismatch statistics, runtimes and speedups, profiling coverage, anti-hacking flags
  (:mod:`.feedback`).
* **Action**: Python source defining ``class ModelNew(nn.Module)`` (same constructor and forward
  signature as ``Model``), as plain text or in a fenced code block (the last ``python`` block is used).
  Text with no ``ModelNew`` in it is an invalid action.
* **Reward** (per turn; ``reward=``): ``"speedup"`` (default, DR.Kernel's ``calculate_reward_speedup``):
  ``0.5 * correct + 0.5 * clip(speedup, 0, 3)`` plus ``coverage_weight * time_coverage`` when correct,
  0 on a compile failure, a wrong result or any anti-hacking flag; ``"table"``
  (KernelGYM's ``calculate_reward_like_kernel``): -0.5 not compiled, -0.3 incorrect, -1 hacked/decoy,
  else 1.0 / 0.8 / 0.6 / 0.4 / 0.2 / -0.1 for speedups >= 3 / 2 / 1.5 / 1.2 / 1 / below. Without timing
  (``perf_trials=0``) the speedup term is 0. Both values are in ``info`` whatever is chosen.
  ``info["score"]``: ``0.5 * valid + 0.5 * min(speedup, 3) / 3`` of this turn.
* **Termination**: never (the agent refines). **Truncation**: ``max_turns`` (default 3, DR.Kernel's).
* **info**: the standard keys; ``won`` = this turn's kernel is correct and unflagged; ``goal`` the task
  description; ``admissible_actions`` None; ``expert_action`` the task's hand-written correct
  submission; ``ground_truth`` None. Under ``info["kernelgym"]``: ``task_id``, ``level``, ``device``,
  ``compiled``, ``correct``, ``valid``, ``hacks`` (list), ``decoy``, ``review`` (speedup above
  ``speedup_bound``), ``warnings``, ``backend``, ``error``, ``crashed``, ``trials`` (per-trial mismatch
  statistics), ``runtime_ms``, ``ref_runtime_ms``, ``compile_ref_runtime_ms``, ``speedup``,
  ``speedup_vs_compile``, ``time_coverage``, ``num_coverage``, ``coverage_reward``, ``reward_speedup``,
  ``reward_table``, ``best_speedup``, ``eval_seconds``. ``anchor_obs`` is a key of the env state, not
  the feedback text: ``kernelgym task=<id> outcome=<start|valid|incorrect|not_compiled|crashed|hacked>
  submission=<sha256[:16] of the submitted code>`` (no timings; an invalid action keeps the last one). The per-turn lists that TRLOO
  (``trloo_advantages``) and profiling-based rejection sampling
  (``profiling_rejection_filter(coverage, correct, speedup=...)``) take are built by :func:`prs_inputs`.
* **Conformance exemption**: ``determinism`` (timings differ from run to run, so observations and
  rewards of repeated episodes do). With ``perf_trials=0, profile=False`` episodes are deterministic.

Version history: v0, initial release; protocol v2 (judge/runner split, read-only build cache).
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib.metadata
import os
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from agentgym.core import TextEnv, Transition
from agentgym.envs.kernelgym.engine import EvalResult, Evaluator
from agentgym.envs.kernelgym.feedback import feedback
from agentgym.envs.kernelgym.tasks import BACKENDS, KernelTask, load_tasks
from agentgym.error import InvalidArgumentError
from agentgym.tasks import Task, TaskSplit, choose_split

FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)
REWARD_TABLE = ((3.0, 1.0), (2.0, 0.8), (1.5, 0.6), (1.2, 0.4), (1.0, 0.2))


def extract_code(text: str) -> str:
    """The submission's code: the last fenced ``python`` block holding ``ModelNew``, else the text."""
    blocks = FENCE.findall(text)
    with_model = [b for b in blocks if "ModelNew" in b]
    return (with_model or blocks or [text])[-1].strip() + "\n"


def reward_speedup(result: EvalResult, coverage_weight: float = 0.0, upper: float = 3.0) -> float:
    """DR.Kernel's ``calculate_reward_speedup``: ``0.5*correct + 0.5*clip(speedup, 0, upper)`` (+ coverage)."""
    if not result.valid:
        return 0.0
    speed = min(max(result.speedup or 0.0, 0.0), upper)
    return 0.5 + 0.5 * speed + coverage_weight * (result.time_coverage or 0.0)


def reward_table(result: EvalResult) -> float:
    """KernelGYM's ``calculate_reward_like_kernel``."""
    if result.hacks:
        return -1.0
    if not result.compiled:
        return -0.5
    if not result.correct:
        return -0.3
    if result.speedup is None:
        return 0.0
    for bound, value in REWARD_TABLE:
        if result.speedup >= bound:
            return value
    return -0.1


def prs_inputs(trajectories: Any) -> dict[str, list[list[Any]]]:
    """Per-turn ``coverage``, ``correct`` and ``speedup`` lists of finished KernelGym trajectories, as
    ``agentgym.baselines.estimators.profiling_rejection_filter`` takes them (``coverage`` is the
    time coverage, 0 when not measured)."""
    out: dict[str, list[list[Any]]] = {"coverage": [], "correct": [], "speedup": []}
    for trajectory in trajectories:
        rows = [turn.info.get("kernelgym") or {} for turn in trajectory.turns]
        out["coverage"].append([float(r.get("time_coverage") or 0.0) for r in rows])
        out["correct"].append([bool(r.get("valid")) for r in rows])
        out["speedup"].append([float(r.get("speedup") or 0.0) for r in rows])
    return out


def _detect_device() -> str:
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "cpu"
    if "+cpu" in version or not any(Path("/dev").glob("nvidia[0-9]*")):
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class KernelGymEnv(TextEnv):
    """Kernel writing against PyTorch references (see the module's env card).

    Args:
        split: ``train``, ``valid`` or ``test``.
        max_turns: turns per episode (each is one submission and its evaluation).
        tasks_dir: a folder of the user's KernelBench-format task files (replaces the built-in ones).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        backends: restrict the allowed backends (intersected with each task's); leaving out ``"torch"``
            demands a kernel of the submission's own.
        levels: keep only tasks of these levels.
        correct_trials / perf_trials / warmup: KernelBench's trial counts (``perf_trials=0``: no timing).
        compile_baseline: also time ``torch.compile`` of the reference (cached per task).
        profile: measure the coverage of the submission's own kernels.
        eval_timeout: wall-clock seconds of one evaluation (compile included).
        memory_limit: bytes of address space of the worker (CPU).
        reward: ``"speedup"`` or ``"table"`` (see the card).
        coverage_weight: weight of ``time_coverage`` in the ``"speedup"`` reward (DR.Kernel used 0.5).
        speedup_bound: speedups above it are flagged for review.
        isolation: ``"auto"``, ``"bwrap"`` or ``"process"``.
        max_action_length: longer actions are answered as invalid.
        render_mode: ``None`` or ``"ansi"``.
    """

    family = "KernelGym"
    metadata = {"render_modes": ["ansi"], "conformance_exempt": ("determinism",)}
    multiline_actions = True

    def __init__(
        self,
        split: str = "train",
        max_turns: int = 3,
        tasks_dir: str | os.PathLike | None = None,
        device: str = "auto",
        backends: list[str] | tuple[str, ...] | None = None,
        levels: list[int] | tuple[int, ...] | None = None,
        correct_trials: int = 5,
        perf_trials: int = 50,
        warmup: int = 3,
        compile_baseline: bool = False,
        profile: bool = True,
        eval_timeout: float = 300.0,
        memory_limit: int = 4 << 30,
        reward: str = "speedup",
        coverage_weight: float = 0.0,
        speedup_bound: float = 10.0,
        isolation: str = "auto",
        max_action_length: int = 100_000,
        render_mode: str | None = None,
        info_keys: Collection[str] | None = None,
    ):
        if reward not in ("speedup", "table"):
            raise InvalidArgumentError(f"reward must be 'speedup' or 'table', got {reward!r}")
        if backends is not None and (not backends or any(b not in BACKENDS for b in backends)):
            raise InvalidArgumentError(f"backends must be a non-empty subset of {list(BACKENDS)}, got {backends!r}")
        if device == "auto":
            device = _detect_device()
        self.device = device
        self.evaluator = Evaluator(
            device=device,
            correct_trials=correct_trials,
            perf_trials=perf_trials,
            warmup=warmup,
            compile_baseline=compile_baseline,
            profile=profile,
            timeout=eval_timeout,
            memory_bytes=memory_limit,
            speedup_bound=speedup_bound,
            isolation=isolation,
        )
        all_tasks = load_tasks(tasks_dir)
        if levels is not None:
            all_tasks = [t for t in all_tasks if t.level in set(levels)]
        by_split: dict[str, list[KernelTask]] = {"train": [], "valid": [], "test": []}
        for task in all_tasks:
            by_split[task.split].append(task)
        chosen = choose_split({k: v for k, v in by_split.items() if v or tasks_dir is None}, split)
        if not chosen:
            raise InvalidArgumentError(f"split {split!r} has no tasks (levels={levels!r})")
        self.reward_mode, self.coverage_weight = reward, float(coverage_weight)
        self.backends = tuple(backends) if backends is not None else None
        self._tasks = {t.task_id: t for t in chosen}
        try:
            torch_version = importlib.metadata.version("torch")
        except importlib.metadata.PackageNotFoundError:
            torch_version = "missing"
        allowed = ",".join(self.backends or BACKENDS)
        self.engine_version = (
            f"kernelgym-v0 torch {torch_version} {self.evaluator.protocol} backends={allowed} "
            f"reward={reward} coverage_weight={self.coverage_weight:g}"
        )
        split_tasks = TaskSplit(split, [Task(t.task_id, t.definition()) for t in chosen], self.engine_version)
        super().__init__(
            split_tasks,
            max_turns=max_turns,
            max_action_length=max_action_length,
            render_mode=render_mode,
            info_keys=info_keys,
        )
        self._task_def: KernelTask | None = None
        self._best: float | None = None

    # ----------------------------------------------------------------- episode
    def allowed_backends(self, task: KernelTask) -> tuple[str, ...]:
        return tuple(b for b in task.backends if self.backends is None or b in self.backends)

    def _start(self, task: Task) -> tuple[Transition, str | None]:
        self._task_def = self._tasks[task.task_id]
        self._best = None
        return self._transition(
            self._prompt(self._task_def), {}, anchor=self._anchor("start", None)
        ), self._task_def.description

    def _anchor(self, outcome: str, code: str | None) -> str:
        """The state key GiGPO groups by: the task, the last evaluation's outcome class and the hash of
        the last submission (no timings, so the same submission on the same task gives the same key)."""
        assert self._task_def is not None
        digest = hashlib.sha256(code.encode("utf-8", "surrogateescape")).hexdigest()[:16] if code else "-"
        return f"kernelgym task={self._task_def.task_id} outcome={outcome} submission={digest}"

    def _prompt(self, task: KernelTask) -> str:
        shapes = task.shapes(self.device)
        shape_text = ", ".join(f"{k}={v}" for k, v in shapes.items()) or "as in the file"
        allowed = self.allowed_backends(task)
        hints = {
            "torch": "a plain PyTorch rewrite",
            "cpp": "C++ via torch.utils.cpp_extension.load_inline",
            "cuda": "CUDA via load_inline(cuda_sources=...)",
            "triton": "Triton (@triton.jit)",
        }
        usable = [b for b in allowed if self.device == "cuda" or b in ("torch", "cpp")] or list(allowed)
        forbidden = ", ".join(task.forbidden) or "none"
        return (
            f"You are given a PyTorch reference architecture (task {task.task_id}, level {task.level}: "
            f"{task.description}).\n\n```python\n{task.source.rstrip()}\n```\n\n"
            f"Write a faster implementation: a Python module that defines class ModelNew(nn.Module) with the same "
            f"constructor arguments (get_init_inputs()) and forward inputs (get_inputs()) as Model, returning the "
            f"same outputs. It is evaluated on {self.device} with shapes {shape_text}: correctness on fresh random "
            f"inputs (atol=rtol={task.atol:g}), then speed against eager PyTorch.\n"
            f"Backends allowed here: {', '.join(hints[b] for b in usable)}. Do not call these torch ops (they are "
            f"what you replace): {forbidden}. Do not call the reference Model, catch exceptions to fall back, "
            "use threads or side streams, patch timers, mutate the inputs or reuse outputs across calls: "
            "such submissions are rejected.\nReply with the complete code of the module (a ```python block). "
            f"You have {self.max_turns} turn(s); each gets the evaluation back."
        )

    def _transition(
        self,
        text: str,
        family: dict[str, Any],
        *,
        valid: bool = True,
        reward: float = 0.0,
        won: bool = False,
        score: float = 0.0,
        anchor: str | None = None,
    ) -> Transition:
        assert self._task_def is not None
        info = {"task_id": self._task_def.task_id, "level": self._task_def.level, "device": self.device, **family}
        return Transition(
            text,
            reward=reward,
            terminated=False,
            action_valid=valid,
            won=won,
            score=score,
            expert_action=self._task_def.expert,
            family_info=info,
            anchor_obs=anchor,
        )

    def _clean_action(self, action: str) -> tuple[str | None, str | None]:
        if "ModelNew" not in action:
            return None, (
                "the submission must be Python code that defines class ModelNew(nn.Module) (the whole "
                "module, in a ```python block or as plain text)"
            )
        return action, None

    def _advance(self, action: str) -> Transition:
        assert self._task_def is not None
        code = extract_code(action)
        task = dataclasses.replace(self._task_def, backends=self.allowed_backends(self._task_def))
        try:
            ast.parse(code)
        except SyntaxError as exc:
            result = EvalResult(
                compiled=False,
                correct=False,
                hacks=[],
                warnings=[],
                backend="unknown",
                error=f"SyntaxError: {exc.msg} (line {exc.lineno})\n{(exc.text or '').rstrip()}",
                stage="compile",
            )
        else:
            seed = int(self.np_random.integers(0, 2**31 - 1))
            result = self.evaluator.evaluate(task, code, seed=seed)
        return self._judge(result, code)

    def _judge(self, result: EvalResult, code: str | None = None) -> Transition:
        r_speed = reward_speedup(result, self.coverage_weight)
        r_table = reward_table(result)
        if result.valid and result.speedup is not None:
            self._best = max(self._best or 0.0, result.speedup)
        score = 0.0 if not result.valid else 0.5 + 0.5 * min(result.speedup or 0.0, 3.0) / 3.0
        family = {
            "compiled": result.compiled,
            "correct": result.correct,
            "valid": result.valid,
            "hacks": list(result.hacks),
            "decoy": "decoy_kernel" in result.hacks or "no_custom_kernel" in result.hacks,
            "review": result.review,
            "warnings": list(result.warnings),
            "backend": result.backend,
            "error": result.error,
            "crashed": result.crashed,
            "stage": result.stage,
            "trials": result.trials,
            "runtime_ms": result.runtime_ms,
            "ref_runtime_ms": result.ref_runtime_ms,
            "compile_ref_runtime_ms": result.compile_ref_runtime_ms,
            "speedup": result.speedup,
            "speedup_vs_compile": result.speedup_vs_compile,
            "time_coverage": result.time_coverage,
            "num_coverage": result.num_coverage,
            "coverage_reward": (result.time_coverage or 0.0) if result.valid else 0.0,
            "reward_speedup": r_speed,
            "reward_table": r_table,
            "best_speedup": self._best,
            "eval_seconds": result.duration,
            "details": result.details,
        }
        reward = r_speed if self.reward_mode == "speedup" else r_table
        outcome = (
            "hacked"
            if result.hacks
            else "crashed"
            if result.crashed
            else "not_compiled"
            if not result.compiled
            else "incorrect"
            if not result.correct
            else "valid"
        )
        return self._transition(
            feedback(result, reward, self.device),
            family,
            reward=reward,
            won=result.valid,
            score=float(score),
            anchor=self._anchor(outcome, code),
        )
