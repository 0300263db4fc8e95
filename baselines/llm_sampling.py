"""Batched generation for :class:`~agentgym.baselines.llm_agent.LLMAgent`: its own KV-cache sampling loop
(so each token's log-prob is the one it was sampled from), prefix-constrained decoding over an
:class:`~agentgym.wrappers.lm.ActionTrie` (the ``choice`` format), reuse of the system message's KV across
prompts, and :func:`token_logprobs` (the log-probs of given tokens, for re-scoring).

:class:`BatchedSampling` is a mixin: it reads the agent's ``model``, ``device``, ``pad_id``, ``stop_ids``,
``end_id``, ``temperature``, ``greedy``, ``bf16`` and ``generator``, and keeps the prefix store it sets up in
:meth:`BatchedSampling._init_prefix_store`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentgym.wrappers.lm import (
    ActionTrie,
    allowed_mask,
    build_cache,
    cache_argument,
    cache_key_values,
    masked_log_softmax,
    next_token_logprobs,
    returned_cache,
)


def token_logprobs(model: Any, input_ids: Any, attention_mask: Any, start: int = 0, temperature: float = 1.0) -> Any:
    """``out[b, j] = log p(input_ids[b, start + j + 1] | prefix)`` under ``logits / temperature``.

    Rows are right-padded; positions follow the attention mask. Keeps the autograd graph, and computes
    the vocabulary projection only from position ``start`` on.
    """
    import torch

    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    keep = torch.arange(start, input_ids.shape[1] - 1, device=input_ids.device)
    return next_token_logprobs(model, input_ids, attention_mask, position_ids, keep=keep, temperature=temperature)


class BatchedSampling:
    """Sampling for every pending episode of a rollout in one left-padded batch (module docstring)."""

    MAX_PREFIXES = 256

    def _init_prefix_store(self) -> None:
        #: Choice-format prefill reuse: the KV of each prompt's system message (role, goal, instructions), the
        #: same at every turn of an episode and in every episode of a task, keyed by its token ids; valid
        #: while the weights are unchanged (``_prefix_version``), at most ``MAX_PREFIXES`` kept.
        self._prefix_kv: dict[tuple[int, ...], list[tuple[Any, Any]]] = {}
        self._prefix_version: tuple[int, int] | None = None
        self._prefix_reuse = True

    def generate(
        self, prompts: Sequence[Sequence[int]], max_new: Sequence[int]
    ) -> tuple[list[list[int]], list[list[float]]]:
        """Sample a reply for each prompt in one left-padded batch with the KV cache.

        Returns the response ids (ending with the stop token when one was produced) and the log-prob of
        each under ``logits / temperature``, as computed while sampling.
        """
        responses, logprobs, _ = self.sample(prompts, max_new)
        return responses, logprobs

    def sample(
        self,
        prompts: Sequence[Sequence[int]],
        max_new: Sequence[int],
        tries: Sequence[ActionTrie | None] | None = None,
    ) -> tuple[list[list[int]], list[list[float]], list[list[list[int]] | None]]:
        """:meth:`generate`, where a row with a trie in ``tries`` samples only tokens that continue one of its
        actions, from the distribution renormalised over them; also returns, per row, the allowed token ids
        of every response position (None for a row without a trie)."""
        import torch

        batch = len(prompts)
        limit = torch.tensor(list(max_new), device=self.device)
        stops = torch.tensor(self.stop_ids, device=self.device)
        done = torch.zeros(batch, dtype=torch.bool, device=self.device)
        steps: list[tuple[Any, Any, Any]] = []  # (token, log-prob, row still active) per step, on the device
        tries = list(tries) if tries is not None else [None] * batch
        prefixes: list[list[int]] = [[] for _ in range(batch)]
        allowed: list[list[list[int]] | None] = [[] if trie is not None else None for trie in tries]
        was_training = self.model.training
        self.model.eval()
        cache_key = cache_argument(getattr(self.model, "get_base_model", lambda: self.model)())
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16):
            first = self._reuse_prefixes(prompts) if all(trie is not None for trie in tries) else None
            if first is None:
                step_input, mask = self._left_padded(prompts)
                step_pos, cache = (mask.cumsum(-1) - 1).clamp(min=0), None
            else:
                step_input, mask, step_pos, cache = first
            for step in range(int(limit.max())):
                extra = {cache_key: cache} if cache is not None else {}
                output = self.model(
                    input_ids=step_input,
                    attention_mask=mask,
                    position_ids=step_pos,
                    use_cache=True,
                    logits_to_keep=1,
                    **extra,
                )
                cache = returned_cache(output)
                scores = output.logits[:, -1].float() / self.temperature
                constraint = None
                if any(trie is not None and not done[b] for b, trie in enumerate(tries)):
                    choices = [
                        trie.allowed(prefixes[b]) if trie is not None and not done[b] else None
                        for b, trie in enumerate(tries)
                    ]
                    for b, ids_b in enumerate(choices):
                        if ids_b is not None:
                            allowed[b].append(ids_b)
                    constraint = allowed_mask(choices, scores.shape[-1], device=self.device)
                logp = masked_log_softmax(scores, constraint)
                if self.greedy:
                    token = logp.argmax(-1)
                else:
                    token = torch.multinomial(logp.exp(), 1, generator=self.generator).squeeze(-1)
                steps.append((token, logp.gather(-1, token[:, None]).squeeze(-1), ~done))
                if constraint is not None:
                    for b in range(batch):
                        if tries[b] is not None and not done[b]:
                            prefixes[b].append(int(token[b]))
                done = done | torch.isin(token, stops) | (step + 1 >= limit)
                if bool(done.all()):
                    break
                step_input = token[:, None]
                step_pos = step_pos[:, -1:] + 1
                mask = torch.cat([mask, torch.ones((batch, 1), dtype=mask.dtype, device=self.device)], dim=1)
        self.model.train(was_training)
        tokens, logps, active = (torch.stack(parts, dim=1).cpu() for parts in zip(*steps))
        out_ids = [tokens[b][active[b]].tolist() for b in range(batch)]
        out_lp = [logps[b][active[b]].tolist() for b in range(batch)]
        return out_ids, out_lp, allowed

    def _left_padded(self, prompts: Sequence[Sequence[int]]) -> tuple[Any, Any]:
        """``(ids, attention_mask)`` of ``prompts`` left-padded to one width, on the device."""
        import torch

        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            if prompt:
                ids[row, width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
                mask[row, width - len(prompt) :] = 1
        return ids.to(self.device), mask.to(self.device)

    def _reuse_prefixes(self, prompts: Sequence[Sequence[int]]) -> tuple[Any, Any, Any, Any] | None:
        """The first forward's ``(input ids, attention mask, position ids, KV cache)`` with each prompt's
        system message (its ids up to the first end-of-turn token) taken from stored KV, so only the rest
        (observation and actions) is computed; None when no prompt has such a prefix or the model's cache
        is not a plain one (the caller then runs the whole prompts).

        A choice-format rollout repeats the same system message (role, goal, instructions: about two
        thirds of the prompt) at every turn and in every episode of a task, so this cuts the prefill cost
        about threefold. Layout of each row: ``[pad | prefix | pad | rest]``; the mask hides the pads and
        the position ids continue the prefix's, so the result is the full prompt's forward pass up to float
        rounding. The store is emptied when any weight changes (the sum of the parameters' version counters,
        which every in-place update bumps), so a trainer's update never meets a stale prefix.
        """
        import torch
        from torch.nn.functional import pad

        if not self._prefix_reuse:
            return None
        version = (id(self.model), sum(p._version for p in self.model.parameters()))
        if version != self._prefix_version:
            self._prefix_kv.clear()
            self._prefix_version = version
        cuts = [list(p).index(self.end_id) + 1 if self.end_id in p else 0 for p in prompts]
        cuts = [cut if cut < len(p) else 0 for cut, p in zip(cuts, prompts)]
        prefixes = [tuple(p[:cut]) for p, cut in zip(prompts, cuts)]
        if not any(prefixes):
            return None
        if len(self._prefix_kv) + len(set(prefixes)) > self.MAX_PREFIXES:
            self._prefix_kv.clear()
        missing = list(dict.fromkeys(x for x in prefixes if x and x not in self._prefix_kv))
        if missing:
            ids, mask = self._left_padded(missing)
            output = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                use_cache=True,
                logits_to_keep=1,
            )
            layers = cache_key_values(returned_cache(output))
            if layers is None:
                self._prefix_reuse = False
                return None
            for b, prefix in enumerate(missing):
                start = ids.shape[1] - len(prefix)
                self._prefix_kv[prefix] = [
                    (k[b : b + 1, :, start:].clone(), v[b : b + 1, :, start:].clone()) for k, v in layers
                ]
        template = self._prefix_kv[next(x for x in prefixes if x)]
        width = max(len(x) for x in prefixes)

        def stored(prefix: tuple[int, ...], layer: int, which: int) -> Any:
            tensor = self._prefix_kv[prefix][layer][which] if prefix else template[layer][which][:, :, :0]
            return pad(tensor, (0, 0, width - len(prefix), 0))

        cache = build_cache(
            [
                tuple(torch.cat([stored(x, layer, which) for x in prefixes]) for which in (0, 1))
                for layer in range(len(template))
            ]
        )
        rest_ids, rest_mask = self._left_padded([p[cut:] for p, cut in zip(prompts, cuts)])
        prefix_mask = self._left_padded(prefixes)[1]
        lengths = torch.tensor([len(x) for x in prefixes], device=self.device)
        positions = (rest_mask.cumsum(-1) - 1).clamp(min=0) + lengths[:, None]
        return rest_ids, torch.cat([prefix_mask, rest_mask], dim=1), positions, cache
