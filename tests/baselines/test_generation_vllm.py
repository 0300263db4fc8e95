"""The vLLM generation backend (agentgym.baselines.generation_vllm).

Without vLLM (CPU CI never installs it): choosing it raises the install line of the [vllm] extra, and the
pieces that need no engine are checked: the model folder vLLM loads is the policy with its LoRA merged, the
sampling settings, the conversion of vLLM's outputs. With vLLM and CUDA (a GPU machine with
``pip install "agentgym-rl[vllm]"``), the engine itself: ids and log-probs equal a fresh HF forward pass
within bf16 rounding, a weight sync changes the samples, a batch of many rows of different settings.
"""

from __future__ import annotations

import importlib.util
import types

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from agentgym.baselines.generation import Sampling, make_backend  # noqa: E402
from agentgym.baselines.generation_vllm import (  # noqa: E402
    generation_of,
    refuse_constrained,
    sampling_params,
    write_model_folder,
)
from agentgym.error import DependencyNotInstalled, InvalidArgumentError  # noqa: E402
from agentgym.wrappers.lm import ActionTrie, build_tiny_causal_lm, load_causal_lm  # noqa: E402

HAS_VLLM = importlib.util.find_spec("vllm") is not None


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_causal_lm(build_tiny_causal_lm(tmp_path_factory.mktemp("tiny")))


# --------------------------------------------------------------------------- without vLLM
@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here")
def test_choosing_vllm_without_it_names_the_extra(tiny):
    model, tokenizer = tiny
    with pytest.raises(DependencyNotInstalled) as caught:
        make_backend("vllm", model, tokenizer, device="cuda", seed=0)
    message = str(caught.value)
    assert "'vllm'" in message and message.endswith('pip install "agentgym-rl[vllm]"'), message


def test_the_model_folder_is_the_policy_with_its_lora_merged(tmp_path):
    """What vLLM loads: save_pretrained of the merged weights under the plain model's names; loading it back
    gives the adapted policy's logits (fp32 here, so exactly up to float rounding)."""
    peft = pytest.importorskip("peft")
    model, tokenizer = load_causal_lm(build_tiny_causal_lm(tmp_path / "policy"))
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    policy = peft.get_peft_model(model, config)
    ids = torch.tensor([[5, 17, 42, 9, 33]])
    with torch.no_grad():
        expected = policy(input_ids=ids).logits
        plain = policy.get_base_model()
        with policy.disable_adapter():
            unadapted = plain(input_ids=ids).logits
    assert not torch.allclose(expected, unadapted, atol=1e-4), "the adapter must change the logits for this test"
    folder = tmp_path / "for-vllm"
    shapes = write_model_folder(policy, tokenizer, folder, dtype=torch.float32)
    assert not any("lora" in name or "base_layer" in name for name in shapes), sorted(shapes)[:5]
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    with torch.no_grad():
        got = reloaded(input_ids=ids).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert (folder / "tokenizer_config.json").exists()


def test_sampling_settings_become_vllm_sampling_params():
    row = Sampling(max_new_tokens=7, temperature=0.7, stop_ids=(3, 4))
    params = sampling_params(row, seed=11)
    assert params["max_tokens"] == 7 and params["temperature"] == 0.7 and params["seed"] == 11
    assert params["stop_token_ids"] == [3, 4] and params["ignore_eos"] is True  # only the row's stops end it
    assert params["logprobs"] == 1 and params["detokenize"] is False and params["top_p"] == 1.0
    assert sampling_params(Sampling(max_new_tokens=2, temperature=0.7, greedy=True), None)["temperature"] == 0.0


def test_vllm_outputs_become_generations():
    """The sampled token's log-prob is picked from each position's dict; a reply is cut after its first stop."""

    def completion(ids, reason):
        logprobs = [
            {t: types.SimpleNamespace(logprob=-0.1 * (k + 1)), 99: types.SimpleNamespace(logprob=-9.0)}
            for k, t in enumerate(ids)
        ]
        return types.SimpleNamespace(token_ids=tuple(ids), logprobs=logprobs, finish_reason=reason)

    stopped = generation_of(completion([5, 6, 2], "stop"), Sampling(max_new_tokens=8, stop_ids=(2,)))
    assert stopped.token_ids == [5, 6, 2] and stopped.finish_reason == "stop"
    assert stopped.logprobs == pytest.approx([-0.1, -0.2, -0.3])
    long = generation_of(completion([5, 6, 7], "length"), Sampling(max_new_tokens=3, stop_ids=(2,)))
    assert long.finish_reason == "length" and long.token_ids == [5, 6, 7]
    with pytest.raises(RuntimeError, match="abort"):
        generation_of(completion([5], "abort"), Sampling(max_new_tokens=3))
    with pytest.raises(RuntimeError, match="stop token"):  # a vLLM that drops the stop token is caught
        generation_of(completion([5, 6], "stop"), Sampling(max_new_tokens=8, stop_ids=(2,)))


def test_constrained_rows_are_refused_with_the_backend_to_use():
    trie = ActionTrie([[5, 2], [6, 2]], end_id=2)
    with pytest.raises(InvalidArgumentError, match="builtin"):
        refuse_constrained([Sampling(max_new_tokens=4), Sampling(max_new_tokens=4, constraint=trie)])


