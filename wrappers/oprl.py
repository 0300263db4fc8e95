"""OPRL / iStar implicit step rewards (spec ``reward-hooks.md`` §9): a PRM trained online with trajectory DPO.

The process reward model (PRM) ``pi_phi`` is a causal LM initialised from the policy. The reference is the
rolling snapshot of the previous policy ``pi_old``. A step's reward is

    r(a_t) = beta * sum over a_t's tokens of [log pi_phi(token | context) - log pi_old(token | context)]

(``beta = 0.05``). The PRM learns from success/failure pairs inside each group (``group_id``) with the
trajectory-level DPO loss ``mean over (pos, neg) pairs of -log sigmoid(Q(pos) - Q(neg))``, where ``Q`` is the
sum over steps of ``beta * log-ratio`` (``trajectory_score="sum"``, the paper) or its mean over steps
(``"mean"``, the reference code). Every successful trajectory is paired with every failed one; groups with
no pair contribute nothing. One optimiser step per call to :meth:`OPRLHook.train_step`, alternating with
the policy updates: ``update="after"`` (the code's single forward pass: the rewards come from the PRM before
its update) or ``update="before"`` (the paper's text: update the PRM, then score with the updated PRM).

In the trainer (:mod:`agentgym.baselines.train_pg`) the hook is built by :meth:`OPRLHook.from_policy` and
each step runs in the reference code's ``update="after"`` order: the trainer scores the batch with the PRM
(:func:`~agentgym.wrappers.annotate`), updates the policy, then calls :meth:`OPRLHook.on_update`, which
takes one DPO step of the PRM on that batch (the reference is still the policy that generated it,
``pi_old``) and then syncs the reference to the updated policy (:meth:`OPRLHook.sync_reference`), which
generates the next batch. ``update="before"`` cannot be honoured in that lifecycle (the batch is scored
before ``on_update``), so :meth:`~OPRLHook.from_policy` refuses it; drive :meth:`~OPRLHook.train_step`
yourself to use it.

Tokens: when every turn carries the exact ``prompt_token_ids`` / ``response_token_ids`` an LLM agent
generated, those are scored (one row per turn); otherwise the trajectory is rendered with the chat
template (one row per trajectory, every action scored in one pass). The reference log-probs come from
``reference_model`` or, with ``reference="recorded"``, from the turns' ``response_logprobs`` (the code's
``old_log_probs``; they are the sampler's, so they match the PRM's full-vocabulary log-probs only when the
agent samples at temperature 1 without a choice constraint). ``normalize="batch_max"`` divides a batch's step rewards by its largest absolute value
(the code's ``istar_norm=batch_norm``); off by default. Step rewards feed
:func:`agentgym.baselines.estimators.oprl_advantages`.

Example:
    >>> hook = OPRLHook.from_policy(policy, tokenizer)                      # doctest: +SKIP
    >>> annotate(batch, [hook])          # step rewards from the PRM        # doctest: +SKIP
    >>> ...                              # the policy update                # doctest: +SKIP
    >>> hook.on_update(step, batch, {})  # DPO step, then reference := policy  # doctest: +SKIP
    {'pairs': 4.0, 'prm_loss': 0.69, 'mean_step_reward': 0.0}

Change logs:
    v0: initial version.
    v1: ``on_update`` (one DPO step, then the reference syncs to the live policy); ``from_policy`` keeps
        the policy, gives a full trainable PRM (a LoRA policy's adapters merged) and refuses
        ``update="before"``; the default ``update`` is ``"after"``; PRM and reference score in eval mode.
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
        prm: the PRM (a causal LM; :meth:`from_policy` copies the policy). Its trainable parameters (all of
            them when none is marked trainable) are what the DPO step updates.
        tokenizer: the policy's tokenizer.
        reference_model: the previous policy snapshot (None with ``reference="recorded"``).
        reference: ``"model"`` or ``"recorded"`` (the turns' ``response_logprobs``).
        beta: 0.05. lr: PRM learning rate (1e-6, AdamW). grad_clip: 10.
        trajectory_score: ``"sum"`` (paper) or ``"mean"`` (code) over steps.
        update: ``"after"`` (code, the trainer's order) or ``"before"`` (paper text; :meth:`train_step`
            only) — see the module docstring.
        normalize: ``"none"`` or ``"batch_max"``.
        success_fn: trajectory -> bool, the preference label.
        system: optional system prompt for chat rendering. batch_size: rows per forward pass.
        tokens: ``"recorded"`` (the turns' prompt/response ids when every turn has them, else the chat
            rendering) or ``"rendered"`` (always the chat rendering: for a PRM whose tokenizer is not the
            policy's).

    Attributes:
        policy: the live policy :meth:`on_update` syncs the reference to (set by :meth:`from_policy`;
            None for a hook built directly, whose ``on_update`` then only trains the PRM).
    """

    name = "oprl"
    requires_policy = True

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
        update: Literal["before", "after"] = "after",
        normalize: Literal["none", "batch_max"] = "none",
        success_fn: Callable[[Trajectory], bool] = default_success,
        system: str | None = None,
        batch_size: int = 8,
        tokens: Literal["recorded", "rendered"] = "recorded",
    ):
        import torch

        check_choice("reference", reference, ("model", "recorded"))
        check_choice("trajectory_score", trajectory_score, ("sum", "mean"))
        check_choice("update", update, ("before", "after"))
        check_choice("normalize", normalize, ("none", "batch_max"))
        check_choice("tokens", tokens, ("recorded", "rendered"))
        if reference == "model" and reference_model is None:
            raise InvalidArgumentError("reference='model' needs reference_model (or use OPRLHook.from_policy)")
        self.prm, self.tokenizer, self.reference_model = prm, tokenizer, reference_model
        self.reference, self.beta, self.grad_clip = reference, beta, grad_clip
        self.trajectory_score, self.update, self.normalize = trajectory_score, update, normalize
        self.success_fn, self.system, self.batch_size, self.tokens = success_fn, system, batch_size, tokens
        self.policy: Any = None
        trainable = [p for p in prm.parameters() if p.requires_grad]
        if not trainable:  # e.g. a copy of a frozen model: train all of it
            trainable = list(prm.requires_grad_(True).parameters())
        self.optimizer = torch.optim.AdamW(trainable, lr=lr)
        prm.eval()  # no dropout: the training pass's rewards are the scoring pass's
        if reference_model is not None:
            reference_model.eval().requires_grad_(False)

    @classmethod
    def from_policy(
        cls,
        policy: Any,
        tokenizer: Any,
        *,
        prm_params: Literal["full", "adapters"] = "full",
        update: Literal["after"] = "after",
        **kwargs: Any,
    ) -> OPRLHook:
        """The trainer's builder (``hooks: [{name: oprl, kwargs: {...}}]``); ``kwargs`` go to the constructor.

        The PRM is a copy of ``policy``: ``prm_params="full"`` (default, the paper's full-LM PRM) trains
        every weight, a peft (LoRA) policy's adapters merged into it first (an AdamW state the size of the
        model); ``"adapters"`` keeps a peft policy's structure and trains only its copied LoRA adapters
        (cheaper; the base weights stay frozen). The reference is a frozen copy of ``policy`` with the same
        structure (None with ``reference="recorded"``). The hook keeps ``policy`` itself (the trainer
        updates it in place) and syncs the reference to it in :meth:`on_update`.

        With a config's ``model:`` the trainer passes that model as ``policy``: the PRM starts from it
        and the reference is a copy of it that stays that model (the hook never sees the policy); set
        ``reference="recorded"`` to use the policy's own sampled log-probs as ``pi_old`` (same tokenizer
        needed), or ``tokens="rendered"`` for a model with another tokenizer.

        Raises :class:`InvalidArgumentError` for ``update="before"``: the trainer scores the batch before
        :meth:`on_update` runs, so rewards always come from the PRM before its step (``"after"``).
        """
        check_choice("prm_params", prm_params, ("full", "adapters"))
        if update != "after":
            raise InvalidArgumentError(
                "OPRLHook.from_policy: update must be 'after' (the trainer scores each batch before the "
                "PRM's step in on_update); for update='before' build OPRLHook(...) and call train_step"
            )
        is_peft = hasattr(policy, "merge_and_unload")
        if prm_params == "adapters" and not is_peft:
            raise InvalidArgumentError("OPRLHook.from_policy: prm_params='adapters' needs a peft (LoRA) policy")
        prm = copy.deepcopy(policy)
        if prm_params == "full":
            prm = (prm.merge_and_unload() if is_peft else prm).requires_grad_(True)
        else:
            for name, parameter in prm.named_parameters():
                parameter.requires_grad_("lora_" in name)
        recorded = kwargs.get("reference") == "recorded"
        reference_model = None if recorded else copy.deepcopy(policy)
        hook = cls(prm, tokenizer, reference_model=reference_model, update=update, **kwargs)
        hook.policy = policy
        return hook

    def sync_reference(self, policy: Any = None) -> None:
        """Make the reference a snapshot of ``policy`` (default: :attr:`policy`): call it after each policy
        update, the reference then being ``pi_old`` of the next batch. The policy's weights are copied into
        the reference, which has the policy's structure (a peft policy's base weights and adapters), so
        its log-probs are the policy's. Nothing to do with ``reference="recorded"``."""
        if self.reference_model is None:
            return
        policy = policy if policy is not None else self.policy
        if policy is None:
            raise InvalidArgumentError("sync_reference needs the policy (or build the hook with from_policy)")
        self.reference_model.load_state_dict(policy.state_dict())

    def state_dict(self) -> dict[str, Any]:
        """The PRM's weights, its optimizer and the reference's weights (the PRM learns during training)."""
        return {
            "prm": self.prm.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "reference": None if self.reference_model is None else self.reference_model.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prm.load_state_dict(state["prm"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.reference_model is not None and state.get("reference") is not None:
            self.reference_model.load_state_dict(state["reference"])

    def on_update(self, step: int, trajectories: Sequence[Trajectory], metrics: dict[str, float]) -> dict[str, float]:
        """After the policy update on ``trajectories`` (already scored by this hook): one DPO step of the
        PRM on the batch's pairs (no pair: the PRM is left as it is), then :meth:`sync_reference` to the
        updated policy. Returns ``pairs``, ``prm_loss`` (the DPO loss before the step; only when there
        were pairs) and ``mean_step_reward`` (the batch's step rewards, as the estimator saw them)."""
        pairs = self.pairs(trajectories)
        out = {"pairs": float(len(pairs))}
        if pairs:
            ratios, out["prm_loss"] = self._learn(trajectories, pairs)
            rewards = self._rewards(ratios)
        else:
            rewards = [
                [t.turn_rewards[self.name] for t in tr.turns if self.name in t.turn_rewards] for tr in trajectories
            ]
        values = [x for row in rewards for x in row]
        if values:
            out["mean_step_reward"] = sum(values) / len(values)
        if self.policy is not None:
            self.sync_reference()
        return out

    # ------------------------------------------------------------ log-probs of the actions
    def _rows(self, trajectory: Trajectory) -> list[tuple[list[int], list[tuple[int, int]], list[int]]]:
        """(token ids, action spans, turn index of each span) — recorded tokens, else the rendered chat."""
        turns = trajectory.turns
        if (
            self.tokens == "recorded"
            and turns
            and all(t.prompt_token_ids is not None and t.response_token_ids for t in turns)
        ):
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
                        f"reference='recorded' needs response_logprobs on every turn ({trajectory.episode_id!r})"
                    )
                out.append(torch.tensor([float(sum(t.response_logprobs)) for t in trajectory.turns]))
            return out
        with torch.no_grad():
            return [x.detach() for x in self._action_logprobs(self.reference_model, trajectories)]

    def step_log_ratios(self, trajectories: Sequence[Trajectory], *, grad: bool = False) -> list[Any]:
        """Per trajectory, ``beta * (log pi_phi - log pi_old)`` of each step's action (a tensor; with
        ``grad``, differentiable in the PRM). The PRM stays in eval mode (no dropout) either way, so a
        training pass gives exactly the rewards :meth:`score` gives."""
        import torch

        reference = self._reference_logprobs(trajectories)
        with torch.set_grad_enabled(grad):
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

    def _learn(self, trajectories: Sequence[Trajectory], pairs: Sequence[tuple[int, int]]) -> tuple[list, float]:
        """One AdamW step of the PRM on the DPO loss of ``pairs``; returns (the step log-ratios of the
        forward pass, before the step; the loss)."""
        import torch

        ratios = self.step_log_ratios(trajectories, grad=True)
        loss = self.dpo_loss(ratios, pairs)
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.prm.parameters(), self.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)  # the gradients are a model's size: free them
        return ratios, float(loss.detach())

    def train_step(self, trajectories: Sequence[Trajectory]) -> tuple[list[list[float]], float | None]:
        """One PRM update on the batch's pairs; returns ``(step rewards, DPO loss or None)``. For driving
        the hook yourself; the trainer calls :meth:`on_update`.

        ``update="after"``: the rewards come from the same forward pass as the loss (before the update);
        ``update="before"``: the PRM is updated first and the rewards are scored with it. No pair: no
        update, the rewards of the current PRM.
        """
        pairs = self.pairs(trajectories)
        if not pairs:
            return self.score(trajectories), None
        ratios, loss = self._learn(trajectories, pairs)
        if self.update == "after":
            return self._rewards(ratios), loss
        return self.score(trajectories), loss
