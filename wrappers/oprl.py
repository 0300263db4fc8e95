"""OPRL / iStar implicit step rewards (spec ``reward-hooks.md`` §9): a PRM trained online with trajectory DPO.

The process reward model (PRM) ``pi_phi`` is a causal LM initialised from the policy. The reference is the
rolling snapshot of the previous policy ``pi_old``. A step's reward is

    r(a_t) = beta * sum over a_t's tokens of [log pi_phi(token | context) - log pi_old(token | context)]

(``beta = 0.05``). The PRM learns from success/failure pairs inside each group (``group_id``) with the
trajectory-level DPO loss ``mean over (pos, neg) pairs of -log sigmoid(Q(pos) - Q(neg))``, where ``Q`` is the
sum over steps of ``beta * log-ratio`` (``trajectory_score="sum"``, the paper) or its mean over steps
(``"mean"``, the reference code). Every successful trajectory is paired with every failed one; groups with
no pair contribute nothing. One optimiser step per call to :meth:`OPRLHook.train_step`, alternating with
the policy updates: ``update="before"`` (the paper: update the PRM, then score with the updated PRM) or
``update="after"`` (the code's single forward pass: the rewards come from the PRM before its update).

Tokens: when every turn carries the exact ``prompt_token_ids`` / ``response_token_ids`` an LLM agent
generated, those are scored (one row per turn); otherwise the trajectory is rendered with the chat
template (one row per trajectory, every action scored in one pass). The reference log-probs come from
``reference_model`` or, with ``reference="recorded"``, from the turns' ``response_logprobs`` (the code's
``old_log_probs``). ``normalize="batch_max"`` divides a batch's step rewards by its largest absolute value
(the code's ``istar_norm=batch_norm``); off by default. Step rewards feed
:func:`agentgym.baselines.estimators.oprl_advantages`.

Example:
    >>> hook = OPRLHook.from_policy(policy, tokenizer)                      # doctest: +SKIP
    >>> rewards, loss = hook.train_step(group_of_trajectories)              # doctest: +SKIP
    >>> hook.sync_reference(policy)          # after each policy update     # doctest: +SKIP

Change logs:
    v0: initial version.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, Literal

from agentgym.error import InvalidArgumentError
from agentgym.trajectory import Trajectory
from agentgym.wrappers.hooks import TurnRewardHook, check_choice
from agentgym.wrappers.lm import chat_tokens, next_token_logprobs


def default_success(trajectory: Trajectory) -> bool:
    """The preference label: won, or a positive total env reward (the code's ``acc > 0``)."""
    return trajectory.won or trajectory.total_reward > 0


class OPRLHook(TurnRewardHook):
    """Implicit process rewards from a DPO-trained PRM (module docstring). Name: ``"oprl"``.

    Args:
        prm: the PRM (a causal LM; :meth:`from_policy` copies the policy).
        tokenizer: the policy's tokenizer.
        reference_model: the previous policy snapshot (None with ``reference="recorded"``).
        reference: ``"model"`` or ``"recorded"`` (the turns' ``response_logprobs``).
        beta: 0.05. lr: PRM learning rate (1e-6, AdamW). grad_clip: 10.
        trajectory_score: ``"sum"`` (paper) or ``"mean"`` (code) over steps.
        update: ``"before"`` (paper) or ``"after"`` (code) — see the module docstring.
        normalize: ``"none"`` or ``"batch_max"``.
        success_fn: trajectory -> bool, the preference label.
        system: optional system prompt for chat rendering. batch_size: rows per forward pass.
    """

    name = "oprl"

    def __init__(
        self,
        prm: Any,
        tokenizer: Any,
        *,
        reference_model: Any = None,
        reference: Literal["model", "recorded"] = "model",
        beta: float = 0.05,
        lr: float = 1e-6,
        grad_clip: float = 10.0,
        trajectory_score: Literal["sum", "mean"] = "sum",
        update: Literal["before", "after"] = "before",
        normalize: Literal["none", "batch_max"] = "none",
        success_fn: Callable[[Trajectory], bool] = default_success,
        system: str | None = None,
        batch_size: int = 8,
    ):
        import torch

        check_choice("reference", reference, ("model", "recorded"))
        check_choice("trajectory_score", trajectory_score, ("sum", "mean"))
        check_choice("update", update, ("before", "after"))
        check_choice("normalize", normalize, ("none", "batch_max"))
        if reference == "model" and reference_model is None:
            raise InvalidArgumentError(
                "reference='model' needs reference_model (or use OPRLHook.from_policy)"
            )
        self.prm, self.tokenizer, self.reference_model = prm, tokenizer, reference_model
        self.reference, self.beta, self.grad_clip = reference, beta, grad_clip
        self.trajectory_score, self.update, self.normalize = trajectory_score, update, normalize
        self.success_fn, self.system, self.batch_size = success_fn, system, batch_size
        trainable = [p for p in prm.parameters() if p.requires_grad]
        if not trainable:  # e.g. a copy of a frozen model: train all of it
            trainable = list(prm.requires_grad_(True).parameters())
        self.optimizer = torch.optim.AdamW(trainable, lr=lr)
        if reference_model is not None:
            reference_model.eval().requires_grad_(False)

    @classmethod
    def from_policy(cls, policy: Any, tokenizer: Any, **kwargs: Any) -> OPRLHook:
        """A hook whose PRM and reference both start as copies of ``policy``."""
        return cls(copy.deepcopy(policy), tokenizer, reference_model=copy.deepcopy(policy), **kwargs)

    def sync_reference(self, policy: Any) -> None:
        """Make the reference the current policy (call after each policy update: it becomes ``pi_old``)."""
        self.reference_model.load_state_dict(policy.state_dict())

    # ------------------------------------------------------------ log-probs of the actions
    def _rows(self, trajectory: Trajectory) -> list[tuple[list[int], list[tuple[int, int]], list[int]]]:
        """(token ids, action spans, turn index of each span) — recorded tokens, else the rendered chat."""
        turns = trajectory.turns
        if turns and all(t.prompt_token_ids is not None and t.response_token_ids for t in turns):
            return [
                (
                    list(t.prompt_token_ids) + list(t.response_token_ids),
                    [(len(t.prompt_token_ids), len(t.prompt_token_ids) + len(t.response_token_ids))],
                    [k],
                )
                for k, t in enumerate(turns)
            ]
        chat = chat_tokens(trajectory, self.tokenizer, system=self.system)
        return [(chat.ids[: chat.context_ends[-1]], chat.action_spans, list(range(len(turns))))]

    def _action_logprobs(self, model: Any, trajectories: Sequence[Trajectory]) -> list[Any]:
        """Per trajectory, a tensor of per-step summed action log-probs (graph kept when grads are on)."""
        import torch

        rows = [(i, row) for i, trajectory in enumerate(trajectories) for row in self._rows(trajectory)]
        sums: list[dict[int, Any]] = [dict() for _ in trajectories]
        device = next(model.parameters()).device
        pad = self.tokenizer.pad_token_id or 0
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            width = max(len(ids) for _, (ids, _, _) in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for b, (_, (seq, _, _)) in enumerate(chunk):
                ids[b, : len(seq)] = torch.tensor(seq)
                mask[b, : len(seq)] = 1
            logp = next_token_logprobs(model, ids.to(device), mask.to(device))
            for b, (i, (_, spans, turn_ids)) in enumerate(chunk):
                for (begin, end), k in zip(spans, turn_ids):
                    sums[i][k] = logp[b, begin - 1 : end - 1].sum()
        zero = torch.zeros((), device=device)
        return [
            torch.stack([s.get(k, zero) for k in range(len(t.turns))]) if t.turns else zero.new_zeros(0)
            for s, t in zip(sums, trajectories)
        ]

    def _reference_logprobs(self, trajectories: Sequence[Trajectory]) -> list[Any]:
        import torch

        if self.reference == "recorded":
            out = []
            for trajectory in trajectories:
                if not all(t.response_logprobs for t in trajectory.turns):
                    raise InvalidArgumentError(
                        "reference='recorded' needs response_logprobs on every turn "
                        f"({trajectory.episode_id!r})"
                    )
                out.append(torch.tensor([float(sum(t.response_logprobs)) for t in trajectory.turns]))
            return out
        with torch.no_grad():
            return [x.detach() for x in self._action_logprobs(self.reference_model, trajectories)]

    def step_log_ratios(self, trajectories: Sequence[Trajectory], *, grad: bool = False) -> list[Any]:
        """Per trajectory, ``beta * (log pi_phi - log pi_old)`` of each step's action (a tensor)."""
        import torch

        reference = self._reference_logprobs(trajectories)
        with torch.set_grad_enabled(grad):
            if not grad:
                self.prm.eval()
            policy = self._action_logprobs(self.prm, trajectories)
        return [self.beta * (p - r.to(p.device)) for p, r in zip(policy, reference)]

    # ------------------------------------------------------------ rewards and training
    def _rewards(self, ratios: Sequence[Any]) -> list[list[float]]:
        rewards = [[float(x) for x in r.detach().cpu()] for r in ratios]
        if self.normalize == "batch_max":
            scale = max((abs(x) for row in rewards for x in row), default=0.0) + 1e-6
            rewards = [[x / scale for x in row] for row in rewards]
        return rewards

    def score(self, trajectories: Sequence[Trajectory]) -> list[list[float]]:
        return self._rewards(self.step_log_ratios(trajectories))

    def pairs(self, trajectories: Sequence[Trajectory]) -> list[tuple[int, int]]:
        """(positive, negative) index pairs: every success with every failure of the same group."""
        groups: dict[Any, list[int]] = defaultdict(list)
        for i, trajectory in enumerate(trajectories):
            groups[trajectory.group_id].append(i)
        out = []
        for members in groups.values():
            wins = [i for i in members if self.success_fn(trajectories[i])]
            losses = [i for i in members if not self.success_fn(trajectories[i])]
            out += [(p, n) for p in wins for n in losses]
        return out

    def dpo_loss(self, ratios: Sequence[Any], pairs: Sequence[tuple[int, int]]) -> Any:
        """Mean of ``-log sigmoid(Q+ - Q-)`` over the pairs (None when there are none)."""
        import torch

        if not pairs:
            return None
        q = [r.sum() if self.trajectory_score == "sum" else r.mean() for r in ratios]
        margins = torch.stack([q[p] - q[n] for p, n in pairs])
        return -torch.nn.functional.logsigmoid(margins).mean()

    def _optimise(self, loss: Any) -> None:
        import torch

        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.prm.parameters(), self.grad_clip)
        self.optimizer.step()
        self.prm.eval()

    def train_step(self, trajectories: Sequence[Trajectory]) -> tuple[list[list[float]], float | None]:
        """One PRM update on the batch's pairs; returns ``(step rewards, DPO loss or None)``.

        ``update="after"``: the rewards come from the same forward pass as the loss (before the update);
        ``update="before"``: the PRM is updated first and the rewards are scored with it.
        """
        pairs = self.pairs(trajectories)
        self.prm.train()
        ratios = self.step_log_ratios(trajectories, grad=bool(pairs))
        loss = self.dpo_loss(ratios, pairs)
        value = float(loss.detach()) if loss is not None else None
        if loss is not None:
            self._optimise(loss)
        self.prm.eval()
        if self.update == "after" or loss is None:
            return self._rewards(ratios), value
        return self.score(trajectories), value
