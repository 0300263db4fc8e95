"""The pg trainer over the generation-backend seam (issue 19), with a tiny random model: π_old recomputed by the
trainer's forward (and truncated importance weights), the response-only log-prob gather, envs per worker and
prompt modes reaching the pool and the agent, the token-drift option, and the backend synced after each update.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from agentgym.baselines.generation_builtin import BuiltinBackend  # noqa: E402
from agentgym.baselines.ppo import batch_logprobs, ppo_loss, ppo_update, recomputes_old  # noqa: E402
from agentgym.baselines.runs import COMMON_METRICS, PG_METRICS  # noqa: E402
from agentgym.baselines.train_pg import Args, load_config, train  # noqa: E402
from agentgym.baselines.trainer_common import TokenDriftError, build_agent, open_pool  # noqa: E402
from agentgym.error import InvalidArgumentError  # noqa: E402
from agentgym.wrappers.lm import allowed_mask, build_tiny_causal_lm, load_causal_lm, next_token_logprobs  # noqa: E402

SAY = "llm_helpers:SayEnv"
TEXTWORLD = "agentgym/TextWorld-v0"


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    torch.set_num_threads(1)
    return str(build_tiny_causal_lm(tmp_path_factory.mktemp("tiny_backend_lm")))


@pytest.fixture(scope="module")
def tiny(tiny_path):
    return load_causal_lm(tiny_path)


def _args(tiny_path, out, **kwargs):
    base = dict(
        env_id=SAY,
        model=tiny_path,
        in_process=True,
        num_workers=8,
        tasks_per_step=2,
        group_size=4,
        output_format="action",
        max_new_tokens=3,
        history=0,
        output_dir=str(out),
        run_name="run",
        save_every=0,
        tensorboard=False,
        progress=False,
        minibatch_rows=64,
        micro_batch_rows=8,
        lora=False,
        learning_rate=1e-2,
        num_steps=1,
    )
    base.update(kwargs)
    return Args(**base)


def _rows(seed=1, lengths=((5, 3), (12, 1), (2, 7), (9, 4)), choice_every=2):
    """Hand-made turn rows of random ids (prompt, response lengths); every ``choice_every``-th row is a
    choice-format row whose positions allow the sampled token and two others."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for n, (prompt, response) in enumerate(lengths):
        ids = torch.randint(3, 300, (prompt + response,), generator=g).tolist()
        allowed = [[ids[prompt + j], 5, 7] for j in range(response)] if n % choice_every else None
        rows.append({"ids": ids, "start": prompt, "adv": (0.5, -1.0, 2.0, 1.5)[n % 4], "old": [], "allowed": allowed})
    return rows


def _rectangle_logprobs(model, rows, temperature):
    """The pre-issue-19 computation: rows left-padded to a common response start, the vocabulary projected
    over the whole ``[rows, longest response]`` rectangle (``keep`` positions shared by every row)."""
    start = max(r["start"] for r in rows)
    longest = max(len(r["ids"]) - r["start"] for r in rows)
    ids = torch.zeros((len(rows), start + longest), dtype=torch.long)
    attn = torch.zeros_like(ids)
    for b, row in enumerate(rows):
        pad = start - row["start"]
        ids[b, pad : pad + len(row["ids"])] = torch.tensor(row["ids"])
        attn[b, pad : pad + len(row["ids"])] = 1
    positions = (attn.cumsum(-1) - 1).clamp(min=0)
    vocab = model.get_output_embeddings().weight.shape[0]
    per_position = [
        (row["allowed"] or [])[j] if j < len(row["allowed"] or []) else None for row in rows for j in range(longest)
    ]
    allowed = allowed_mask(per_position, vocab).view(len(rows), longest, vocab)
    keep = torch.arange(start - 1, start - 1 + longest)
    logp = next_token_logprobs(model, ids, attn, positions, keep=keep, temperature=temperature, allowed=allowed)
    mask = torch.zeros((len(rows), longest))
    for b, row in enumerate(rows):
        mask[b, : len(row["ids"]) - row["start"]] = 1
    return logp * mask, mask


