"""The generation backends on a tiny random model: exact ids and log-probs, finished rows leaving the batch,
shared prompts prefilled once, constrained rows, weight sync, and the agent's append prompt mode."""

from __future__ import annotations

import dataclasses
import random

import pytest

torch = pytest.importorskip("torch")

from llm_helpers import SayEnv  # noqa: E402

from agentgym.baselines.generation import BACKENDS, GenerationBackend, Sampling, make_backend  # noqa: E402
from agentgym.baselines.generation_builtin import BuiltinBackend, merged_state_dict  # noqa: E402
from agentgym.baselines.llm_agent import LLMAgent  # noqa: E402
from agentgym.baselines.token_chat import token_drift  # noqa: E402
from agentgym.error import DependencyNotInstalled, InvalidArgumentError  # noqa: E402
from agentgym.rollout import group_specs, rollout  # noqa: E402
from agentgym.wrappers.lm import ActionTrie, build_tiny_causal_lm, load_causal_lm  # noqa: E402

ATOL = 1e-4


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.set_num_threads(1)
    return load_causal_lm(build_tiny_causal_lm(tmp_path_factory.mktemp("tiny_generation_lm")))


@pytest.fixture
def model(tiny):
    """A private copy of the tiny model, for tests that change weights."""
    import copy

    return copy.deepcopy(tiny[0])


def _prompts(tokenizer, n, seed=0, lengths=(3, 20)):
    rng = random.Random(seed)
    vocab = len(tokenizer)
    return [[rng.randrange(3, vocab) for _ in range(rng.randint(*lengths))] for _ in range(n)]


def _fresh(model, prompt, response, temperature=1.0, allowed=None):
    """Log-probs of ``response`` after ``prompt`` from one plain forward pass over the whole sequence."""
    ids = torch.tensor([list(prompt) + list(response)])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float() / temperature
    scores = logits[len(prompt) - 1 : len(prompt) - 1 + len(response)]
    if allowed is not None:
        mask = torch.zeros_like(scores, dtype=torch.bool)
        for j, ids_j in enumerate(allowed):
            mask[j, ids_j] = True
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.log_softmax(scores, -1).gather(-1, torch.tensor(response)[:, None]).squeeze(-1), scores


def _check_exact(model, prompts, rows, out, temperature):
    for prompt, row, g in zip(prompts, rows, out, strict=True):
        assert 1 <= len(g.token_ids) == len(g.logprobs) <= row.max_new_tokens
        assert not set(g.token_ids[:-1]) & set(row.stop_ids), "a row went on after its stop token"
        assert g.finish_reason == ("stop" if g.token_ids[-1] in row.stop_ids else "length")
        assert g.finish_reason == "stop" or len(g.token_ids) == row.max_new_tokens
        fresh, scores = _fresh(model, prompt, g.token_ids, temperature)
        assert g.logprobs == pytest.approx(fresh.tolist(), abs=ATOL)
        if row.greedy:
            assert g.token_ids == scores.argmax(-1).tolist()


@pytest.mark.parametrize("backend", ["builtin", "hf-generate"])
@pytest.mark.parametrize("greedy", [False, True])
def test_ids_and_logprobs_equal_a_fresh_forward_pass(tiny, backend, greedy):
    """Mixed-length prompts, rows with different length limits and a stop set that ends rows at different
    steps: every row's ids and log-probs are what one forward pass over prompt + reply gives."""
    model, tokenizer = tiny
    generator = make_backend(backend, model, tokenizer, device="cpu", seed=1)
    assert isinstance(generator, GenerationBackend) and generator.shares_policy
    prompts = _prompts(tokenizer, 10)
    stops = tuple(range(3, len(tokenizer), 9))  # ~11% of the vocabulary
    temperature = 0.8
    rows = [
        Sampling(max_new_tokens=3 + 2 * k, temperature=temperature, greedy=greedy, stop_ids=stops) for k in range(10)
    ]
    if greedy:  # argmax avoids a random stop set: stop at tokens the greedy replies reach at step 2 or 3
        probe = generator.generate(prompts, Sampling(max_new_tokens=4, temperature=temperature, greedy=True))
        stops = tuple({g.token_ids[2 + k % 2] for k, g in enumerate(probe[::3])})
        rows = [dataclasses.replace(row, stop_ids=stops) for row in rows]
    out = generator.generate(prompts, rows)
    _check_exact(model, prompts, rows, out, temperature)
    assert len({len(g.token_ids) for g in out}) > 2 and {g.finish_reason for g in out} == {"stop", "length"}


