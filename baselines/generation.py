"""The generation-backend seam: what the LLM agent and the trainer ask of whatever samples the replies.

A backend takes token ids in and gives token ids out, with the log-prob of every sampled token under the
distribution it was drawn from (``logits / temperature``, renormalised over the allowed tokens for a
constrained row) and a finish reason. Nothing is tokenized or detokenized here, so the recorded ids are
exactly what the model produced and the trainer re-scores exactly them.

Backends (:data:`BACKENDS`, built by :func:`make_backend`):

* ``"builtin"`` (:mod:`agentgym.baselines.generation_builtin`): our own KV-cache loop over the transformers
  module: choice-format constrained decoding, finished rows leaving the batch, a system-prefix KV store,
  a bf16 copy of the policy on CUDA. The default.
* ``"hf-generate"`` (:class:`HFGenerateBackend`, here): transformers' ``model.generate``, the reference the
  benchmarks compare against. No constrained decoding.
* ``"vllm"`` (:mod:`agentgym.baselines.generation_vllm`): the vLLM engine, an optional extra
  (``pip install "agentgym-rl[vllm]"``), imported only when chosen.

A backend that keeps its own copy of the weights (``shares_policy`` False) samples from the weights of the
last :meth:`GenerationBackend.sync` (the policy module's current weights, LoRA merged) or
:meth:`GenerationBackend.set_weights`; the trainer calls ``sync()`` after each update.

Example:
    >>> from agentgym.baselines.generation import Sampling, make_backend
    >>> backend = make_backend("builtin", model, tokenizer, device="cpu", seed=0)      # doctest: +SKIP
    >>> [g] = backend.generate([[1, 2, 3]], Sampling(max_new_tokens=8, stop_ids=(0,)))  # doctest: +SKIP
    >>> g.token_ids, g.logprobs, g.finish_reason                                        # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from agentgym.error import InvalidArgumentError

BACKENDS = ("builtin", "hf-generate", "vllm")


@dataclasses.dataclass(frozen=True)
class Sampling:
    """One row's sampling settings."""

    max_new_tokens: int
    temperature: float = 1.0  # log-probs are those of logits / temperature
    greedy: bool = False  # argmax (log-probs still recorded)
    stop_ids: tuple[int, ...] = ()  # generation ends after one of these (it is included in token_ids)
    constraint: Any = None  # an agentgym.wrappers.lm.ActionTrie: choice-format constrained decoding

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise InvalidArgumentError(f"Sampling.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not self.temperature > 0:
            raise InvalidArgumentError(
                f"Sampling.temperature must be > 0 (greedy=True for argmax), got {self.temperature}"
            )


@dataclasses.dataclass
class Generation:
    """One row's result."""

    token_ids: list[int]  # ends with the stop token when one was produced
    logprobs: list[float]  # log-prob of each token under the distribution it was sampled from
    finish_reason: str  # "stop" | "length"
    allowed_token_ids: list[list[int]] | None = None  # constrained rows: the allowed ids of every position


@runtime_checkable
class GenerationBackend(Protocol):
    """What the agent and the trainer call (module docstring)."""

    name: str  # "builtin" | "hf-generate" | "vllm"
    shares_policy: bool  # True: samples with the trainer's own module (numerics identical, sync no-op)
    generator: Any  # torch.Generator whose state trainer checkpoints save/restore (may be None)

    def generate(
        self, prompt_token_ids: Sequence[Sequence[int]], sampling: Sampling | Sequence[Sampling]
    ) -> list[Generation]: ...

    def set_weights(self, weights: Mapping[str, Any]) -> None: ...

    def sync(self) -> None: ...

    def close(self) -> None: ...


def per_row(prompt_token_ids: Sequence[Sequence[int]], sampling: Sampling | Sequence[Sampling]) -> list[Sampling]:
    """One :class:`Sampling` per prompt (a single one applies to every row); refuses empty prompts."""
    rows = [sampling] * len(prompt_token_ids) if isinstance(sampling, Sampling) else list(sampling)
    if len(rows) != len(prompt_token_ids):
        raise InvalidArgumentError(f"got {len(prompt_token_ids)} prompts but {len(rows)} Sampling settings")
    if any(len(p) == 0 for p in prompt_token_ids):
        raise InvalidArgumentError("every prompt needs at least one token id (got an empty prompt)")
    return rows


def finish(token_ids: list[int], logprobs: list[float], row: Sampling, allowed: Any = None) -> Generation:
    """A :class:`Generation` of ``row``: cut after its first stop id, finish reason from the last token."""
    for k, token in enumerate(token_ids):
        if token in row.stop_ids:
            token_ids, logprobs = token_ids[: k + 1], logprobs[: k + 1]
            break
    token_ids, logprobs = token_ids[: row.max_new_tokens], logprobs[: row.max_new_tokens]
    reason = "stop" if token_ids and token_ids[-1] in row.stop_ids else "length"
    if row.constraint is not None and token_ids and token_ids[-1] == row.constraint.end_id:
        reason = "stop"
    return Generation(token_ids, logprobs, reason, allowed)


def pad_id_of(tokenizer: Any) -> int:
    """The id that pads prompts: the tokenizer's pad token, else its end-of-sequence token, else 0."""
    for token in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token is not None:
            return int(token)
    return 0


def left_padded(prompts: Sequence[Sequence[int]], pad_id: int, device: Any) -> tuple[Any, Any]:
    """``(ids, attention_mask)`` of ``prompts`` left-padded to one width, on ``device``."""
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        if prompt:
            ids[row, width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
            mask[row, width - len(prompt) :] = 1
    return ids.to(device), mask.to(device)


def load_weights(module: Any, weights: Mapping[str, Any]) -> None:
    """Copy ``weights`` (HF-named tensors, any dtype) into ``module``'s parameters and buffers in place;
    a name the module does not have is refused, names left out keep their values."""
    import torch

    own = module.state_dict(keep_vars=True)
    unknown = [name for name in weights if name not in own]
    if unknown:
        raise InvalidArgumentError(
            f"set_weights: {len(unknown)} names are not in the model, e.g. {unknown[:3]}; expected HF names "
            f"such as {list(own)[:2]}"
        )
    with torch.no_grad():
        for name, value in weights.items():
            target = own[name]
            if tuple(target.shape) != tuple(value.shape):
                raise InvalidArgumentError(
                    f"set_weights: {name!r} has shape {tuple(value.shape)}, the model's is {tuple(target.shape)}"
                )
            target.copy_(value.to(device=target.device, dtype=target.dtype))


#: ``GenerationConfig`` values that switch every logits processor and warper off.
NEUTRAL_GENERATION = {
    "top_k": 0,
    "top_p": 1.0,
    "typical_p": 1.0,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "min_new_tokens": 0,
}


class HFGenerateBackend:
    """transformers' ``model.generate`` behind the backend interface: the reference of the benchmarks.

    Samples with the policy module itself (``shares_policy``). Rows are grouped by their settings (one
    ``generate`` call per temperature / greedy / stop set), prompts left-padded. Sampling is plain
    ``logits / temperature`` (no top-k, top-p or penalties, whatever the model's generation config says), so
    the log-probs computed from the returned raw logits are those of the distribution sampled from. The
    random stream is drawn from :attr:`generator` (a seed per call, under ``torch.random.fork_rng``), so
    the global RNG is untouched and a checkpointed generator state replays the same samples.
    Constrained rows are refused: ``generate`` has no trie constraint (use the builtin backend).
    """

    name = "hf-generate"
    shares_policy = True

    def __init__(self, model: Any, tokenizer: Any, *, device: str, seed: int = 0):
        import torch

        from agentgym.wrappers.lm import forward_model

        self.device = device
        self.policy = model.to(device)
        self.model = forward_model(self.policy)
        self.pad_id = pad_id_of(tokenizer)
        self.generator = torch.Generator(device="cpu").manual_seed(seed)

    def generate(
        self, prompt_token_ids: Sequence[Sequence[int]], sampling: Sampling | Sequence[Sampling]
    ) -> list[Generation]:
        from agentgym.wrappers.lm import eval_mode

        rows = per_row(prompt_token_ids, sampling)
        if any(row.constraint is not None for row in rows):
            raise InvalidArgumentError(
                "the hf-generate backend has no constrained decoding (output_format='choice'): use backend='builtin'"
            )
        results: list[Generation | None] = [None] * len(rows)
        key = lambda k: (rows[k].temperature, rows[k].greedy, rows[k].stop_ids)  # noqa: E731
        with eval_mode(self.model):
            for _, group in itertools.groupby(sorted(range(len(rows)), key=key), key=key):
                group = list(group)
                out = self._generate_group([prompt_token_ids[k] for k in group], [rows[k] for k in group])
                for k, generation in zip(group, out, strict=True):
                    results[k] = generation
        return [r for r in results if r is not None]

    def _generate_group(self, prompts: list[Sequence[int]], rows: list[Sampling]) -> list[Generation]:
        import torch
        from transformers import GenerationConfig

        first = rows[0]
        ids, mask = left_padded(prompts, self.pad_id, self.device)
        config = GenerationConfig(
            max_new_tokens=max(row.max_new_tokens for row in rows),
            do_sample=not first.greedy,
            temperature=first.temperature if not first.greedy else None,
            # explicit neutral values: generate fills unset (None) ones from the model's generation config and
            # the global defaults (top_k=50), which would sample from another distribution than the recorded one
            **NEUTRAL_GENERATION,
            eos_token_id=list(first.stop_ids) or None,
            pad_token_id=self.pad_id,
            output_logits=True,
            return_dict_in_generate=True,
        )
        seed = int(torch.randint(0, 2**62, (), generator=self.generator))
        devices = [torch.device(self.device)] if torch.device(self.device).type == "cuda" else []
        own_config = self.model.generation_config  # its processors (bad words, suppressed tokens...) stay out
        self.model.generation_config = GenerationConfig()
        try:
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                torch.manual_seed(seed)
                out = self.model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        finally:
            self.model.generation_config = own_config
        new = out.sequences[:, ids.shape[1] :]
        logits = torch.stack(out.logits, dim=1).float() / first.temperature
        logp = torch.log_softmax(logits, dim=-1).gather(-1, new[:, :, None]).squeeze(-1)
        return [finish(new[b].tolist(), logp[b].tolist(), row) for b, row in enumerate(rows)]

    def set_weights(self, weights: Mapping[str, Any]) -> None:
        load_weights(self.model, weights)

    def sync(self) -> None:
        """A no-op: this backend samples with the policy module itself."""

    def close(self) -> None:
        """Nothing to release."""


def make_backend(name: str, model: Any, tokenizer: Any, *, device: str, seed: int = 0, **kwargs: Any) -> Any:
    """The backend called ``name`` (one of :data:`BACKENDS`) over the policy ``model``; ``kwargs`` go to its
    constructor. vLLM is imported only here, only when chosen: a missing one raises
    :class:`~agentgym.error.DependencyNotInstalled` with the install line of the ``vllm`` extra."""
    if name == "builtin":
        from agentgym.baselines.generation_builtin import BuiltinBackend

        return BuiltinBackend(model, tokenizer, device=device, seed=seed, **kwargs)
    if name == "hf-generate":
        return HFGenerateBackend(model, tokenizer, device=device, seed=seed, **kwargs)
    if name == "vllm":
        from agentgym.extras import needs

        with needs("vllm"):
            from agentgym.baselines.generation_vllm import VLLMBackend
        return VLLMBackend(model, tokenizer, device=device, seed=seed, **kwargs)
    raise InvalidArgumentError(f"unknown generation backend {name!r}; expected one of {list(BACKENDS)}")
