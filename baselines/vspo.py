"""VSPO's state across training steps: the per-task pass-rate buffer, task-value sampling, the running RMS.

VSPO (Value-based Sampling Policy Optimization) is the estimator of the PRS paper (arXiv 2512.07478; see
:class:`VSPOState` for what is from its abstract and what is our reading). Its advantages are
:func:`agentgym.baselines.estimators.vspo_advantages`; the registry entry ``ESTIMATORS["vspo"]``
(:mod:`agentgym.baselines.advantages`) creates this state with ``new_state`` and updates its RMS.

Example:
    >>> import numpy as np
    >>> state = VSPOState()
    >>> state.record(["easy"] * 4 + ["hard"] * 4, ["a"] * 4 + ["b"] * 4, [1, 1, 1, 1, 0, 0, 0, 1])
    >>> round(state.pass_rate("easy"), 3), round(state.pass_rate("hard"), 3)
    (0.833, 0.333)
    >>> state.pick(["easy", "hard"], 1, np.random.default_rng(0))
    ['hard']

Change logs:
    v0: initial version (issue 16).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from agentgym.baselines import estimators as est
from agentgym.error import InvalidArgumentError

if TYPE_CHECKING:
    from agentgym.baselines.advantages import EstimatorInputs


class VSPOState:
    """What VSPO keeps across steps: a per-task pass-rate buffer and the running RMS of advantages.

    From the PRS paper's abstract (arXiv 2512.07478; no body or code was reachable): VSPO replaces
    zero-advantage (v1: low-value) samples with prompts chosen by a task-value metric balancing difficulty
    and uncertainty, and applies value-smoothing clipping. Our reading, each part a documented choice:

    * pass rate of a task: Beta(``prior``, ``prior``)-smoothed, ``(passes + prior) / (attempts + 2 prior)``
      (``prior=1``: Beta(1,1); an unseen task counts as 0.5), where a rollout passes when its task return
      exceeds ``success_threshold``; before each record the task's old counts are multiplied by
      ``memory`` so the rate follows the improving policy;
    * task value: :func:`~agentgym.baselines.estimators.vspo_task_value` of the pass rate;
    * :meth:`pick` draws replacements with probability proportional to task value (uniform when every
      value is 0), without replacement while enough tasks have a positive value, from the given rng only;
    * value-smoothing clipping: advantages are clipped to ``clip`` times :attr:`rms`, an exponential moving
      average (decay ``rms_decay``) of the mean squared advantage of the batches' groups with reward spread.

    The trainer's step: ``zero_variance_groups(inputs)``; ``pick(candidates, n, rng)``; roll those tasks
    once (no further re-rolls); ``record`` every group it rolled (replaced ones too: they carry pass-rate
    evidence); then ``compute_advantages("vspo", inputs, ..., state=state)``.
    """

    def __init__(
        self,
        *,
        difficulty_weight: float = 1.0,
        prior: float = 1.0,
        memory: float = 0.9,
        success_threshold: float = 0.0,
        rms_decay: float = 0.9,
    ):
        if prior < 0 or not 0.0 < memory <= 1.0 or not 0.0 <= rms_decay < 1.0:
            raise InvalidArgumentError(
                f"VSPOState needs prior >= 0, 0 < memory <= 1 and 0 <= rms_decay < 1; got prior={prior!r}, "
                f"memory={memory!r}, rms_decay={rms_decay!r}"
            )
        self.difficulty_weight, self.prior = float(difficulty_weight), float(prior)
        self.memory = float(memory)
        self.success_threshold, self.rms_decay = float(success_threshold), float(rms_decay)
        self.passes: dict[str, float] = {}
        self.attempts: dict[str, float] = {}
        self.mean_square: float | None = None
        self.last_zero_variance_fraction = 0.0

    @property
    def rms(self) -> float | None:
        """The running RMS of advantages (None before the first batch with reward spread)."""
        return None if self.mean_square is None else float(np.sqrt(self.mean_square))

    def pass_rate(self, task_id: str) -> float:
        n, s, a = self.attempts.get(task_id, 0.0), self.passes.get(task_id, 0.0), self.prior
        return 0.5 if n + 2 * a == 0 else (s + a) / (n + 2 * a)

    def task_values(self, task_ids: Sequence[str]) -> np.ndarray:
        rates = np.array([self.pass_rate(t) for t in task_ids], dtype=np.float64)
        return np.asarray(est.vspo_task_value(rates, difficulty_weight=self.difficulty_weight)).reshape(-1)

    def record(self, task_ids: Sequence[str], groups: Sequence[Hashable], outcomes: Sequence[float]) -> None:
        """Add one batch's task returns (``inputs.outcomes``) to the per-task pass-rate buffer; ``groups``
        give the batch's zero-variance fraction for :meth:`metrics`."""
        if not len(task_ids) == len(groups) == len(outcomes):
            raise InvalidArgumentError("record needs one task id, group and outcome per trajectory")
        self.last_zero_variance_fraction = est.zero_variance_fraction(outcomes, groups)
        batch: dict[str, list[float]] = {}
        for task, value in zip(task_ids, outcomes):
            batch.setdefault(str(task), []).append(float(value > self.success_threshold))
        for task, passed in batch.items():
            self.passes[task] = self.memory * self.passes.get(task, 0.0) + sum(passed)
            self.attempts[task] = self.memory * self.attempts.get(task, 0.0) + len(passed)

    def zero_variance_groups(self, inputs: EstimatorInputs) -> list[Hashable]:
        """Keys of the groups (of two or more) whose returns (``shaped_returns``, what VSPO normalises) are
        all equal: their GRPO advantages are 0, so VSPO replaces them."""
        returns = inputs.shaped_returns()
        members: dict[Hashable, list[float]] = {}
        for group, value in zip(inputs.groups, returns):
            members.setdefault(group, []).append(float(value))
        return [g for g, values in members.items() if len(values) > 1 and max(values) == min(values)]

    def pick(self, candidates: Sequence[str], n: int, rng: np.random.Generator) -> list[str]:
        """``n`` task ids drawn from ``candidates`` with probability proportional to task value."""
        if n <= 0 or len(candidates) == 0:
            return []
        values = self.task_values(candidates)
        if values.sum() <= 0:
            values = np.ones(len(candidates))
        positive = int(np.count_nonzero(values))
        index = rng.choice(len(candidates), size=n, replace=n > positive, p=values / values.sum())
        return [candidates[int(i)] for i in index]

    def observe_advantages(self, advantages: Sequence[float], groups: Sequence[Hashable]) -> None:
        """Update the running RMS with one batch's per-trajectory advantages (groups with spread only)."""
        by_group: dict[Hashable, list[float]] = {}
        for group, value in zip(groups, advantages):
            by_group.setdefault(group, []).append(float(value))
        spread = [v for values in by_group.values() if len(values) > 1 and np.ptp(values) > 0 for v in values]
        if not spread:
            return
        batch = float(np.mean(np.square(spread)))
        old = self.mean_square
        self.mean_square = batch if old is None else self.rms_decay * old + (1 - self.rms_decay) * batch

    def metrics(self) -> dict[str, float]:
        """For the trainer's log: tasks tracked, running RMS, mean task value of the tracked tasks, and the
        share of zero-variance groups (task returns) in the last recorded batch."""
        tasks = list(self.attempts)
        return {
            "vspo/zero_variance_fraction": float(self.last_zero_variance_fraction),
            "vspo/tasks_tracked": float(len(tasks)),
            "vspo/rms": float(self.rms or 0.0),
            "vspo/mean_task_value": float(self.task_values(tasks).mean()) if tasks else 0.0,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state, for checkpoints (:meth:`from_dict` restores it exactly)."""
        return {
            "config": {
                "difficulty_weight": self.difficulty_weight,
                "prior": self.prior,
                "memory": self.memory,
                "success_threshold": self.success_threshold,
                "rms_decay": self.rms_decay,
            },
            "passes": dict(self.passes),
            "attempts": dict(self.attempts),
            "mean_square": self.mean_square,
            "last_zero_variance_fraction": self.last_zero_variance_fraction,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VSPOState:
        state = cls(**data["config"])
        state.passes = {str(k): float(v) for k, v in data["passes"].items()}
        state.attempts = {str(k): float(v) for k, v in data["attempts"].items()}
        state.mean_square = None if data["mean_square"] is None else float(data["mean_square"])
        state.last_zero_variance_fraction = float(data.get("last_zero_variance_fraction", 0.0))
        return state