def test_hf_generate_ignores_the_models_own_generation_settings(model, tiny):
    """A model folder's generation config (here top_k=1, a repetition penalty) must not change what the
    reference samples from: the recorded log-probs are those of plain ``logits / temperature``."""
    model.generation_config.top_k, model.generation_config.repetition_penalty = 1, 2.0
    backend = make_backend("hf-generate", model, tiny[1], device="cpu", seed=0)
    prompts = _prompts(tiny[1], 6, seed=11)
    sampled = backend.generate(prompts, Sampling(max_new_tokens=8))
    greedy = backend.generate(prompts, Sampling(max_new_tokens=8, greedy=True))
    assert [g.token_ids for g in sampled] != [g.token_ids for g in greedy]  # top_k=1 would make them equal
    ranks = []
    for prompt, g in zip(prompts, sampled, strict=True):
        _, scores = _fresh(model, prompt, g.token_ids)
        ranks += [int((row > row[t]).sum()) for row, t in zip(scores, g.token_ids, strict=True)]
    assert max(ranks) >= 50  # nor the global default top_k=50 (a near-uniform random model samples far down)
    _check_exact(model, prompts, [Sampling(max_new_tokens=8, greedy=True)] * 6, greedy, 1.0)  # no penalty
    assert model.generation_config.top_k == 1  # the model's own config is left as it was


def test_the_generator_state_replays_the_samples(tiny):
    for name in ("builtin", "hf-generate"):
        backend = make_backend(name, *tiny, device="cpu", seed=3)
        prompts, row = _prompts(tiny[1], 4, seed=2), Sampling(8)
        state = backend.generator.get_state()
        first = backend.generate(prompts, row)
        second = backend.generate(prompts, row)
        backend.generator.set_state(state)
        again = backend.generate(prompts, row)
        assert [g.token_ids for g in again] == [g.token_ids for g in first] != [g.token_ids for g in second]