def _with_rollout_logprobs(model, rows, shift=0.0, noise=0.0, seed=0):
    """Give each row the log-probs a backend would have recorded: the true ones, shifted and perturbed."""
    g = torch.Generator().manual_seed(seed)
    logp, _ = batch_logprobs(model, rows, "cpu", 1.0, bf16=False)
    for row, values in zip(rows, logp):
        n = len(row["ids"]) - row["start"]
        row["old"] = (values[:n].detach() + shift + noise * torch.randn(n, generator=g)).tolist()
    return rows


def _update(model, rows, *, recompute, **overrides):
    args = Args(ppo_epochs=1, minibatch_rows=len(rows), micro_batch_rows=2, bf16=False, learning_rate=0.0, **overrides)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=0.0)
    try:
        return ppo_update(model, None, optimizer, params, rows, args, "cpu", 0, recompute=recompute)
    finally:
        model.eval()


# --------------------------------------------------------------------------- the response-only gather
def test_response_only_gather_equals_the_rectangle_and_projects_only_response_tokens(tiny, tiny_path):
    model, _ = tiny
    rows = _rows()
    seen = []
    handle = model.get_output_embeddings().register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    try:
        for temperature in (1.0, 0.7):
            seen.clear()
            new, new_mask = batch_logprobs(model, rows, "cpu", temperature, bf16=False)
            (projected,) = seen
            assert projected == (3 + 1 + 7 + 4, 64)  # the 15 response tokens, not 4 rows x 7 columns
            old, old_mask = _rectangle_logprobs(model, rows, temperature)
            assert torch.equal(new_mask, old_mask)
            assert torch.allclose(new, old, atol=1e-5), (new - old).abs().max()
    finally:
        handle.remove()
    # gradients flow through the scattered layout (a LoRA policy, the trainer's default)
    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(
        load_causal_lm(tiny_path)[0], LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    )
    logp, mask = batch_logprobs(lora, rows, "cpu", 1.0, bf16=False)
    (logp * mask).sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in lora.parameters() if p.requires_grad)


# --------------------------------------------------------------------------- π_old and truncated importance sampling
def test_recomputed_old_logprobs_give_a_first_epoch_ratio_of_one_under_other_numerics(tiny):
    """A backend whose log-probs differ from the trainer's (simulated: noise on the recorded ones): with
    recomputation the first epoch's ratio is 1 (approx_kl ~ 0, nothing clipped) and the gap is logged;
    using the rollout's numbers as π_old biases the ratio from the first step."""
    model, _ = tiny
    recomputed = _update(model, _with_rollout_logprobs(model, _rows(), noise=0.3), recompute=True)
    assert recomputed["train/approx_kl"] < 1e-9 and recomputed["train/clipfrac"] == 0.0
    assert recomputed["train/rollout_logprob_gap"] == pytest.approx(0.3 * math.sqrt(2 / math.pi), rel=0.5)
    rollout = _update(model, _with_rollout_logprobs(model, _rows(), noise=0.3), recompute=False)
    assert rollout["train/approx_kl"] > 1e-2 and rollout["train/clipfrac"] > 0.2
    assert "train/rollout_logprob_gap" not in rollout


def test_truncated_importance_weights_scale_the_policy_gradient_term(tiny):
    """Rollout log-probs one nat below the trainer's: every token's weight is min(e, tis_cap), so the
    policy-gradient loss is the unweighted one times that weight (the first epoch's ratio is 1)."""
    model, _ = tiny
    plain = _update(model, _with_rollout_logprobs(model, _rows(), shift=-1.0), recompute=True)
    for cap, weight in ((0.5, 0.5), (10.0, math.e)):
        rows = _with_rollout_logprobs(model, _rows(), shift=-1.0)
        weighted = _update(model, rows, recompute=True, tis_cap=cap)
        assert weighted["train/pg_loss"] == pytest.approx(weight * plain["train/pg_loss"], rel=1e-4)
        assert all(w == pytest.approx(weight, rel=1e-4) for row in rows for w in row["tis"])
    # ppo_loss against a plain loop: the weights multiply the clipped term, not the KL
    args = Args(clip_eps=0.2, kl_coef=0.5)
    logp, old = torch.tensor([[-1.0, -0.5]]), torch.tensor([[-1.5, -0.4]])
    ref, adv, mask, tis = (
        torch.tensor([[-1.2, -0.7]]),
        torch.tensor([2.0]),
        torch.ones(1, 2),
        torch.tensor([[0.3, 2.0]]),
    )
    loss, _ = ppo_loss(logp, old, ref, adv, mask, args, n_tokens=2, tis=tis)
    total = 0.0
    for t in range(2):
        ratio = math.exp(float(logp[0, t] - old[0, t]))
        pg = -min(ratio * 2.0, min(max(ratio, 0.8), 1.2) * 2.0)
        d = float(ref[0, t] - logp[0, t])
        total += float(tis[0, t]) * pg + 0.5 * (math.exp(d) - d - 1)
    assert float(loss) == pytest.approx(total / 2, rel=1e-6)


