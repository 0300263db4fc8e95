"""The vLLM generation backend: rollouts on vLLM's engine (paged KV cache, continuous batching, CUDA graphs).

An optional extra, for a GPU machine: ``pip install "agentgym-rl[vllm]"`` (it takes the place of ``[train]``
there: vLLM pins its own CUDA torch and transformers; ``scripts/trainer_gpu_check.py`` gives the whole
command). Chosen with ``make_backend("vllm", ...)`` / ``LLMAgent(..., backend="vllm")``, which imports this
module only then, behind ``agentgym.extras.needs("vllm")``; ``vllm`` itself is imported inside the class.

How it meets the backend contract (:mod:`agentgym.baselines.generation`):

* **Token ids in, token ids out.** Prompts go in as ``{"prompt_token_ids": ...}`` (vLLM's ``TokensPrompt``),
  the engine starts with ``skip_tokenizer_init`` and ``detokenize=False``: nothing is re-tokenized.
* **Log-probs of the distribution sampled from.** The engine runs with
  ``logprobs_mode="processed_logprobs"``: the log-prob vLLM returns for the sampled token
  (``SamplingParams(logprobs=1)``) is taken after temperature (no top-k, top-p or penalties are set, and
  ``generation_config="vllm"`` keeps the model folder's generation config out), i.e. ``log_softmax(logits /
  temperature)``, as the builtin backend records. Greedy rows go in at temperature 0, where vLLM applies no
  temperature: their log-probs are those of ``log_softmax(logits)`` whatever ``Sampling.temperature`` says.
  The weights run in bf16, so log-probs differ from an fp32 training forward by bf16 rounding: the trainer
  recomputes pi_old with its own forward (``old_logprobs="auto"`` does for a backend that does not share the
  policy, :func:`~agentgym.baselines.ppo.recomputes_old`) rather than trusting them.
* **Stops.** ``stop_token_ids`` = the row's ``stop_ids``, ``ignore_eos=True`` (only the row's stop ids end
  it), and the stop token is kept in ``token_ids``; vLLM's finish reason (``"stop"`` / ``"length"``) is checked
  against the ids (a vLLM that dropped the stop token would be caught, not silently mislabelled).
* **Seeds.** Each request gets ``SamplingParams(seed=...)`` drawn from :attr:`generator` (a CPU
  ``torch.Generator`` seeded with ``seed``), so a row's sample does not depend on what else is in the
  batch, and a checkpointed generator state replays the same samples (``per_request_seeds=False`` leaves
  sampling to the engine's own stream, a little faster, not reproducible across batch compositions).
* **Shared prompts once.** ``enable_prefix_caching``: the G rollouts of a group, and every turn's
  growing history, reuse the KV blocks of the prefix they share.
* **Constrained rows** (``Sampling.constraint``, the choice format) are refused: use the builtin backend.

Weights. The engine keeps its own bf16 copy of the policy (``shares_policy`` False). At construction the
policy (LoRA merged, :func:`~agentgym.baselines.generation_builtin.merged_state_dict`) is written once, bf16,
to a temporary folder (``save_pretrained``) that vLLM loads. :meth:`VLLMBackend.sync` /
:meth:`VLLMBackend.set_weights` push new weights in through vLLM's worker-extension route: the engine is
started with ``worker_extension_cls`` = :class:`VLLMWorkerWeights`, a mixin vLLM adds to its GPU worker; the
backend writes the (merged, HF-named) tensors to one file in that folder and calls
``LLM.collective_rpc("agentgym_load_weights", args=(path,))``, which runs the model's own ``load_weights``
(vLLM's name mapping: fused qkv / gate-up projections, tied embeddings) in the worker process, then
``LLM.reset_prefix_cache()`` so no KV block computed with the old weights is reused. A file rather than
tensors in the RPC: it works whether or not the engine core runs in its own process (vLLM's default), and
needs no insecure (pickle) serialization; its cost is one bf16 write and read of the weights per sync.

Example (on a CUDA machine with the extra installed):
    >>> from agentgym.baselines.generation import Sampling, make_backend
    >>> backend = make_backend("vllm", model, tokenizer, device="cuda", seed=0)         # doctest: +SKIP
    >>> [g] = backend.generate([[1, 2, 3]], Sampling(max_new_tokens=8, stop_ids=(0,)))  # doctest: +SKIP
    >>> backend.sync()  # after an optimizer step                                       # doctest: +SKIP
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agentgym.baselines.generation import Generation, Sampling, finish, per_row
from agentgym.baselines.generation_builtin import merged_state_dict
from agentgym.error import InvalidArgumentError
from agentgym.wrappers.lm import forward_model

#: The file :meth:`VLLMBackend.set_weights` writes in the model folder for the worker to load.
WEIGHTS_FILE = "agentgym_weights.pt"


class VLLMWorkerWeights:
    """Mixed into vLLM's GPU worker class (``worker_extension_cls``); runs in the engine's worker process.

    ``self.model_runner`` is the worker's (vLLM sets it up); its ``model`` is vLLM's module of the
    architecture, whose ``load_weights`` takes ``(HF name, tensor)`` pairs."""

    def agentgym_load_weights(self, path: str) -> int:
        """Load the tensors saved at ``path`` (a dict of HF names) into the running model; their count."""
        import torch

        weights = torch.load(path, map_location="cpu", weights_only=True)
        runner = self.model_runner  # type: ignore[attr-defined]
        model = runner.get_model() if hasattr(runner, "get_model") else runner.model
        model.load_weights(weights=list(weights.items()))
        torch.cuda.synchronize()
        return len(weights)


def write_model_folder(policy: Any, tokenizer: Any, folder: str | Path, dtype: Any = None) -> dict[str, tuple]:
    """Save the policy, LoRA merged, as a plain HF model folder (config, weights in ``dtype``, tokenizer)
    that vLLM (or ``from_pretrained``) loads; returns each weight's name -> shape."""
    import torch

    dtype = dtype or torch.bfloat16
    weights = {name: t.detach().to("cpu", dtype).contiguous() for name, t in merged_state_dict(policy).items()}
    forward_model(policy).save_pretrained(str(folder), state_dict=weights)
    tokenizer.save_pretrained(str(folder))
    return {name: tuple(t.shape) for name, t in weights.items()}


