"""Progressive reward shaping (PRS, arXiv 2512.07478; spec ``reward-hooks.md`` §10): staged rewards.

Hook name ``"prs_progressive"`` — not KernelGYM's *profiling-based rejection sampling*, a batch filter
(:func:`agentgym.baselines.estimators.profiling_rejection_filter`).

Three stages, each scored per turn in [0, 1]:

1. ``format``: the output is a parseable, well-formed action or tool call (:func:`well_formed`, or your
   ``format_check``);
2. ``valid``: the env accepted it (``info["action_valid"]``);
3. ``task``: task progress and correctness — the step's change in ``info["score"]``, and on the final turn
   of a task with a ground-truth answer, ``answer_scorer(answer, ground_truth)`` (token F1 by default).

The turn reward is ``sum_k w_k * stage_k``. With ``gated=True`` a stage counts only when the stage before it
passed (an unparseable action earns no validity credit). The curriculum moves the weight from stage to stage:
the *current* stage has weight 1, stages already passed keep ``keep_weight``, later stages 0. It advances

* on a schedule (``schedule="steps"``): stage k starts at training step ``boundaries[k-1]``; call
  :meth:`ProgressiveRewardHook.set_step` each training step; or
* on measured stage success (``schedule="mastery"``): call :meth:`ProgressiveRewardHook.observe` with each
  batch; when the current stage's success rate over the batch's turns reaches ``threshold``, the next
  stage starts.

Only the paper's abstract was available (spec §10, [U]): the stage gating, the combination rule and the
curriculum are configuration here, not a reproduction; the length-aware BLEU is replaced by a pluggable
``answer_scorer``.

Example:
    >>> from agentgym.wrappers.progressive import well_formed
    >>> well_formed("open the chest"), well_formed('{"name": "search"}'), well_formed("<action>")
    (True, True, False)

Change logs:
    v0: initial version.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

from agentgym.error import InvalidArgumentError
from agentgym.trajectory import Trajectory
from agentgym.wrappers.hooks import TurnRewardHook, check_choice, ground_truth, is_final_turn
from agentgym.wrappers.rlvmr import ACTION_RE

STAGES = ("format", "valid", "task")
ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def well_formed(text: str) -> bool:
    """A plain one-line command, exactly one non-empty ``<action>`` block, or a JSON tool call with a name."""
    text = text.strip()
    if not text:
        return False
    if text.startswith("{"):
        try:
            call = json.loads(text)
        except ValueError:
            return False
        return isinstance(call, dict) and isinstance(call.get("name"), str) and bool(call["name"])
    if "<" in text:
        actions = ACTION_RE.findall(text)
        answers = ANSWER_RE.findall(text)
        blocks = [b for b in actions + answers if b.strip()]
        return len(blocks) == 1 and text.count("<action>") + text.count("<answer>") == 1
    return "\n" not in text and len(text) <= 200


def normalize_answer(text: str) -> list[str]:
    """Lowercased, punctuation-stripped, whitespace-split tokens (the QA F1 convention)."""
    return re.sub(r"[^\w\s]", " ", text.lower()).split()


def token_f1(prediction: str, reference: str) -> float:
    """Counter-based token F1 between two answers (SQuAD style)."""
    pred, ref = normalize_answer(prediction), normalize_answer(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = 0
    remaining = list(ref)
    for token in pred:
        if token in remaining:
            remaining.remove(token)
            common += 1
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


class ProgressiveRewardHook(TurnRewardHook):
    """Staged rewards with a curriculum (module docstring). Name: ``"prs_progressive"``.

    Args:
        schedule: ``"steps"`` (by training step) or ``"mastery"`` (by measured stage success).
        boundaries: training steps at which stages 2 and 3 start (``schedule="steps"``).
        threshold: success rate that moves the curriculum on (``schedule="mastery"``).
        keep_weight: weight kept by stages already passed.
        gated: count a stage only when the stage before it passed.
        format_check: ``text -> bool``, default :func:`well_formed`.
        answer_scorer: ``(answer, ground_truth) -> float in [0, 1]``, default :func:`token_f1`.
        stage: the starting stage (0, 1 or 2).
    """

    name = "prs_progressive"

    def __init__(
        self,
        *,
        schedule: Literal["steps", "mastery"] = "mastery",
        boundaries: tuple[int, int] = (100, 200),
        threshold: float = 0.9,
        keep_weight: float = 0.25,
        gated: bool = True,
        format_check: Callable[[str], bool] = well_formed,
        answer_scorer: Callable[[str, str], float] = token_f1,
        stage: int = 0,
    ):
        check_choice("schedule", schedule, ("steps", "mastery"))
        if not (len(boundaries) == 2 and 0 <= boundaries[0] <= boundaries[1]):
            raise InvalidArgumentError(f"boundaries must be two increasing steps, got {boundaries!r}")
        if stage not in (0, 1, 2):
            raise InvalidArgumentError(f"stage must be 0, 1 or 2, got {stage!r}")
        self.schedule, self.boundaries, self.threshold = schedule, tuple(boundaries), threshold
        self.keep_weight, self.gated, self.stage = keep_weight, gated, stage
        self.format_check, self.answer_scorer = format_check, answer_scorer

    # ------------------------------------------------------------ curriculum
    def weights(self) -> tuple[float, float, float]:
        """The current stage weights (format, valid, task)."""
        return tuple(  # type: ignore[return-value]
            1.0 if k == self.stage else self.keep_weight if k < self.stage else 0.0 for k in range(3)
        )

    def set_step(self, step: int) -> None:
        """``schedule="steps"``: set the training step, which picks the stage."""
        self.stage = sum(step >= boundary for boundary in self.boundaries)

    def observe(self, trajectories: Sequence[Trajectory]) -> dict[str, float]:
        """``schedule="mastery"``: measure each stage's success rate over the batch's turns and advance
        the curriculum when the current stage's rate reaches ``threshold``. Returns the rates."""
        rows = [row for rows in self.details(trajectories) for row in rows]
        rates = {s: (sum(row[s] > 0 for row in rows) / len(rows) if rows else 0.0) for s in STAGES}
        if self.schedule == "mastery" and self.stage < 2 and rates[STAGES[self.stage]] >= self.threshold:
            self.stage += 1
        return rates

    # ------------------------------------------------------------ scoring
    def _stages(self, trajectory: Trajectory) -> list[dict[str, Any]]:
        truth = ground_truth(trajectory)
        previous = float(trajectory.initial_info.get("score") or 0.0)
        rows = []
        for index, turn in enumerate(trajectory.turns):
            fmt = float(bool(self.format_check(turn.action)))
            valid = float(bool(turn.info.get("action_valid", False)))
            score = float(turn.info.get("score") or 0.0)
            task = score - previous
            previous = score
            if truth is not None and is_final_turn(trajectory, index):
                match = ANSWER_RE.search(turn.action)
                answer = match.group(1).strip() if match else turn.action
                task += float(self.answer_scorer(answer, truth))
            if self.gated:
                valid *= fmt
                task *= valid
            rows.append({"format": fmt, "valid": valid, "task": task})
        return rows

    def details(self, trajectories: Sequence[Trajectory]) -> list[list[dict[str, Any]]]:
        return [self._stages(trajectory) for trajectory in trajectories]

    def score(self, trajectories: Sequence[Trajectory]) -> list[list[float]]:
        w = self.weights()
        return [
            [w[0] * row["format"] + w[1] * row["valid"] + w[2] * row["task"] for row in rows]
            for rows in self.details(trajectories)
        ]
