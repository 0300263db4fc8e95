"""The run folder, metrics log, result and progress bar that every trainer shares (PPO-clip and DRRN).

One convention for every trainer of :mod:`agentgym.baselines` (``agentgym train CONFIG.yaml`` runs either):

* **run folder** ``<output_dir>/<run_name>/``; ``run_name`` defaults to ``<env>__<exp_name>__<seed>__<unix
  time>`` (:func:`default_run_name`, ``<env>`` the id without its namespace, e.g. ``TextWorld-v0``);
* ``config.json``: the trainer's arguments (``algo`` included), written when the run starts;
* ``metrics.jsonl``: one JSON object per logged step, ``{"step": N, "<metric>": value, ...}``
  (:class:`MetricsLog`; :func:`read_metrics` reads it back); also TensorBoard events when enabled;
* ``checkpoint-NNNNNN/``: the agent after step ``N`` (six digits), an agent folder for
  ``agentgym eval --agent`` (``agent.json`` says its kind: ``llm`` or ``drrn``).

``step`` is the trainer's own clock: PPO updates for ``pg``, env steps for ``drrn``. Metric names are
``<group>/<quantity>`` and mean the same in both trainers where both have the quantity:

=============================  ===============================================================
``rollout/success_rate``       share of training episodes won (pg: this step's batch; drrn: the
                               last 100 episodes, exploring)
``rollout/episode_return``     mean sum of the env's own rewards per training episode
``rollout/episode_turns``      mean turns per training episode
``rollout/episodes``           training episodes finished so far (cumulative)
``rollout/env_steps``          env steps (turns) played in training so far (cumulative)
``train/loss``                 the optimised loss (pg: PPO-clip + KL; drrn: Huber TD loss)
``train/grad_norm``            gradient norm before clipping
``eval/<split>/success_rate``  greedy success on the evaluation episodes of ``<split>``
``eval/<split>/score``         their mean score; ``eval/<split>/turns`` their mean length
``perf/wall_s``, ``perf/cpu_s``  seconds since the trainer started (this process)
=============================  ===============================================================

Trainer-specific ones: pg's (:data:`PG_METRICS`, every row) ``rollout/task_return`` (the return it trains
on: weighted env reward plus ``info_reward``), ``rollout/zero_variance_groups``, ``rollout/near_miss_rate``,
..., ``rollout/gen_batch_mean`` / ``rollout/gen_batch_max`` (generation batch sizes of the rollout: every
waiting episode joins one batch), ``rollout/token_drift_rate`` / ``_turns`` / ``_episodes`` / ``_skipped``
(re-tokenization drift, :mod:`agentgym.baselines.token_chat`), ``train/pg_loss``, ``train/kl``,
``train/clipfrac``, ``train/approx_kl``, ``train/rollout_logprob_gap`` (when π_old is recomputed: mean
``|trainer - backend|`` log-prob per token, :mod:`agentgym.baselines.ppo`), ``hooks/<name>/...``,
``vspo/...``, ``perf/...``; drrn's ``train/updates`` and ``train/epsilon``.

``train(args)`` of each trainer returns a :class:`TrainResult` (the run folder, the rows it logged, the
last checkpoint) and prints nothing; :class:`RolloutProgress` is the tqdm bar of a rollout (episodes
finished of the total, turns played), off with ``progress: false`` / ``agentgym train --no-progress``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: The metrics every trainer logs in each training row, under the same names (the table above).
COMMON_METRICS = (
    "rollout/success_rate",
    "rollout/episode_return",
    "rollout/episode_turns",
    "rollout/episodes",
    "rollout/env_steps",
    "train/loss",
    "train/grad_norm",
    "perf/wall_s",
    "perf/cpu_s",
)
#: The metrics the pg trainer logs in each training row besides :data:`COMMON_METRICS` (hooks', VSPO's,
#: evaluation's and ``train/rollout_logprob_gap``, logged only when π_old is recomputed, come on top).
PG_METRICS = (
    "rollout/task_return",
    "rollout/zero_variance_groups",
    "rollout/near_miss_rate",
    "rollout/format_fallback_rate",
    "rollout/response_truncated_rate",
    "rollout/token_budget_exceeded",
    "rollout/gen_batch_mean",
    "rollout/gen_batch_max",
    "rollout/token_drift_rate",
    "rollout/token_drift_turns",
    "rollout/token_drift_episodes",
    "rollout/token_drift_skipped",
    "train/pg_loss",
    "train/kl",
    "train/clipfrac",
    "train/approx_kl",
    "perf/rollout_tokens_per_s",
    "perf/train_tokens_per_s",
    "perf/rows",
    "perf/hook_scoring_s",
)
#: A checkpoint folder's name: the step it was saved after, six digits.
CHECKPOINT_FORMAT = "checkpoint-{step:06d}"


def default_run_name(env_id: str, exp_name: str, seed: int) -> str:
    """``<env>__<exp_name>__<seed>__<unix time>``: ``<env>`` is the id after its namespace
    (``agentgym/TextWorld-v0`` -> ``TextWorld-v0``) or the class of a ``module:Class`` id."""
    env = env_id.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    return f"{env}__{exp_name}__{seed}__{int(time.time())}"


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_FORMAT.format(step=step)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The run's checkpoint of the highest step, or None."""
    found = sorted(Path(run_dir).glob("checkpoint-[0-9]*"))
    return found[-1] if found else None