def _batch_sizes(model):
    sizes = []
    handle = model.register_forward_hook(
        lambda module, args, kwargs, out: sizes.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    return sizes, handle


def test_finished_rows_leave_the_batch(tiny):
    model, tokenizer = tiny
    prompts = _prompts(tokenizer, 8, seed=4)
    rows = [Sampling(max_new_tokens=2 * (k + 1), greedy=True) for k in range(8)]  # 2, 4, ..., 16 tokens
    sizes, handle = _batch_sizes(model)
    try:
        compacting = BuiltinBackend(model, tokenizer, device="cpu", check_every=4)
        out = compacting.generate(prompts, rows)
        shrinking = list(sizes)
        sizes.clear()
        whole = BuiltinBackend(model, tokenizer, device="cpu", compact_at=1.0).generate(prompts, rows)
    finally:
        handle.remove()
    decode = shrinking[1:]  # after the prefill
    assert decode == sorted(decode, reverse=True) and decode[0] == 8 and decode[-1] < 4, shrinking
    assert sum(decode) < 8 * 15 == sum(sizes[1:])  # without compaction every row runs to the longest
    assert [len(g.token_ids) for g in out] == [2 * (k + 1) for k in range(8)]
    for a, b in zip(out, whole, strict=True):
        assert a.token_ids == b.token_ids and a.logprobs == pytest.approx(b.logprobs, abs=ATOL)
    _check_exact(model, prompts, rows, out, 1.0)


def test_identical_prompts_are_prefilled_once(tiny):
    model, tokenizer = tiny
    shared, other = _prompts(tokenizer, 2, seed=5)
    prompts = [shared, other, shared, shared, other]
    row = Sampling(max_new_tokens=6, greedy=True)
    sizes, handle = _batch_sizes(model)
    try:
        backend = BuiltinBackend(model, tokenizer, device="cpu")
        together = backend.generate(prompts, row)
        first_forward = sizes[0]
        apart = [backend.generate([p], row)[0] for p in prompts]
    finally:
        handle.remove()
    assert first_forward == 2  # two distinct prompts, five rows
    for a, b in zip(together, apart, strict=True):
        assert a.token_ids == b.token_ids and a.logprobs == pytest.approx(b.logprobs, abs=ATOL)
    sampled = backend.generate(prompts, Sampling(max_new_tokens=6))
    _check_exact(model, prompts, [Sampling(max_new_tokens=6)] * 5, sampled, 1.0)
    assert len({tuple(sampled[k].token_ids) for k in (0, 2, 3)}) > 1  # each row draws its own reply


def test_system_prefix_store_serves_every_format(tiny):
    """Prompts that open with the same chat message reuse its stored KV, free-text rows included, and give
    the replies and log-probs of whole-prompt forwards."""
    model, tokenizer = tiny
    system = tokenizer.apply_chat_template([{"role": "system", "content": "You act."}], tokenize=False)
    head = tokenizer(system, add_special_tokens=False)["input_ids"]
    prompts = [head + rest for rest in _prompts(tokenizer, 4, seed=6)]
    row = Sampling(max_new_tokens=5, greedy=True, stop_ids=(0,))
    reused = BuiltinBackend(model, tokenizer, device="cpu")
    whole = BuiltinBackend(model, tokenizer, device="cpu", prefix_reuse=False)
    a, b = reused.generate(prompts, row), whole.generate(prompts, row)
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert list(reused._prefix_kv) == [tuple(head[: head.index(end) + 1])] and not whole._prefix_kv
    for x, y in zip(a, b, strict=True):
        assert x.token_ids == y.token_ids and x.logprobs == pytest.approx(y.logprobs, abs=ATOL)
    reused.sync()
    assert not reused._prefix_kv  # new weights: the store is emptied


def test_constrained_rows_follow_the_trie_with_masked_logprobs(tiny):
    """Constrained and free rows in one batch: a constrained reply is one of its trie's paths, the allowed
    ids of each position are the trie's, and its log-probs are the masked distribution's."""
    model, tokenizer = tiny
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    actions = [tokenizer(a, add_special_tokens=False)["input_ids"] for a in ("take", "take coin", "go east", "look")]
    trie = ActionTrie(actions, end)
    backend = BuiltinBackend(model, tokenizer, device="cpu", seed=2)
    prompts = _prompts(tokenizer, 6, seed=7)
    rows = [
        Sampling(max_new_tokens=trie.depth, temperature=0.7, stop_ids=(end,), constraint=trie if k % 2 == 0 else None)
        for k in range(6)
    ]
    for _ in range(5):
        out = backend.generate(prompts, rows)
        for prompt, row, g in zip(prompts, rows, out, strict=True):
            if row.constraint is None:
                assert g.allowed_token_ids is None
                continue
            assert g.token_ids[:-1] in actions and g.token_ids[-1] == end and g.finish_reason == "stop"
            assert g.allowed_token_ids == [trie.allowed(g.token_ids[:j]) for j in range(len(g.token_ids))]
            fresh, _ = _fresh(model, prompt, g.token_ids, 0.7, g.allowed_token_ids)
            assert g.logprobs == pytest.approx(fresh.tolist(), abs=ATOL)
    with pytest.raises(InvalidArgumentError, match="constrained"):
        make_backend("hf-generate", model, tokenizer, device="cpu").generate(prompts[:1], rows[0])


def _lora(model):
    from peft import LoraConfig, get_peft_model

    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return peft


def test_own_copy_samples_the_synced_weights(model, tiny):
    """A backend with its own copy (what CUDA bf16 does; fp32 here) samples with the weights of the last
    sync: a changed policy changes nothing until sync(), then the outputs are the new policy's;
    set_weights loads a state dict."""
    tokenizer = tiny[1]
    policy = _lora(model)
    backend = BuiltinBackend(policy, tokenizer, device="cpu", own_copy=True)
    assert not backend.shares_policy and backend.model is not policy.get_base_model()
    prompts, row = _prompts(tokenizer, 3, seed=8), Sampling(max_new_tokens=6, greedy=True)
    before = backend.generate(prompts, row)
    _check_exact(policy, prompts, [row] * 3, before, 1.0)  # LoRA merged into the copy
    original = {k: v.clone() for k, v in merged_state_dict(policy).items()}
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    stale = backend.generate(prompts, row)
    assert [g.logprobs for g in stale] == [g.logprobs for g in before]
    backend.sync()
    synced = backend.generate(prompts, row)
    assert [g.logprobs for g in synced] != [g.logprobs for g in before]
    _check_exact(policy, prompts, [row] * 3, synced, 1.0)
    backend.set_weights(original)
    restored = backend.generate(prompts, row)
    for a, b in zip(restored, before, strict=True):
        assert a.token_ids == b.token_ids and a.logprobs == pytest.approx(b.logprobs, abs=ATOL)
    with pytest.raises(InvalidArgumentError, match="not in the model"):
        backend.set_weights({"no.such.weight": torch.zeros(1)})


def test_shared_backend_follows_in_place_updates(model, tiny):
    backend = BuiltinBackend(model, tiny[1], device="cpu")
    prompts, row = _prompts(tiny[1], 2, seed=9), Sampling(max_new_tokens=4, greedy=True)
    before = backend.generate(prompts, row)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    after = backend.generate(prompts, row)
    assert [g.logprobs for g in after] != [g.logprobs for g in before]
    _check_exact(model, prompts, [row] * 2, after, 1.0)


def test_backend_names_and_settings_are_checked(tiny):
    assert BACKENDS == ("builtin", "hf-generate", "vllm")
    with pytest.raises(InvalidArgumentError, match="unknown generation backend"):
        make_backend("nope", *tiny, device="cpu")
    with pytest.raises(InvalidArgumentError, match="temperature"):
        Sampling(max_new_tokens=4, temperature=0.0)
    with pytest.raises(InvalidArgumentError, match="2 prompts but 1"):
        make_backend("builtin", *tiny, device="cpu").generate([[5], [6]], [Sampling(2)])


def test_vllm_without_vllm_names_the_extra(tiny):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed")
    with pytest.raises(DependencyNotInstalled, match=r"agentgym-rl\[vllm\]"):
        make_backend("vllm", *tiny, device="cpu")


def _play(agent, turns=3, groups=2, group_size=2):
    specs = group_specs([f"say/{k}" for k in range(groups)], list(range(groups)), group_size)
    return rollout(lambda: SayEnv(turns=turns), agent, specs, num_workers=len(specs), in_process=True)


def test_append_mode_prompts_extend_the_previous_prompt_and_reply(tiny):
    model, tokenizer = tiny
    agent = LLMAgent(model, tokenizer, device="cpu", output_format="action", max_new_tokens=5, prompt_mode="append")
    trajectories = _play(agent)
    assert agent.config()["prompt_mode"] == "append"
    for t in trajectories:
        assert len(t.turns) == 3 and token_drift(t) == (2, 0)
        for before, now in zip(t.turns, t.turns[1:]):
            history = before.prompt_token_ids + before.response_token_ids
            assert now.prompt_token_ids[: len(history)] == history and len(now.prompt_token_ids) > len(history)
            assert not now.agent_info["prompt_truncated"]
            assert tokenizer.decode(now.prompt_token_ids).endswith("<|im_start|>assistant\n")
            fresh, _ = _fresh(model, now.prompt_token_ids, now.response_token_ids)
            assert now.response_logprobs == pytest.approx(fresh.tolist(), abs=2e-4)
    window = LLMAgent(model, tokenizer, device="cpu", output_format="action", max_new_tokens=5)
    assert window.config()["prompt_mode"] == "window"
    first = window.act("Round 0. Say a word.", {"goal": "Say a word that starts with the letter c."}, episode_id="w")
    again = agent.act("Round 0. Say a word.", {"goal": "Say a word that starts with the letter c."}, episode_id="a")
    assert first.prompt_token_ids == again.prompt_token_ids  # turn 0 is the same in both modes


def test_append_mode_falls_back_to_the_window_when_too_long(tiny):
    model, tokenizer = tiny
    probe = LLMAgent(model, tokenizer, device="cpu", output_format="action", max_new_tokens=5, prompt_mode="append")
    first = len(_play(probe, turns=1, groups=1, group_size=1)[0].turns[0].prompt_token_ids)
    agent = LLMAgent(
        model,
        tokenizer,
        device="cpu",
        output_format="action",
        max_new_tokens=5,
        prompt_mode="append",
        max_prompt_tokens=first + 30,
    )
    (t,) = _play(agent, turns=3, groups=1, group_size=1)
    flags = [turn.agent_info["prompt_truncated"] for turn in t.turns]
    assert flags[0] is False and any(flags) and all(len(turn.prompt_token_ids) <= first + 30 for turn in t.turns)
    assert token_drift(t)[1] >= 1  # the fallback turn re-renders the history: the meter counts it


def test_agent_on_the_hf_generate_backend(tiny):
    model, tokenizer = tiny
    agent = LLMAgent(model, tokenizer, device="cpu", output_format="action", max_new_tokens=4, backend="hf-generate")
    assert agent.backend.name == "hf-generate" and agent.generator is agent.backend.generator
    (t,) = _play(agent, turns=2, groups=1, group_size=1)
    for turn in t.turns:
        fresh, _ = _fresh(model, turn.prompt_token_ids, turn.response_token_ids)
        assert turn.response_logprobs == pytest.approx(fresh.tolist(), abs=2e-4)
    responses, logprobs = agent.generate([t.turns[0].prompt_token_ids], [3])
    assert len(responses[0]) == len(logprobs[0]) <= 3


def _input_lengths(model):
    lengths = []
    handle = model.register_forward_hook(
        lambda module, args, kwargs, out: lengths.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    return lengths, handle


def test_append_mode_turns_start_from_the_previous_turns_kv(tiny):
    """A 4-turn append-mode conversation over 4 episodes in one batch: every turn after the first starts
    from the stored KV of the previous prompt + reply (all but its last token), and ids and log-probs equal
    a fresh forward over the whole prompt + reply, and those of a backend that reuses nothing."""
    model, tokenizer = tiny

    def play(**kwargs):
        backend = BuiltinBackend(model, tokenizer, device="cpu", seed=5, **kwargs)
        agent = LLMAgent(
            model,
            tokenizer,
            device="cpu",
            output_format="action",
            max_new_tokens=5,
            prompt_mode="append",
            backend=backend,
        )
        return _play(agent, turns=4), backend

    (reused, backend), (plain, off) = play(), play(prefix_reuse=False)
    expected = 0
    for t, u in zip(reused, plain, strict=True):
        assert len(t.turns) == 4 and token_drift(t) == (3, 0)
        for before, turn, other in zip([None, *t.turns], t.turns, u.turns):
            assert turn.response_token_ids == other.response_token_ids
            assert turn.response_logprobs == pytest.approx(other.response_logprobs, abs=ATOL)
            fresh, _ = _fresh(model, turn.prompt_token_ids, turn.response_token_ids)
            assert turn.response_logprobs == pytest.approx(fresh.tolist(), abs=ATOL)
            if before is not None:
                expected += len(before.prompt_token_ids) + len(before.response_token_ids) - 1
    assert off.prefill_tokens["reused"] == 0
    system = len(next(iter(backend._prefix_kv)))
    # turn 0: a group's identical prompts are prefilled once, each from the stored system message only
    openings = {tuple(t.turns[0].prompt_token_ids) for t in reused}
    assert len(openings) == 2 and backend.prefill_tokens["reused"] == expected + 2 * system
    total = sum(map(len, openings)) + sum(len(turn.prompt_token_ids) for t in reused for turn in t.turns[1:])
    assert backend.prefill_tokens["computed"] + backend.prefill_tokens["reused"] == total + system


def test_prefill_computes_only_the_new_tokens_in_mixed_batches(model, tiny):
    tokenizer = tiny[1]
    backend = BuiltinBackend(model, tokenizer, device="cpu", seed=2)
    first, other = _prompts(tokenizer, 2, seed=12, lengths=(15, 15))
    row = Sampling(max_new_tokens=4)
    (g,) = backend.generate([first], row)
    extra = _prompts(tokenizer, 1, seed=13, lengths=(5, 5))[0]
    follow = first + g.token_ids + extra
    lengths, handle = _input_lengths(model)
    try:
        (h,) = backend.generate([follow], row)
        alone = lengths[0]
        lengths.clear()
        (g2,) = backend.generate([other], row)  # a second sequence to extend
        lengths.clear()
        mixed = [follow + h.token_ids + extra, other + g2.token_ids + extra, _prompts(tokenizer, 1, seed=14)[0]]
        out = backend.generate(mixed, [row] * 3)
        mixed_width = lengths[0]
    finally:
        handle.remove()
    assert alone == len(extra) + 1  # the reply's last token (never fed) and the new ids
    assert mixed_width == max(len(extra) + 1, len(mixed[2]))  # the row without a stored start runs whole
    _check_exact(model, [follow], [row], [h], 1.0)
    _check_exact(model, mixed, [row] * 3, out, 1.0)
    assert len(backend._sequences) == 3  # the extended sequences were consumed, the new ones stored
    with torch.no_grad():
        next(model.parameters()).add_(0.0)  # an in-place update, as optimizer.step() makes
    lengths, handle = _input_lengths(model)
    try:
        again = backend.generate([mixed[0] + out[0].token_ids + extra], [row])
    finally:
        handle.remove()
    assert lengths[0] == len(mixed[0]) + len(out[0].token_ids) + len(extra)  # new weights: nothing reused
    _check_exact(model, [mixed[0] + out[0].token_ids + extra], [row], again, 1.0)
    assert len(backend._sequences) == 1
    backend.sync()
    assert not backend._sequences and not backend._prefix_kv


def test_the_sequence_store_is_bounded_least_recently_used_first(tiny):
    from agentgym.baselines.kv_store import KVStore

    store = KVStore(max_entries=3, max_tokens=10)
    for key in [(1, 2), (3, 4), (5, 6)]:
        store.put(key, [])
    store.get((1, 2))
    store.put((7, 8), [])
    assert list(store) == [(5, 6), (1, 2), (7, 8)]  # (3, 4) was the least recently used
    store.put((9,) * 6, [])
    assert store.tokens == 10 and list(store) == [(1, 2), (7, 8), (9,) * 6]  # (5, 6) made room
    store.put((0,) * 11, [])  # longer than the whole budget: not stored
    assert (0,) * 11 not in store and store.longest_prefix((7, 8, 1)) == (7, 8) and store.longest_prefix((7, 8)) == ()
    model, tokenizer = tiny
    backend = BuiltinBackend(model, tokenizer, device="cpu", kv_tokens=60, kv_sequences=3)
    backend.generate(_prompts(tokenizer, 6, seed=15, lengths=(10, 20)), Sampling(max_new_tokens=4))
    assert 1 <= len(backend._sequences) <= 3 and backend._sequences.tokens <= 60
