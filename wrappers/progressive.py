"""Progressive reward shaping (PRS, arXiv 2512.07478; spec ``reward-hooks.md`` §10): staged rewards.

Hook name ``"prs_progressive"`` — not KernelGYM's *profiling-based rejection sampling*, a batch filter
(:func:`agentgym.baselines.estimators.profiling_rejection_filter`).

Three stages, each scored per turn in [0, 1]:

1. ``format``: the reply (``Turn.agent_text``) is a parseable, well-formed action or tool call
   (:func:`well_formed`: the gym's parser, :func:`agentgym.actions.parse_reply`, finds exactly one complete
   action — a ReAct reply ``"thought\nAction: x"`` is well formed; or your ``format_check``);
2. ``valid``: the env accepted it (``info["action_valid"]``);
3. ``task``: task progress and correctness — the step's change in ``info["score"]``, and on the final turn
   of a task with a ground-truth answer, ``answer_scorer(answer, ground_truth)`` (token F1 by default).

The turn reward is ``sum_k w_k * stage_k``. With ``gated=True`` a stage counts only when the stage before it
passed (an unparseable action earns no validity credit). The curriculum moves the weight from stage to stage:
the *current* stage has weight 1, stages already passed keep ``keep_weight``, later stages 0. It advances
in :meth:`ProgressiveRewardHook.on_update`, which the trainer calls after each policy update:

* on a schedule (``schedule="steps"``): stage k starts at training step ``boundaries[k-1]``
  (:meth:`~ProgressiveRewardHook.set_step` with the number of updates done); or
* on measured stage success (``schedule="mastery"``): when the current stage's success rate over the
  batch's turns reaches ``threshold`` (:meth:`~ProgressiveRewardHook.observe`), the next stage starts.

Either way ``on_update`` returns ``{"stage": ..., "stage_success": ..., "rate_format": ..., "rate_valid": ...,
"rate_task": ...}``: the stage in effect for the next batch, the batch's success rate of the stage that
scored it (what ``"mastery"`` compares with ``threshold``), and each stage's rate (a turn passes a stage
when that stage's gated score is positive).

Only the paper's abstract was available (spec §10, [U]): the stage gating, the combination rule and the
curriculum are configuration here, not a reproduction; the length-aware BLEU is replaced by a pluggable
``answer_scorer``.

Example:
    >>> from agentgym.wrappers.progressive import well_formed
    >>> well_formed("open the chest"), well_formed('{"name": "search"}'), well_formed("<action>")
    (True, True, False)
    >>> well_formed("The chest is locked.\\nAction: take key")
    True

Change logs:
    v0: initial version.
    v1: :func:`well_formed` is the gym's parser (a two-line ReAct reply is well formed); the curriculum
        advances in ``on_update``; stages read ``Turn.agent_text``.
    v2: ``on_update`` also returns ``stage_success``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

from agentgym.actions import parse_reply
from agentgym.error import InvalidArgumentError
from agentgym.trajectory import Trajectory
from agentgym.wrappers.hooks import TurnRewardHook, check_choice, ground_truth, is_final_turn

STAGES = ("format", "valid", "task")
ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def well_formed(text: str) -> bool:
    """Exactly one complete action: a JSON tool call, one ``<action>``/``<answer>`` block, a ReAct reply
    ending in its one ``Action:`` line, or a plain one-line command (``parse_reply(text).well_formed``)."""
    return parse_reply(text, "auto").well_formed


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

    def on_update(self, step: int, trajectories: Sequence[Trajectory], metrics: dict[str, float]) -> dict[str, float]:
        """After the policy update that made ``step`` updates done (the logged step: 1 after the first):
        measure the batch's stage success and move the curriculum on (``steps``: to the stage of ``step``;
        ``mastery``: by the measured rate)."""
        scored_by = STAGES[self.stage]
        rates = self.observe(trajectories)
        if self.schedule == "steps":
            self.set_step(step)
        return {
            "stage": float(self.stage),
            "stage_success": rates[scored_by],
            **{f"rate_{name}": rate for name, rate in rates.items()},
        }

    def state_dict(self) -> dict[str, Any]:
        return {"stage": self.stage}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stage = int(state["stage"])

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
            text = turn.agent_text
            fmt = float(bool(self.format_check(text)))
            valid = float(bool(turn.info.get("action_valid", False)))
            score = float(turn.info.get("score") or 0.0)
            task = score - previous
            previous = score
            if truth is not None and is_final_turn(trajectory, index):
                match = ANSWER_RE.search(text)
                answer = match.group(1).strip() if match else text
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