def sampling_params(row: Sampling, seed: int | None) -> dict[str, Any]:
    """The ``vllm.SamplingParams`` keywords of one row (module docstring)."""
    return dict(
        max_tokens=row.max_new_tokens,
        temperature=0.0 if row.greedy else row.temperature,
        top_p=1.0,
        stop_token_ids=list(row.stop_ids),
        ignore_eos=True,
        logprobs=1,
        detokenize=False,
        seed=seed,
    )


def refuse_constrained(rows: Sequence[Sampling]) -> None:
    if any(row.constraint is not None for row in rows):
        raise InvalidArgumentError(
            "the vllm backend has no choice-format constrained decoding (Sampling.constraint, "
            "output_format='choice'): use backend='builtin' for constrained rows"
        )


def generation_of(completion: Any, row: Sampling) -> Generation:
    """Our :class:`Generation` of one vLLM ``CompletionOutput``: its ids, each sampled token's log-prob."""
    if completion.finish_reason not in ("stop", "length"):
        raise RuntimeError(f"vLLM ended a request with finish_reason={completion.finish_reason!r} (aborted?)")
    ids = [int(token) for token in completion.token_ids]
    logprobs = [float(position[token].logprob) for position, token in zip(completion.logprobs, ids, strict=True)]
    generation = finish(ids, logprobs, row)
    if generation.finish_reason != completion.finish_reason:  # vLLM left the stop token out, or stopped early
        raise RuntimeError(
            f"vLLM says finish_reason={completion.finish_reason!r} for token ids {ids[-5:]} (stop ids "
            f"{list(row.stop_ids)}, max_new_tokens {row.max_new_tokens}): this vLLM version does not keep the "
            "stop token in token_ids as the backend expects"
        )
    return generation