def test_old_logprobs_options_are_checked_and_auto_follows_the_backend():
    assert recomputes_old(Args(), SimpleNamespace(shares_policy=True)) is False
    assert recomputes_old(Args(), SimpleNamespace(shares_policy=False)) is True
    assert recomputes_old(Args(old_logprobs="recompute"), SimpleNamespace(shares_policy=True)) is True
    assert recomputes_old(Args(old_logprobs="rollout"), SimpleNamespace(shares_policy=False)) is False
    bad = [
        ({"old_logprobs": "fresh"}, "old_logprobs must be one of"),
        ({"tis_cap": 2.0, "old_logprobs": "rollout"}, "needs old_logprobs auto or recompute"),
        ({"tis_cap": 0}, "'tis_cap' must be a number > 0"),
        ({"backend": "tgi"}, "backend must be one of"),
        ({"backend_kwargs": [1]}, "'backend_kwargs' must be a mapping"),
        ({"envs_per_worker": 0}, "'envs_per_worker' must be an integer >= 1"),
        ({"prompt_mode": "chat"}, "prompt_mode must be one of"),
        ({"token_drift": "warn"}, "token_drift must be one of"),
    ]
    for config, message in bad:
        with pytest.raises(InvalidArgumentError, match=message):
            load_config(config)


# --------------------------------------------------------------------------- the pool, the agent, generation batches
def test_envs_per_worker_prompt_mode_and_backend_reach_the_pool_and_the_agent(tiny_path, tmp_path):
    args = SimpleNamespace(
        env_id=SAY, env_kwargs={}, max_turns=2, num_workers=2, envs_per_worker=4, in_process=True, info_reward=None
    )
    with open_pool(args, "train", SimpleNamespace(info_keys=set()), episodes=8) as pool:
        assert (pool.num_workers, pool.envs_per_worker, pool.num_envs) == (2, 4, 8)
    with open_pool(args, "train", SimpleNamespace(info_keys=set()), episodes=3) as pool:
        assert pool.num_envs == 3  # no more envs than episodes
    agent = build_agent(
        _args(tiny_path, tmp_path, prompt_mode="window", backend="hf-generate", backend_kwargs={}), None
    )
    assert agent.prompt_mode == "window" and agent.backend.name == "hf-generate"
    assert build_agent(_args(tiny_path, tmp_path), None).prompt_mode == "append"  # the trainer's default
    # 2 workers x 4 envs: the 8 episodes of a step join one generation batch; 1 env per worker: at most 2
    wide = train(_args(tiny_path, tmp_path / "wide", num_workers=2, envs_per_worker=4)).metrics
    assert wide["rollout/gen_batch_max"] == 8 and wide["rollout/gen_batch_mean"] == 8
    assert set(COMMON_METRICS) | set(PG_METRICS) <= set(wide)
    narrow = train(_args(tiny_path, tmp_path / "narrow", num_workers=2, envs_per_worker=1)).metrics
    assert narrow["rollout/gen_batch_max"] == 2


# --------------------------------------------------------------------------- token drift on TextWorld
def _textworld(tiny_path, out, **kwargs):
    return _args(
        tiny_path,
        out,
        env_id=TEXTWORLD,
        task_ids=["coin_collector/1000"],
        max_turns=2,
        tasks_per_step=1,
        group_size=2,
        num_workers=2,
        max_new_tokens=2,
        max_prompt_tokens=16384,
        skip_zero_advantage=False,
        **kwargs,
    )