def write_config(run_dir: Path, config: Mapping[str, Any]) -> None:
    """``run_dir/config.json``: the arguments the run was started with (the folder is created)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(dict(config), indent=1, default=str))


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of ``run_dir/metrics.jsonl`` in order (empty when the run logged nothing)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class MetricsLog:
    """Appends ``{"step": N, **metrics}`` rows to ``metrics.jsonl`` and, when enabled (and installed),
    to TensorBoard. A resumed run (``upto_step``) first drops the rows after the step it resumes from."""

    def __init__(self, run_dir: Path, *, tensorboard: bool = False, upto_step: int | None = None):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows = read_metrics(run_dir) if upto_step is not None else []
        self.rows = [row for row in self.rows if row["step"] <= (upto_step or 0)]
        self.path.write_text("".join(json.dumps(row) + "\n" for row in self.rows))
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(run_dir))
            except ImportError:
                warnings.warn("tensorboard is not installed; metrics go to metrics.jsonl only", stacklevel=2)

    def last(self, key: str, default: float = 0.0) -> float:
        """The latest logged value of ``key`` (a cumulative count continues from it after a resume)."""
        return next((row[key] for row in reversed(self.rows) if key in row), default)

    def log(self, step: int, metrics: Mapping[str, float]) -> dict[str, Any]:
        row = {"step": step, **{key: float(value) for key, value in metrics.items()}}
        with open(self.path, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for key, value in metrics.items():
                self.writer.add_scalar(key, value, step)
            self.writer.flush()
        self.rows.append(row)
        return row

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclasses.dataclass
class TrainResult:
    """What a trainer's ``train(args)`` returns.

    ``history`` holds the rows this call logged (each as written to ``metrics.jsonl``, with its ``step``);
    ``checkpoint`` is the last checkpoint folder written (None when none was).
    """

    run_dir: Path
    history: list[dict[str, Any]]
    checkpoint: Path | None = None

    @property
    def metrics(self) -> dict[str, Any]:
        """The last logged row (empty when nothing was logged)."""
        return dict(self.history[-1]) if self.history else {}


def eval_metrics(split: str, trajectories: Sequence[Any]) -> dict[str, float]:
    """``eval/<split>/success_rate``, ``/score`` and ``/turns`` of greedy evaluation episodes."""
    return {
        f"eval/{split}/success_rate": float(np.mean([t.won for t in trajectories])),
        f"eval/{split}/score": float(np.mean([t.score for t in trajectories])),
        f"eval/{split}/turns": float(np.mean([len(t.turns) for t in trajectories])),
    }


class Clock:
    """Wall and CPU seconds since construction: ``perf/wall_s`` and ``perf/cpu_s``."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def metrics(self) -> dict[str, float]:
        return {
            "perf/wall_s": round(time.perf_counter() - self.wall, 2),
            "perf/cpu_s": round(time.process_time() - self.cpu, 2),
        }


# --------------------------------------------------------------------------- progress
class RolloutProgress:
    """A tqdm bar over one rollout: episodes finished of ``total``, and the turns played so far.

    Use: ``with RolloutProgress(total, desc, enabled) as progress: rollout(pool, agent, specs,
    on_episode=progress.episode_done, on_turn=progress.turns_done)`` (the scheduler reports each batch of
    turns the agent decided). Disabled, it draws nothing. ``file`` defaults to stderr (tests pass a buffer).
    """

    def __init__(self, total: int, desc: str, enabled: bool = True, *, file: Any = None):
        self.enabled, self.turns = enabled, 0
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="episode", leave=False, file=file, dynamic_ncols=True)
            self.bar.set_postfix(turns=0)

    def turns_done(self, n: int) -> None:
        """``rollout(on_turn=)``: ``n`` more turns were decided."""
        self.turns += n
        if self.bar is not None:
            self.bar.set_postfix(turns=self.turns)

    def episode_done(self, trajectory: Any = None, seconds: float = 0.0) -> None:
        """``rollout(on_episode=)``: one more episode finished. Drawn at once (tqdm's ``update`` skips
        drawing within ``mininterval`` of the last draw, and the last episode would then never show)."""
        if self.bar is not None:
            self.bar.update(1)
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> RolloutProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def step_bar(total: int, initial: int, desc: str, enabled: bool, unit: str) -> Any:
    """The run's outer tqdm bar (update steps or env steps); a no-op bar when disabled."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True)


def rounded(metrics: Mapping[str, float], keys: Iterable[str]) -> dict[str, str]:
    """Short ``{name: value}`` for a bar's postfix: the last part of each present key, 3 decimals."""
    return {key.rsplit("/", 1)[-1]: f"{metrics[key]:.3f}" for key in keys if key in metrics}
