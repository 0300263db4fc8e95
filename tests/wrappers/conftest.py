"""Fixtures for the reward-hook tests: a tiny random causal LM built locally (nothing downloaded)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory):
    """(model, tokenizer): a 0.1 M-parameter random Llama and a locally trained BPE (nothing downloaded)."""
    torch = pytest.importorskip("torch")
    from agentgym.wrappers.lm import build_tiny_causal_lm, load_causal_lm

    torch.set_num_threads(1)
    path = build_tiny_causal_lm(tmp_path_factory.mktemp("tiny_lm"))
    return load_causal_lm(path)