def test_token_drift_raise_skip_and_log_on_textworld(tiny_path, tmp_path):
    """The windowed prompt builder re-renders each turn's prompt from text, so turn 1's prompt does not
    start with turn 0's prompt + response ids; the append builder never drifts."""
    with pytest.raises(TokenDriftError, match=r"episode '.+' turn 1: .*prompt_mode: append"):
        train(_textworld(tiny_path, tmp_path / "raise", prompt_mode="window", token_drift="raise"))
    skipped = train(_textworld(tiny_path, tmp_path / "skip", prompt_mode="window", token_drift="skip")).metrics
    assert skipped["rollout/token_drift_rate"] == 1.0 and skipped["rollout/token_drift_episodes"] == 2
    assert skipped["rollout/token_drift_skipped"] == 2 and skipped["perf/rows"] == 0  # nothing left to train on
    assert math.isnan(skipped["train/loss"])
    appended = train(_textworld(tiny_path, tmp_path / "append", prompt_mode="append", token_drift="raise")).metrics
    assert appended["rollout/token_drift_rate"] == 0.0 and appended["rollout/token_drift_turns"] == 0
    assert appended["rollout/episode_turns"] == 2 and appended["perf/rows"] == 4  # both turns of both episodes
    logged = train(_textworld(tiny_path, tmp_path / "log", prompt_mode="window")).metrics
    assert logged["rollout/token_drift_rate"] == 1.0 and logged["perf/rows"] == 4  # log: trained on anyway


# --------------------------------------------------------------------------- backend sync
def test_a_backend_with_its_own_weights_is_synced_after_each_update(tiny_path, tmp_path, monkeypatch):
    """The builtin backend with its own copy of the weights (shares_policy False): ``auto`` recomputes π_old,
    and after each update the copy is synced, so the next rollout's log-probs are the trained policy's
    (gap ~ 0). Without the sync the copy stays at the initial weights and the gap grows."""
    calls = []
    real_sync = BuiltinBackend.sync

    def counting_sync(self):
        calls.append(self.shares_policy)
        real_sync(self)

    monkeypatch.setattr(BuiltinBackend, "sync", counting_sync)
    # choice format: two of the eight words are rewarded, so groups have reward spread and the policy moves
    own = dict(backend_kwargs={"own_copy": True}, output_format="choice", num_steps=3, learning_rate=3e-2, seed=1)
    synced = train(_args(tiny_path, tmp_path / "synced", **own)).history
    assert calls == [False, False, False]
    assert all(row["train/rollout_logprob_gap"] < 1e-4 for row in synced), synced
    monkeypatch.setattr(BuiltinBackend, "sync", lambda self: None)
    stale = train(_args(tiny_path, tmp_path / "stale", **own)).history
    assert stale[0]["train/rollout_logprob_gap"] < 1e-4 and stale[-1]["train/rollout_logprob_gap"] > 1e-2, stale
    assert all(row["train/approx_kl"] < 1e-9 for row in stale)  # recomputation keeps the ratio honest anyway


def test_a_bf16_sampling_copy_is_corrected_by_recomputation(tiny_path, tmp_path):
    """Real other numerics: the builtin backend sampling with a bfloat16 copy of the fp32 policy. ``auto``
    recomputes π_old (ratio exactly 1 in the single first-epoch minibatch, the gap logged); ``rollout`` uses
    the bf16 log-probs and the ratio is off 1 before the policy moved."""
    common = dict(backend_kwargs={"dtype": "bfloat16"}, output_format="choice", num_steps=1, seed=1)
    auto = train(_args(tiny_path, tmp_path / "auto", **common)).metrics
    assert auto["train/approx_kl"] < 1e-12 and auto["train/rollout_logprob_gap"] > 1e-5
    rollout = train(_args(tiny_path, tmp_path / "rollout", old_logprobs="rollout", **common)).metrics
    assert rollout["train/approx_kl"] > 1e-9 and "train/rollout_logprob_gap" not in rollout
