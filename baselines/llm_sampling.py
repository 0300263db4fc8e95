"""Re-scoring given tokens: :func:`token_logprobs`, the log-probs a fresh forward pass gives a sequence.

The sampling loop that lived here (``BatchedSampling``) is now the built-in generation backend,
:mod:`agentgym.baselines.generation_builtin`, behind :mod:`agentgym.baselines.generation`'s interface.
"""

from __future__ import annotations

from typing import Any

from agentgym.wrappers.lm import next_token_logprobs


def token_logprobs(model: Any, input_ids: Any, attention_mask: Any, start: int = 0, temperature: float = 1.0) -> Any:
    """``out[b, j] = log p(input_ids[b, start + j + 1] | prefix)`` under ``logits / temperature``.

    Rows are right-padded; positions follow the attention mask. Keeps the autograd graph, and computes
    the vocabulary projection only from position ``start`` on.
    """
    import torch

    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    keep = torch.arange(start, input_ids.shape[1] - 1, device=input_ids.device)
    return next_token_logprobs(model, input_ids, attention_mask, position_ids, keep=keep, temperature=temperature)
