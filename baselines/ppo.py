"""PPO-clip on agent tokens for :mod:`agentgym.baselines.train_pg`: one training row per turn, the rows'
response log-probs in one left-padded batch, the clipped loss with an optional k3 KL, and the update.

``args`` is the trainer's :class:`~agentgym.baselines.train_pg.Args` (``clip_eps``, ``clip_eps_high``,
``kl_coef``, ``temperature``, ``bf16``, ``ppo_epochs``, ``minibatch_rows``, ``micro_batch_rows``,
``max_grad_norm``, ``seed``).
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

    Rows are left-padded so that every response starts at the same column: the vocabulary projection then
    runs on the response positions only (``logits_to_keep``), never over the prompts. A row with
    ``allowed`` sets (a choice-format reply) gets each position's distribution renormalised over its
    allowed tokens, the distribution it was sampled from, so the first PPO epoch's ratio is 1.
    """
    import torch

    start = max(r["start"] for r in rows)  # the common response start after left padding
    longest = max(len(r["ids"]) - r["start"] for r in rows)
    ids = torch.zeros((len(rows), start + longest), dtype=torch.long)
    attn = torch.zeros_like(ids)
    for b, row in enumerate(rows):
        pad = start - row["start"]
        ids[b, pad : pad + len(row["ids"])] = torch.tensor(row["ids"])
        attn[b, pad : pad + len(row["ids"])] = 1
    ids, attn = ids.to(device), attn.to(device)
    positions = (attn.cumsum(-1) - 1).clamp(min=0)
    keep = torch.arange(start - 1, start - 1 + longest, device=device)
    allowed = None
    if any(row.get("allowed") for row in rows):
        vocab = model.get_output_embeddings().weight.shape[0]
        per_position = [
            (row.get("allowed") or [])[j] if j < len(row.get("allowed") or []) else None
            for row in rows
            for j in range(longest)
        ]
        allowed = allowed_mask(per_position, vocab, device=device).view(len(rows), longest, vocab)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16 and device.startswith("cuda")):
        logp = next_token_logprobs(model, ids, attn, positions, keep=keep, temperature=temperature, allowed=allowed)
    mask = torch.zeros((len(rows), longest), device=device)
    for b, row in enumerate(rows):
        mask[b, : len(row["ids"]) - row["start"]] = 1
    return logp * mask, mask


def ppo_loss(
    logp: Any, old: Any, ref: Any | None, adv: Any, mask: Any, args: Any, n_tokens: int
) -> tuple[Any, dict[str, float]]:
    """PPO-clip (+ k3 KL) summed over the agent tokens and divided by the minibatch's token count."""
    import torch

    ratio = torch.exp(logp - old)
    high = args.clip_eps if args.clip_eps_high is None else args.clip_eps_high
    pg = -torch.min(ratio * adv[:, None], torch.clamp(ratio, 1 - args.clip_eps, 1 + high) * adv[:, None])
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


def ppo_update(
    model: Any,
    reference: Any | None,
    optimizer: Any,
    params: list[Any],
    rows: list[dict[str, Any]],
    args: Any,
    device: str,
    step: int,
) -> dict[str, float]:
    """Reference log-probs (no grad; the frozen copy, or the model with its adapters disabled) when
    ``kl_coef > 0``, then ``ppo_epochs`` passes over ``rows`` in minibatches, with gradient accumulation over
    micro-batches. Returns the ``train/`` metrics, each the mean over minibatches."""
    import torch

    model.train()
    if args.kl_coef > 0:
        with torch.no_grad():
            for i in range(0, len(rows), args.micro_batch_rows):
                chunk = rows[i : i + args.micro_batch_rows]
                if reference is not None:
                    ref, _ = batch_logprobs(reference, chunk, device, args.temperature, args.bf16)
                else:
                    with model.disable_adapter():
                        ref, _ = batch_logprobs(model, chunk, device, args.temperature, args.bf16)
                for row, values in zip(chunk, ref):
                    row["ref"] = values[: len(row["ids"]) - row["start"]].tolist()
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
                adv = torch.tensor([r["adv"] for r in chunk], device=device)
                loss, parts = ppo_loss(logp, old, ref, adv, mask, args, n_tokens)
                loss.backward()
                for key, value in {"loss": float(loss.detach()), **parts}.items():
                    sums[key] += value  # each part is already divided by the minibatch's token count
            for key, value in sums.items():
                stats[key].append(value)
            stats["grad_norm"].append(float(torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)))
            optimizer.step()
    return {f"train/{key}": float(np.mean(values)) for key, values in stats.items()}
