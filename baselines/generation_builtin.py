"""The built-in generation backend: our own KV-cache sampling loop over the transformers module.

Why our own loop rather than ``model.generate``: each token's log-prob is recorded from the very
distribution it was drawn from (``logits / temperature``, per row), and a row may be constrained to an
:class:`~agentgym.wrappers.lm.ActionTrie` (the choice format: only tokens that continue an admissible
action, log-probs of the distribution renormalised over them, the allowed ids of every position recorded
for the trainer). What it does to be fast:

* **Finished rows leave the batch.** Whenever at least ``compact_at`` (a quarter) of the rows in the batch
  have finished, the KV cache and every per-row tensor are cut down to the unfinished rows, so a batch
  whose replies have different lengths does not decode every row until the longest one ends.
* **No host sync per token** for unconstrained batches: "is every row done?" is read back only every
  ``check_every`` (8) steps; a row that finished in between is decoded a few steps more and those tokens
  are discarded. A batch with a constrained row reads the sampled tokens back at every step (the trie walk
  that gives the next allowed set runs on the host), and so checks and compacts at every step.
* **Shared prompts are prefilled once**: identical prompts (a group's G rollouts at turn 0) are computed
  once and their KV copied to each of their rows.
* **KV reuse across calls** (:mod:`agentgym.baselines.kv_store`): a prompt that starts with a stored
  sequence starts from its KV and prefills only the rest. Two stores: each prompt's first chat message (its
  ids up to the first end-of-turn token: role, goal, instructions, the same at every turn and in every
  episode of a task; at most ``MAX_PREFIXES``), and, with ``reuse_kv``, each row's prompt + reply of the
  last calls (bounded, least recently used first out): in the append prompt mode the next turn's prompt
  starts with exactly those ids, so a turn prefills only the new observation. A stored reply is consumed by
  the turn that extends it (that turn's longer sequence replaces it). Rows of one batch reuse different
  lengths: each row is laid out ``[pad | reused | pad | rest]``, the mask hiding the pads and the position
  ids continuing the reused ones, so the result is the whole prompt's forward up to float rounding. The
  stores are emptied when the weights change: on :meth:`BuiltinBackend.sync` / :meth:`set_weights`, and for
  a shared module whenever a parameter's in-place version counter moves (every optimizer step bumps it).
  :attr:`BuiltinBackend.prefill_tokens` counts prompt tokens computed vs reused.
* **bf16 on CUDA**: with ``dtype`` bfloat16 (the default on CUDA) the backend keeps its own bf16 copy of
  the policy (``shares_policy`` False; :meth:`sync` copies the policy's current weights in, LoRA merged).
  On CPU (fp32) it samples with the policy module itself (``shares_policy`` True, numerics identical to a
  training forward; :meth:`sync` only empties the prefix store).

Not done here: a static KV cache and ``torch.compile`` of the decode step (no ``static_cache``/``compile``
options): the dynamic cache is what compaction and the prefix store cut and paste.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agentgym.baselines.generation import Generation, Sampling, finish, left_padded, load_weights, pad_id_of, per_row
from agentgym.baselines.kv_store import KVStore, left_padded_layers, row_layers
from agentgym.error import InvalidArgumentError
from agentgym.wrappers.lm import (
    allowed_mask,
    build_cache,
    cache_argument,
    cache_key_values,
    eval_mode,
    forward_model,
    masked_log_softmax,
    returned_cache,
)

_DTYPES = ("bfloat16", "float16", "float32")


def merged_state_dict(policy: Any) -> dict[str, Any]:
    """The policy's weights under the plain model's (HF) names, LoRA merged: for every active adapter of a
    LoRA layer ``W + scale * B @ A``, computed aside (the policy's own weights are not touched, unlike
    peft's ``merge_adapter``/``unmerge_adapter`` round trip, which rounds them)."""
    base = forward_model(policy)
    weights = {
        name.replace(".base_layer.", "."): tensor.detach()
        for name, tensor in base.state_dict().items()
        if ".lora_" not in name
    }
    for name, module in base.named_modules():
        if not (hasattr(module, "get_delta_weight") and hasattr(module, "base_layer")):
            continue
        weight = module.base_layer.weight.detach()
        if not getattr(module, "merged", False) and not getattr(module, "disable_adapters", False):
            for adapter in module.active_adapters:
                if adapter in getattr(module, "lora_A", {}):
                    weight = weight + module.get_delta_weight(adapter).detach()
        weights[f"{name}.weight"] = weight
    return weights


class BuiltinBackend:
    """The default backend (module docstring).

    Args:
        model, tokenizer: the policy (a causal LM, optionally a peft model) and its tokenizer.
        device: where to run.
        seed: seeds :attr:`generator` (the sampling stream).
        dtype: ``"bfloat16"``, ``"float16"`` or ``"float32"`` (a torch dtype works too); None: bfloat16 on
            CUDA, float32 elsewhere.
        own_copy: keep a separate copy of the policy in ``dtype`` (None: when ``dtype`` differs from the
            policy's); True on CPU tests the copy path.
        prefix_reuse: reuse stored KV at all (False: every prompt is prefilled whole).
        reuse_kv: keep each row's prompt + reply KV for the next calls (the append prompt mode's next turn).
        kv_tokens, kv_sequences: bounds of that store (summed tokens, sequences; memory per token in
            :mod:`agentgym.baselines.kv_store`).
        check_every: host syncs of an unconstrained batch, in decode steps.
        compact_at: share of finished rows in the batch at which the batch is cut down to the others.
    """

    name = "builtin"
    MAX_PREFIXES = 256

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        device: str,
        seed: int = 0,
        dtype: Any = None,
        own_copy: bool | None = None,
        prefix_reuse: bool = True,
        reuse_kv: bool = True,
        kv_tokens: int = 2**17,
        kv_sequences: int = 1024,
        check_every: int = 8,
        compact_at: float = 0.25,
    ):
        import torch

        if check_every < 1 or not 0 < compact_at <= 1:
            raise InvalidArgumentError(
                f"need check_every >= 1 and 0 < compact_at <= 1, got {check_every}, {compact_at}"
            )
        self.device = device
        self.policy = model.to(device)
        if dtype is None:
            dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
        if isinstance(dtype, str):
            if dtype not in _DTYPES:
                raise InvalidArgumentError(f"dtype must be one of {list(_DTYPES)}, got {dtype!r}")
            dtype = getattr(torch, dtype)
        self.dtype = dtype
        policy_dtype = next(self.policy.parameters()).dtype
        self.shares_policy = not (own_copy if own_copy is not None else dtype != policy_dtype)
        self.model = forward_model(self.policy) if self.shares_policy else self._copy_of_policy()
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.pad_id = pad_id_of(tokenizer)
        #: The token that closes a chat message: a prompt's ids up to the first one are its system prefix.
        self.end_id = tokenizer.get_vocab().get("<|im_end|>", tokenizer.eos_token_id)
        self.check_every, self.compact_at = check_every, compact_at
        self.prefix_reuse = prefix_reuse
        self.reuse_kv = reuse_kv
        self._prefix_kv = KVStore(self.MAX_PREFIXES)  # system messages
        self._sequences = KVStore(kv_sequences, kv_tokens)  # rows' prompt + reply of earlier calls
        #: prompt tokens run through the model vs started from stored KV, summed over calls
        self.prefill_tokens = {"computed": 0, "reused": 0}
        self._prefix_version: Any = None
        self._cache_key = cache_argument(self.model)

    # ------------------------------------------------------------------ weights
    def _copy_of_policy(self) -> Any:
        """A fresh module of the policy's class and config in ``self.dtype``, holding its merged weights."""
        import torch

        base = forward_model(self.policy)
        with torch.device(self.device):
            copy = type(base)(base.config)
        copy = copy.to(self.dtype).eval().requires_grad_(False)
        load_weights(copy, merged_state_dict(self.policy))
        return copy

    def _weights_changed(self) -> None:
        self._prefix_kv.clear()
        self._sequences.clear()
        self._prefix_version = None

    def sync(self) -> None:
        """Copy the policy's current weights (LoRA merged) into the own copy; a shared module only empties
        the prefix store."""
        if not self.shares_policy:
            load_weights(self.model, merged_state_dict(self.policy))
        self._weights_changed()

    def set_weights(self, weights: Mapping[str, Any]) -> None:
        """Load a merged, HF-named state dict (all or some of the names) into the sampling module."""
        load_weights(self.model, weights)
        self._weights_changed()

    def close(self) -> None:
        self._weights_changed()

    # ------------------------------------------------------------------ generation
    def generate(
        self, prompt_token_ids: Sequence[Sequence[int]], sampling: Sampling | Sequence[Sampling]
    ) -> list[Generation]:
        """Sample a reply for each prompt in one batch (module docstring)."""
        import torch

        rows = per_row(prompt_token_ids, sampling)
        if not rows:
            return []
        prompts = [list(p) for p in prompt_token_ids]
        kept: dict[int, Any] = {}  # row -> its KV at the end (rows whose prompt + reply are stored)
        with torch.no_grad(), eval_mode(self.model):
            ids, lps, allowed = self._decode(prompts, rows, kept)
        out = [finish(ids[b], lps[b], row, allowed[b]) for b, row in enumerate(rows)]
        for b, layers in kept.items():
            # the cache holds the prompt and the fed reply tokens (the last sampled one is never fed)
            key = (*prompts[b], *out[b].token_ids[:-1])
            if layers[0][0].shape[2] >= len(key):
                self._sequences.put(key, [(k[:, :, : len(key)], v[:, :, : len(key)]) for k, v in layers])
        return out

    def _forward(self, ids: Any, mask: Any, positions: Any, cache: Any) -> tuple[Any, Any]:
        """``(last position's logits, KV cache)`` of one forward pass continuing ``cache`` (None: none)."""
        extra = {self._cache_key: cache} if cache is not None else {}
        output = self.model(
            input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1, **extra
        )
        return output.logits[:, -1], returned_cache(output)

    def _decode(
        self, prompts: list[list[int]], rows: list[Sampling], kept: dict[int, Any]
    ) -> tuple[list[list[int]], list[list[float]], list[list[list[int]] | None]]:
        import torch

        device = self.device
        batch = len(rows)
        unique = list(dict.fromkeys(tuple(p) for p in prompts))
        logits, cache, mask, positions = self._prefill([list(p) for p in unique])
        if len(unique) < batch:
            index = {p: k for k, p in enumerate(unique)}
            which = torch.tensor([index[tuple(p)] for p in prompts], device=device)
            if hasattr(cache, "batch_select_indices"):
                cache.batch_select_indices(which)
                logits, mask, positions = logits[which], mask[which], positions[which]
            else:  # a cache that cannot be expanded: prefill every row
                logits, cache, mask, positions = self._prefill(prompts)
        can_compact = hasattr(cache, "batch_select_indices")
        keep_kv = self.reuse_kv and self.prefix_reuse and cache_key_values(cache) is not None
        # per-row settings of the rows in the batch (``live`` maps batch position -> original row)
        live = torch.arange(batch, device=device)
        temps = torch.tensor([[row.temperature] for row in rows], device=device)
        unit_temperature = all(row.temperature == 1.0 for row in rows)
        greedy = torch.tensor([row.greedy for row in rows], device=device)
        limits = torch.tensor([row.max_new_tokens for row in rows], device=device)
        stop_width = max(1, max(len(row.stop_ids) for row in rows))
        stops = torch.tensor([[*r.stop_ids, *[-1] * (stop_width - len(r.stop_ids))] for r in rows], device=device)
        tries = [row.constraint for row in rows]
        walked: list[list[int]] = [[] for _ in rows]  # constrained rows: the tokens taken so far
        allowed: list[list[list[int]] | None] = [[] if trie is not None else None for trie in tries]
        done = torch.zeros(batch, dtype=torch.bool, device=device)
        done_host = [False] * batch
        record: list[tuple[Any, Any, Any, Any]] = []  # per step: original rows, token, log-prob, row still active
        longest = max(row.max_new_tokens for row in rows)
        all_greedy = all(row.greedy for row in rows)
        # the attention mask of every step, allocated once: step k's forward sees its first ``width + k`` columns
        width = mask.shape[1]
        mask = torch.cat([mask, torch.ones((batch, longest), dtype=mask.dtype, device=device)], dim=1)
        for step in range(longest):
            scores = logits.float() if unit_temperature else logits.float() / temps
            rows_now = live.tolist() if any(t is not None for t in tries) else None
            constraint = None
            if rows_now is not None:
                choices = [
                    tries[r].allowed(walked[r]) if tries[r] is not None and not done_host[b] else None
                    for b, r in enumerate(rows_now)
                ]
                if any(c is not None for c in choices):
                    for r, c in zip(rows_now, choices):
                        if c is not None:
                            allowed[r].append(c)
                    constraint = allowed_mask(choices, scores.shape[-1], device=device)
            logp = masked_log_softmax(scores, constraint)
            token = logp.argmax(-1)
            if not all_greedy:
                sampled = torch.multinomial(logp.exp(), 1, generator=self.generator).squeeze(-1)
                token = torch.where(greedy, token, sampled)
            record.append((live, token, logp.gather(-1, token[:, None]).squeeze(-1), ~done))
            stopped = (token[:, None] == stops).any(-1)
            done = done | stopped | (step + 1 >= limits)
            if rows_now is not None:
                for b, (r, t) in enumerate(zip(rows_now, token.tolist())):
                    if tries[r] is not None and not done_host[b]:
                        walked[r].append(t)
                        if t == tries[r].end_id:
                            done[b] = True
            if step + 1 >= longest:
                break
            if rows_now is not None or (step + 1) % self.check_every == 0:
                done_host = done.tolist()
                if all(done_host):
                    break
                finished = sum(done_host)
                if can_compact and finished and finished >= self.compact_at * len(done_host):
                    if keep_kv:
                        self._keep_rows(cache, mask, live, [b for b, d in enumerate(done_host) if d], kept)
                    keep = torch.tensor([b for b, d in enumerate(done_host) if not d], device=device)
                    cache.batch_select_indices(keep)
                    live, token, mask, positions = live[keep], token[keep], mask[keep], positions[keep]
                    temps, greedy, limits, stops, done = (
                        temps[keep],
                        greedy[keep],
                        limits[keep],
                        stops[keep],
                        done[keep],
                    )
                    done_host = [False] * len(keep)
            positions = positions + 1
            logits, cache = self._forward(token[:, None], mask[:, : width + step + 1], positions, cache)
        if keep_kv:
            self._keep_rows(cache, mask, live, range(len(live)), kept)
        return self._collect(record, batch) + (allowed,)

    @staticmethod
    def _keep_rows(cache: Any, mask: Any, live: Any, batch_rows: Sequence[int], kept: dict[int, Any]) -> None:
        """Copy the KV of batch rows ``batch_rows`` (their unpadded columns) into ``kept`` under their original
        row numbers, before they leave the batch."""
        layers = cache_key_values(cache)
        valid = mask[:, : layers[0][0].shape[2]].bool()
        for b, r in zip(batch_rows, live[list(batch_rows)].tolist()):
            kept[r] = row_layers(layers, b, valid[b])

    @staticmethod
    def _collect(record: list[tuple[Any, Any, Any, Any]], batch: int) -> tuple[list[list[int]], list[list[float]]]:
        """Per original row, its tokens and log-probs in order, from the per-step records (one transfer)."""
        import torch

        rows, tokens, logps, active = (torch.cat(parts).cpu().tolist() for parts in zip(*record))
        out_ids: list[list[int]] = [[] for _ in range(batch)]
        out_lp: list[list[float]] = [[] for _ in range(batch)]
        for r, t, lp, a in zip(rows, tokens, logps, active):
            if a:
                out_ids[r].append(t)
                out_lp[r].append(lp)
        return out_ids, out_lp

    # ------------------------------------------------------------------ prefill
    def _prefill(self, prompts: list[list[int]]) -> tuple[Any, Any, Any, Any]:
        """``(last logits, KV cache, attention mask, last position ids)`` after the prompts' forward pass,
        started from stored KV where possible (:meth:`_with_stored_kv`)."""
        first = self._with_stored_kv(prompts) if self.prefix_reuse else None
        if first is None:
            ids, mask = left_padded(prompts, self.pad_id, self.device)
            positions, cache = (mask.cumsum(-1) - 1).clamp(min=0), None
            self.prefill_tokens["computed"] += sum(map(len, prompts))
        else:
            ids, mask, positions, cache = first
        logits, cache = self._forward(ids, mask, positions, cache)
        return logits, cache, mask, positions[:, -1:]

    def _check_version(self) -> None:
        """A shared module is updated in place by the trainer: stored KV is stale after an optimizer step."""
        if self.shares_policy:
            version = (id(self.model), sum(p._version for p in self.model.parameters()))
            if version != self._prefix_version:
                self._weights_changed()
                self._prefix_version = version

    def _store_system_prefixes(self, prompts: list[tuple[int, ...]], starts: list[tuple[int, ...]]) -> None:
        """Compute and store the system prefix (ids up to the first end-of-turn token) of each prompt whose
        stored start is shorter; sets ``prefix_reuse`` False when the cache is not a plain one."""
        cuts = [p.index(self.end_id) + 1 if self.end_id in p else 0 for p in prompts]
        missing = [p[:cut] for p, cut, start in zip(prompts, cuts, starts) if len(start) < cut < len(p)]
        missing = list(dict.fromkeys(x for x in missing if x not in self._prefix_kv))
        if not missing:
            return
        ids, mask = left_padded(missing, self.pad_id, self.device)
        _, cache = self._forward(ids, mask, (mask.cumsum(-1) - 1).clamp(min=0), None)
        self.prefill_tokens["computed"] += sum(map(len, missing))
        layers = cache_key_values(cache)
        if layers is None:
            self.prefix_reuse = False
            return
        for b, prefix in enumerate(missing):
            self._prefix_kv.put(prefix, row_layers(layers, b, mask[b].bool()))

    def _longest_stored(self, prompt: tuple[int, ...]) -> tuple[tuple[int, ...], KVStore | None]:
        """The longest stored prefix of ``prompt`` and its store (``((), None)``: none)."""
        system = self._prefix_kv.longest_prefix(prompt)
        sequence = self._sequences.longest_prefix(prompt) if self.reuse_kv else ()
        if len(sequence) > len(system):
            return sequence, self._sequences
        return system, (self._prefix_kv if system else None)

    def _with_stored_kv(self, prompts: list[list[int]]) -> tuple[Any, Any, Any, Any] | None:
        """The first forward's ``(input ids, attention mask, position ids, KV cache)`` with each prompt's
        longest stored prefix (a system message, an earlier turn's prompt + reply) taken from the stores, so
        only the rest is computed; None when no prompt has one or the cache is not a plain one (whole
        prompts then). Row layout ``[pad | reused | pad | rest]`` (module docstring)."""
        import torch

        self._check_version()
        keys = [tuple(p) for p in prompts]
        starts = [self._longest_stored(p) for p in keys]
        self._store_system_prefixes(keys, [start for start, _ in starts])
        if not self.prefix_reuse:
            return None
        starts = [self._longest_stored(p) for p in keys]
        if not any(start for start, _ in starts):
            return None
        width = max(len(start) for start, _ in starts)
        entries = [store.get(start) if store is not None else None for start, store in starts]
        cache = build_cache(left_padded_layers(entries, width))
        for start, store in starts:
            if store is self._sequences:  # consumed: this turn's longer sequence will replace it
                store.pop(start)
        rests = [p[len(start) :] for p, (start, _) in zip(prompts, starts)]
        rest_ids, rest_mask = left_padded(rests, self.pad_id, self.device)
        lengths = torch.tensor([len(start) for start, _ in starts], device=self.device)
        reused_mask = (torch.arange(width, device=self.device) >= width - lengths[:, None]).to(rest_mask.dtype)
        positions = (rest_mask.cumsum(-1) - 1).clamp(min=0) + lengths[:, None]
        self.prefill_tokens["computed"] += sum(map(len, rests))
        self.prefill_tokens["reused"] += int(lengths.sum())
        return rest_ids, torch.cat([reused_mask, rest_mask], dim=1), positions, cache