# --------------------------------------------------------------------------- with vLLM, on CUDA
needs_engine = pytest.mark.skipif(
    not (HAS_VLLM and torch.cuda.is_available()), reason="needs vLLM and a CUDA device ([vllm] extra)"
)


@pytest.fixture(scope="module")
def engine(tiny):
    """A small Qwen2 (head dim 64, as vLLM's attention kernels want) over the tiny tokenizer, on CUDA."""
    _, tokenizer = tiny
    torch.manual_seed(0)
    config = transformers.Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
    )
    policy = transformers.Qwen2ForCausalLM(config).to("cuda")
    backend = make_backend(
        "vllm", policy, tokenizer, device="cuda", seed=0, max_model_len=1024, engine_kwargs={"enforce_eager": True}
    )
    yield policy, backend
    backend.close()


def reference_logprobs(policy, prompt, response, temperature):
    """log_softmax(logits / T) of each response token under a fresh forward pass of the policy in bf16."""
    ids = torch.tensor([list(prompt) + list(response)], device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        logits = policy(input_ids=ids).logits[0].float()
    scores = torch.log_softmax(logits[len(prompt) - 1 : -1] / temperature, dim=-1)
    return scores, scores.gather(-1, torch.tensor(response, device="cuda")[:, None]).squeeze(-1)


def prompts_of(count, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randint(10, 400, (int(torch.randint(3, 40, (), generator=g)),), generator=g).tolist()
        for _ in range(count)
    ]


@needs_engine
def test_ids_and_logprobs_equal_a_fresh_forward_pass(engine):
    policy, backend = engine
    prompts = prompts_of(8)
    sampled = backend.generate(prompts, Sampling(max_new_tokens=12, temperature=0.7))
    for prompt, g in zip(prompts, sampled, strict=True):
        assert len(g.token_ids) == 12 and g.finish_reason == "length"
        _, expected = reference_logprobs(policy, prompt, g.token_ids, 0.7)
        torch.testing.assert_close(torch.tensor(g.logprobs), expected.cpu(), atol=0.05, rtol=0.02)
    greedy = backend.generate(prompts, Sampling(max_new_tokens=12, greedy=True))
    for prompt, g in zip(prompts, greedy, strict=True):
        scores, chosen = reference_logprobs(policy, prompt, g.token_ids, 1.0)
        # argmax up to bf16 near-ties: each chosen token is within rounding of the best one
        assert bool((scores.max(-1).values - chosen <= 0.05).all()), (g.token_ids, (scores.max(-1).values - chosen))


@needs_engine
def test_a_batch_of_many_rows_with_their_own_settings(engine):
    _, backend = engine
    prompts = prompts_of(300, seed=1)
    rows = [
        Sampling(max_new_tokens=1 + k % 9, temperature=0.5 + (k % 3) * 0.5, stop_ids=(k % 50 + 10,)) for k in range(300)
    ]
    out = backend.generate(prompts, rows)
    assert len(out) == 300
    for g, row in zip(out, rows, strict=True):
        assert 1 <= len(g.token_ids) <= row.max_new_tokens and len(g.logprobs) == len(g.token_ids)
        assert (g.finish_reason == "stop") == (g.token_ids[-1] in row.stop_ids)
        assert not set(g.token_ids[:-1]) & set(row.stop_ids)  # ends at the first stop


@needs_engine
def test_the_same_generator_state_replays_the_same_samples(engine):
    _, backend = engine
    prompts = prompts_of(6, seed=2)
    state = backend.generator.get_state()
    first = backend.generate(prompts, Sampling(max_new_tokens=10))
    other = backend.generate(prompts, Sampling(max_new_tokens=10))  # the stream moved on: other seeds
    backend.generator.set_state(state)
    again = backend.generate(prompts, Sampling(max_new_tokens=10))
    assert [g.token_ids for g in again] == [g.token_ids for g in first]
    assert [g.token_ids for g in other] != [g.token_ids for g in first]


@needs_engine
def test_sync_changes_the_outputs_to_those_of_the_new_weights(engine):
    policy, backend = engine
    prompts = prompts_of(8, seed=3)
    before = backend.generate(prompts, Sampling(max_new_tokens=8, greedy=True))
    saved = {n: p.detach().clone() for n, p in policy.named_parameters()}
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    try:
        backend.sync()
        after = backend.generate(prompts, Sampling(max_new_tokens=8, greedy=True))
        assert [g.token_ids for g in after] != [g.token_ids for g in before]
        for prompt, g in zip(prompts, after, strict=True):  # the new samples are the new weights' (no stale KV)
            scores, chosen = reference_logprobs(policy, prompt, g.token_ids, 1.0)
            assert bool((scores.max(-1).values - chosen <= 0.05).all())
        with pytest.raises(InvalidArgumentError, match="not a weight"):
            backend.set_weights({"no.such.weight": torch.zeros(2)})
    finally:
        with torch.no_grad():
            for n, p in policy.named_parameters():
                p.copy_(saved[n])
        backend.sync()