class VLLMBackend:
    """The vLLM backend (module docstring).

    Args:
        model, tokenizer: the policy (a causal LM, optionally a peft model) and its tokenizer.
        device: ``"cuda"`` (vLLM runs on the first visible device: choose it with ``CUDA_VISIBLE_DEVICES``).
        seed: seeds :attr:`generator` and the engine.
        gpu_memory_utilization: the share of the GPU's memory the engine takes (weights + KV cache); the
            rest stays for the trainer's policy, optimizer and activations on the same device.
        max_model_len: the longest prompt + reply the engine admits (None: the model config's).
        per_request_seeds: draw one seed per request from :attr:`generator` (module docstring).
        folder: where to write the model folder (None: a temporary one, removed by :meth:`close`).
        engine_kwargs: more ``vllm.LLM`` keywords (``enforce_eager``, ``max_num_seqs``, ...).
    """

    name = "vllm"
    shares_policy = False

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        device: str,
        seed: int = 0,
        gpu_memory_utilization: float = 0.3,
        max_model_len: int | None = None,
        per_request_seeds: bool = True,
        folder: str | Path | None = None,
        engine_kwargs: Mapping[str, Any] | None = None,
    ):
        import torch

        if str(device) not in ("cuda", "cuda:0"):
            raise InvalidArgumentError(
                f"the vllm backend runs on the first visible CUDA device: device must be 'cuda' or 'cuda:0', "
                f"got {device!r} (pick the GPU with CUDA_VISIBLE_DEVICES)"
            )
        if not 0 < gpu_memory_utilization < 1:
            raise InvalidArgumentError(f"gpu_memory_utilization must be in (0, 1), got {gpu_memory_utilization}")
        from vllm import LLM

        self.policy = model
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.per_request_seeds = per_request_seeds
        self._own_folder = folder is None
        self.folder = Path(folder or tempfile.mkdtemp(prefix="agentgym-vllm-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self._shapes = write_model_folder(model, tokenizer, self.folder)
        self.llm = LLM(
            model=str(self.folder),
            dtype="bfloat16",
            seed=seed,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            enable_prefix_caching=True,
            logprobs_mode="processed_logprobs",
            skip_tokenizer_init=True,
            generation_config="vllm",
            worker_extension_cls=f"{VLLMWorkerWeights.__module__}.{VLLMWorkerWeights.__qualname__}",
            **dict(engine_kwargs or {}),
        )

    # ------------------------------------------------------------------ generation
    def generate(
        self, prompt_token_ids: Sequence[Sequence[int]], sampling: Sampling | Sequence[Sampling]
    ) -> list[Generation]:
        """Sample a reply for every prompt in one ``LLM.generate`` call (the engine schedules the batch)."""
        import torch
        from vllm import SamplingParams

        rows = per_row(prompt_token_ids, sampling)
        refuse_constrained(rows)
        if not rows:
            return []
        seeds: list[int | None] = [None] * len(rows)
        if self.per_request_seeds:
            seeds = torch.randint(0, 2**31 - 1, (len(rows),), generator=self.generator).tolist()
        params = [SamplingParams(**sampling_params(row, seed)) for row, seed in zip(rows, seeds, strict=True)]
        prompts = [{"prompt_token_ids": [int(t) for t in p]} for p in prompt_token_ids]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [generation_of(out.outputs[0], row) for out, row in zip(outputs, rows, strict=True)]

    # ------------------------------------------------------------------ weights
    def set_weights(self, weights: Mapping[str, Any]) -> None:
        """Load a merged, HF-named state dict (all or some of the names) into the engine (module docstring)."""
        import torch

        for name, value in weights.items():
            if name not in self._shapes:
                raise InvalidArgumentError(
                    f"set_weights: {name!r} is not a weight of the model; expected HF names such as "
                    f"{list(self._shapes)[:2]}"
                )
            if tuple(value.shape) != self._shapes[name]:
                raise InvalidArgumentError(
                    f"set_weights: {name!r} has shape {tuple(value.shape)}, the model's is {self._shapes[name]}"
                )
        path = self.folder / WEIGHTS_FILE
        torch.save({n: v.detach().to("cpu", torch.bfloat16).contiguous() for n, v in weights.items()}, path)
        try:
            self.llm.collective_rpc("agentgym_load_weights", args=(str(path),))
        finally:
            path.unlink(missing_ok=True)
        self.llm.reset_prefix_cache()  # KV blocks computed with the old weights must not be reused

    def sync(self) -> None:
        """Push the policy module's current weights (LoRA merged) into the engine."""
        self.set_weights(merged_state_dict(self.policy))

    def close(self) -> None:
        """Stop the engine, free its GPU memory and remove the temporary model folder."""
        import gc

        import torch

        llm = self.__dict__.pop("llm", None)
        if llm is not None:
            core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
            if hasattr(core, "shutdown"):
                core.shutdown()
            del llm
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)
