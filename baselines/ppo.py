"""PPO-clip on agent tokens for :mod:`agentgym.baselines.train_pg`: one training row per turn, the rows'
response log-probs (projected at the response positions only), the clipped loss with an optional k3 KL,
and the update.

**π_old, and why it may be recomputed.** The ratio ``exp(logp - old)`` is only unbiased when ``old`` is the
probability the *trainer's own forward* gives the sampled tokens before the update. The rollout records the
log-prob of each token as the generation backend sampled it; a backend that samples with the trainer's
module (``backend.shares_policy``: the builtin loop on CPU, ``hf-generate``) gives exactly that. An inference
engine (vLLM) or a bf16 copy of the weights computes other numerics (kernels, dtype, batch shapes), so its
log-probs differ from the trainer's by a small, token-dependent gap: used as π_old, the first epoch's ratio
is already off 1, the clip fires on tokens the policy never moved and the gradient is biased. With
``old_logprobs: recompute`` (and ``auto`` for a backend that does not share the policy) the rows' log-probs
are computed once by the trainer's forward before the PPO epochs (no grad, the same :func:`batch_logprobs`)
and used as π_old, so the first epoch's ratio is 1 up to float rounding; ``train/rollout_logprob_gap``
(mean ``|recomputed - rollout|`` per token) shows how far the backend's numbers were.

**Truncated importance sampling** (``tis_cap``, with recomputation). The tokens were still *sampled* from
the backend's distribution, not the trainer's: the policy gradient estimated on them is an off-policy
estimate. Each token's policy-gradient term is multiplied by the detached weight
``min(exp(old_recomputed - rollout), tis_cap)``, the importance ratio of trainer to sampler truncated at
``tis_cap`` so one token the backend found unlikely cannot dominate the update (Yao et al., "Your efficient
RL framework secretly brings you off-policy RL training", 2025). The KL term is not weighted.

``args`` is the trainer's :class:`~agentgym.baselines.train_pg.Args` (``clip_eps``, ``clip_eps_high``,
``kl_coef``, ``temperature``, ``bf16``, ``ppo_epochs``, ``minibatch_rows``, ``micro_batch_rows``,
``max_grad_norm``, ``seed``, ``old_logprobs``, ``tis_cap``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agentgym.baselines.tokens import turn_rows
from agentgym.trajectory import Trajectory
from agentgym.wrappers.lm import allowed_mask, next_token_logprobs


def make_rows(trajectories: list[Trajectory], turn_adv: list[np.ndarray]) -> list[dict[str, Any]]:
    """One row per turn: token ids, the response start, its advantage, the recorded log-probs and, for a
    constrained (choice-format) reply, the allowed token ids of each response position (else None)."""
    rows = []
    for trajectory, adv in zip(trajectories, turn_adv):
        for k, (ids, mask) in enumerate(turn_rows(trajectory)):
            start = mask.index(1) if 1 in mask else len(ids)
            turn = trajectory.turns[k]
            rows.append(
                {
                    "ids": ids,
                    "start": start,
                    "adv": float(adv[k]),
                    "old": list(turn.response_logprobs or []),
                    "allowed": (turn.agent_info or {}).get("allowed_token_ids"),
                }
            )
    return [row for row in rows if row["start"] < len(row["ids"])]


def batch_logprobs(
    model: Any, rows: list[dict[str, Any]], device: str, temperature: float, bf16: bool
) -> tuple[Any, Any]:
    """Log-probs of the rows' response tokens, ``(logp [B, T], mask [B, T])`` aligned so column ``j`` of row
    ``b`` is response token ``j``; ``mask`` is 1 exactly on response (agent) tokens.

    Rows are right-padded and the vocabulary projection runs at the real response positions only (a
    boolean ``keep`` of :func:`~agentgym.wrappers.lm.next_token_logprobs`: the hidden states of every
    row's response positions are gathered, then ``lm_head``, ``log_softmax`` and the target gather): never
    over the prompts, nor over a padded rectangle from the earliest response start, so a batch of short
    replies next to one long one costs the tokens it has. A row with ``allowed`` sets (a choice-format
    reply) gets each position's distribution renormalised over its allowed tokens, the distribution it was
    sampled from, so the first PPO epoch's ratio is 1.
    """
    import torch

    width = max(len(r["ids"]) for r in rows)
    longest = max(len(r["ids"]) - r["start"] for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    attn = torch.zeros_like(ids)
    keep = torch.zeros((len(rows), width), dtype=torch.bool)  # position i scores token i + 1
    mask = torch.zeros((len(rows), longest), dtype=torch.bool)
    for b, row in enumerate(rows):
        n = len(row["ids"])
        ids[b, :n] = torch.tensor(row["ids"])
        attn[b, :n] = 1
        keep[b, row["start"] - 1 : n - 1] = True
        mask[b, : n - row["start"]] = True
    ids, attn, keep, mask = ids.to(device), attn.to(device), keep.to(device), mask.to(device)
    positions = torch.arange(width, device=device).expand(len(rows), width)
    allowed = None
    if any(row.get("allowed") for row in rows):
        vocab = model.get_output_embeddings().weight.shape[0]
        per_position = [
            (row.get("allowed") or [])[j] if j < len(row.get("allowed") or []) else None
            for row in rows
            for j in range(len(row["ids"]) - row["start"])
        ]
        allowed = allowed_mask(per_position, vocab, device=device)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16 and device.startswith("cuda")):
        flat = next_token_logprobs(model, ids, attn, positions, keep=keep, temperature=temperature, allowed=allowed)
    logp = torch.zeros((len(rows), longest), device=device, dtype=flat.dtype).masked_scatter(mask, flat)
    return logp, mask.float()


def ppo_loss(
    logp: Any,
    old: Any,
    ref: Any | None,
    adv: Any,
    mask: Any,
    args: Any,
    n_tokens: int,
    tis: Any | None = None,
) -> tuple[Any, dict[str, float]]:
    """PPO-clip (+ k3 KL) summed over the agent tokens and divided by the minibatch's token count.

    ``old`` is π_old of the ratio; ``tis`` (optional, same shape, no gradient): per-token truncated
    importance weights multiplying the policy-gradient term (module docstring)."""
    import torch

    ratio = torch.exp(logp - old)
    high = args.clip_eps if args.clip_eps_high is None else args.clip_eps_high
    pg = -torch.min(ratio * adv[:, None], torch.clamp(ratio, 1 - args.clip_eps, 1 + high) * adv[:, None])
    if tis is not None:
        pg = pg * tis.detach()
    loss_tok = pg
    kl = torch.zeros_like(pg)
    if ref is not None:
        kl = torch.exp(ref - logp) - (ref - logp) - 1
        loss_tok = pg + args.kl_coef * kl
    loss = (loss_tok * mask).sum() / n_tokens
    with torch.no_grad():
        stats = {
            "pg_loss": float((pg * mask).sum() / n_tokens),
            "kl": float((kl * mask).sum() / n_tokens),
            "clipfrac": float((((ratio - 1).abs() > args.clip_eps).float() * mask).sum() / n_tokens),
            "approx_kl": float((((ratio - 1) - torch.log(ratio)) * mask).sum() / n_tokens),
        }
    return loss, stats


def _tensor_rows(rows: list[dict[str, Any]], key: str, width: int, device: str) -> Any:
    import torch

    out = torch.zeros((len(rows), width), device=device)
    for b, row in enumerate(rows):
        out[b, : len(row[key])] = torch.tensor(row[key], dtype=torch.float32)
    return out


def check_old_logprobs(args: Any) -> None:
    """Refuse a ``tis_cap`` that is not a positive number, or one with ``old_logprobs: rollout`` (the weights
    compare recomputed log-probs with the rollout's: without recomputation there are none)."""
    from agentgym.error import InvalidArgumentError

    if args.tis_cap is None:
        return
    if isinstance(args.tis_cap, bool) or not isinstance(args.tis_cap, (int, float)) or not args.tis_cap > 0:
        raise InvalidArgumentError(f"'tis_cap' must be a number > 0 (or null), got {args.tis_cap!r}")
    if args.old_logprobs == "rollout":
        raise InvalidArgumentError("'tis_cap' weights by recomputed log-probs: it needs old_logprobs auto or recompute")


def recomputes_old(args: Any, backend: Any) -> bool:
    """Whether π_old is recomputed by the trainer's forward (``old_logprobs``: ``auto`` recomputes unless the
    backend samples with the trainer's own module, ``backend.shares_policy``)."""
    if args.old_logprobs == "auto":
        return not getattr(backend, "shares_policy", True)
    return args.old_logprobs == "recompute"


def _response_logprobs(model: Any, rows: list[dict[str, Any]], args: Any, device: str) -> list[list[float]]:
    """Each row's response log-probs (no grad), over micro-batches of ``micro_batch_rows``."""
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(rows), args.micro_batch_rows):
            chunk = rows[i : i + args.micro_batch_rows]
            logp, _ = batch_logprobs(model, chunk, device, args.temperature, args.bf16)
            out += [values[: len(row["ids"]) - row["start"]].tolist() for row, values in zip(chunk, logp)]
    return out


def recompute_old(model: Any, rows: list[dict[str, Any]], args: Any, device: str) -> dict[str, float]:
    """π_old from the trainer's own forward, in place: ``row["rollout"]`` keeps the log-probs the backend
    recorded, ``row["old"]`` becomes the recomputed ones and, with ``tis_cap``, ``row["tis"]`` the
    per-token weights ``min(exp(old - rollout), tis_cap)``. Returns ``train/rollout_logprob_gap``, the mean
    ``|recomputed - rollout|`` per response token."""
    import math

    gaps = []
    for row, values in zip(rows, _response_logprobs(model, rows, args, device)):
        row["rollout"] = list(row["old"]) + [0.0] * (len(values) - len(row["old"]))
        row["old"] = values
        gaps += [abs(new - old) for new, old in zip(values, row["rollout"])]
        if args.tis_cap is not None:
            row["tis"] = [min(math.exp(new - old), args.tis_cap) for new, old in zip(values, row["rollout"])]
    return {"train/rollout_logprob_gap": float(np.mean(gaps)) if gaps else 0.0}


def ppo_update(
    model: Any,
    reference: Any | None,
    optimizer: Any,
    params: list[Any],
    rows: list[dict[str, Any]],
    args: Any,
    device: str,
    step: int,
    *,
    recompute: bool = False,
) -> dict[str, float]:
    """Reference log-probs (no grad; the frozen copy, or the model with its adapters disabled) when
    ``kl_coef > 0``; π_old recomputed by the trainer's forward when ``recompute`` (:func:`recompute_old`);
    then ``ppo_epochs`` passes over ``rows`` in minibatches, with gradient accumulation over micro-batches.
    Returns the ``train/`` metrics, each the mean over minibatches."""
    import torch

    if not rows:  # every row was left out (token_drift: skip): nothing to learn from this step
        names = ("loss", "pg_loss", "kl", "clipfrac", "approx_kl", "grad_norm")
        return {f"train/{key}": float("nan") for key in names}
    model.train()
    if args.kl_coef > 0:
        if reference is not None:
            refs = _response_logprobs(reference, rows, args, device)
        else:
            with model.disable_adapter():
                refs = _response_logprobs(model, rows, args, device)
        for row, values in zip(rows, refs):
            row["ref"] = values
    extra = recompute_old(model, rows, args, device) if recompute else {}
    weighted = recompute and args.tis_cap is not None
    stats: dict[str, list[float]] = {k: [] for k in ("loss", "pg_loss", "kl", "clipfrac", "approx_kl")}
    stats["grad_norm"] = []
    order = torch.Generator().manual_seed(args.seed * 100003 + step)
    for _ in range(args.ppo_epochs):
        perm = torch.randperm(len(rows), generator=order).tolist()
        for m in range(0, len(rows), args.minibatch_rows):
            minibatch = [rows[i] for i in perm[m : m + args.minibatch_rows]]
            n_tokens = sum(len(r["ids"]) - r["start"] for r in minibatch)
            optimizer.zero_grad(set_to_none=True)
            sums = dict.fromkeys(("loss", "pg_loss", "kl", "clipfrac", "approx_kl"), 0.0)
            for i in range(0, len(minibatch), args.micro_batch_rows):
                chunk = minibatch[i : i + args.micro_batch_rows]
                logp, mask = batch_logprobs(model, chunk, device, args.temperature, args.bf16)
                old = _tensor_rows(chunk, "old", logp.shape[1], device)
                ref = _tensor_rows(chunk, "ref", logp.shape[1], device) if args.kl_coef > 0 else None
                tis = _tensor_rows(chunk, "tis", logp.shape[1], device) if weighted else None
                adv = torch.tensor([r["adv"] for r in chunk], device=device)
                loss, parts = ppo_loss(logp, old, ref, adv, mask, args, n_tokens, tis)
                loss.backward()
                for key, value in {"loss": float(loss.detach()), **parts}.items():
                    sums[key] += value  # each part is already divided by the minibatch's token count
            for key, value in sums.items():
                stats[key].append(value)
            stats["grad_norm"].append(float(torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)))
            optimizer.step()
    return {**{f"train/{key}": float(np.mean(values)) for key, values in stats.items()}, **extra}
