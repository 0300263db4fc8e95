"""The LLM agent with a tiny random model: batched generation, exact token records, action extraction."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from llm_helpers import WORDS, SayEnv  # noqa: E402

from agentgym.baselines.llm_agent import LLMAgent, closest_action, extract_action, token_logprobs  # noqa: E402
from agentgym.baselines.train_pg import batch_logprobs, make_rows  # noqa: E402
from agentgym.rollout import group_specs, rollout  # noqa: E402
from agentgym.trajectory import load_jsonl, save_jsonl  # noqa: E402
from agentgym.wrappers.lm import build_tiny_causal_lm, load_causal_lm  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.set_num_threads(1)
    return load_causal_lm(build_tiny_causal_lm(tmp_path_factory.mktemp("tiny_agent_lm")))


def _agent(tiny, **kwargs):
    model, tokenizer = tiny
    kwargs.setdefault("max_new_tokens", 6)
    return LLMAgent(model, tokenizer, device="cpu", **kwargs)


def _play(agent, turns=3, groups=2, group_size=3, **kwargs):
    specs = group_specs([f"say/{k}" for k in range(groups)], list(range(groups)), group_size)
    return rollout(lambda: SayEnv(turns=turns), agent, specs, num_workers=len(specs), in_process=True, **kwargs)


def test_extract_action_formats():
    assert extract_action("I should look around.\nAction: go east.", "react") == ("go east", "react")
    assert extract_action("<planning>x</planning><action> take coin </action>", "react") == ("take coin", "tag")
    assert extract_action("open the chest\nmore text", "action") == ("open the chest", "action")
    call, how = extract_action('<tool_call>{"name": "view", "arguments": {"path": "a.py"}}</tool_call>', "tool")
    assert how == "tool_json" and json.loads(call) == {"name": "view", "arguments": {"path": "a.py"}}
    call, _ = extract_action('{"function": {"name": "submit", "arguments": {}}}', "tool")
    assert json.loads(call)["name"] == "submit"
    assert extract_action("no rule\n  here ", "react") == ("here", "fallback")
    assert extract_action("a\nb\x07c", "raw") == ("a b c", "raw")
    assert closest_action("tak  Coin", ["take coin", "look"], 0.6) == "take coin"
    assert closest_action("zzzz", ["take coin", "look"], 0.9) is None


def test_batched_rollout_records_exact_tokens_and_logprobs(tiny, tmp_path):
    agent = _agent(tiny, output_format="react")
    trajectories = _play(agent)
    model, tokenizer = tiny
    turns = [turn for t in trajectories for turn in t.turns]
    assert len(turns) == 6 * 3
    for turn in turns:
        assert len(turn.response_token_ids) == len(turn.response_logprobs) >= 1
        assert turn.agent_info["reply"] == tokenizer.decode(turn.response_token_ids, skip_special_tokens=True)
        # a fresh forward pass over exactly the recorded tokens gives the recorded log-probs
        ids = torch.tensor([turn.prompt_token_ids + turn.response_token_ids])
        with torch.no_grad():
            fresh = token_logprobs(model, ids, torch.ones_like(ids), start=len(turn.prompt_token_ids) - 1)
        assert fresh[0].tolist() == pytest.approx(turn.response_logprobs, abs=2e-4)
    # the prompt is the chat template of the goal and the current observation with the admissible actions
    prompt = tokenizer.decode(turns[0].prompt_token_ids)
    assert "Say a word that starts with the letter c." in prompt and " | ".join(WORDS) in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    # later turns carry the history window (the previous observation and reply)
    assert turns[0].agent_info["reply"] in tokenizer.decode(turns[1].prompt_token_ids)
    save_jsonl(trajectories, tmp_path / "t.jsonl")
    assert load_jsonl(tmp_path / "t.jsonl") == trajectories


def test_training_rows_mask_exactly_the_agent_tokens(tiny):
    """Padded training batches: mask 1 exactly on the response tokens, and their log-probs are the recorded ones."""
    agent = _agent(tiny, output_format="action", max_new_tokens=5)
    trajectories = _play(agent, turns=2, groups=2, group_size=2)
    advantages = [[0.5] * len(t.turns) for t in trajectories]
    rows = make_rows(trajectories, advantages)
    turns = [turn for t in trajectories for turn in t.turns]
    assert len(rows) == len(turns)
    model, _ = tiny
    with torch.no_grad():
        logp, mask = batch_logprobs(model, rows, "cpu", 1.0, bf16=False)
    for b, (row, turn) in enumerate(zip(rows, turns)):
        n = len(turn.response_token_ids)
        assert row["ids"] == turn.prompt_token_ids + turn.response_token_ids
        assert row["start"] == len(turn.prompt_token_ids)
        assert mask[b].tolist() == [1.0] * n + [0.0] * (mask.shape[1] - n)
        assert logp[b, :n].tolist() == pytest.approx(turn.response_logprobs, abs=2e-4)


def test_near_miss_mapping_is_counted_and_reported(tiny):
    agent = _agent(tiny, output_format="action", near_miss=True, near_miss_cutoff=0.0)
    trajectories = _play(agent, turns=2)
    turns = [turn for t in trajectories for turn in t.turns]
    assert all(turn.action in WORDS for turn in turns)
    mapped = [turn for turn in turns if turn.agent_info["near_miss"]]
    assert agent.counters["near_miss"] == len(mapped) > 0
    assert all(turn.agent_info["near_miss"]["to"] == turn.action for turn in mapped)
    assert agent.counters["decisions"] == len(turns)


def test_token_budgets_truncate_and_flag(tiny):
    agent = _agent(tiny, output_format="action", max_new_tokens=8)
    first = _play(agent, turns=5, groups=1, group_size=2)
    prompt = len(first[0].turns[0].prompt_token_ids)
    trajectories = _play(agent, turns=5, groups=1, group_size=2, token_budget=prompt + 4)
    for t in trajectories:
        assert t.token_budget_exceeded and t.truncated and not t.terminated
        assert t.tokens_used > t.token_budget and len(t.turns) < 5
    limited = _agent(tiny, output_format="action", max_new_tokens=8, token_budget=prompt + 3)
    decision = limited.act(
        "Round 0. Say a word.",
        {"goal": "Say a word that starts with the letter c.", "admissible_actions": WORDS},
        episode_id="e",
    )
    assert len(decision.response_token_ids) <= 3 and decision.info["budget_limited"]


def test_long_prompts_are_cut_and_flagged(tiny):
    agent = _agent(tiny, max_prompt_tokens=80)
    decision = agent.act("You are in a kitchen. " * 200, {"goal": "find the coin"}, episode_id="e")
    assert len(decision.prompt_token_ids) <= 80 and decision.info["prompt_truncated"]
    assert agent.counters["prompt_truncated"] == 1


def test_tool_envs_get_tool_schemas_and_json_calls(tiny):
    from agentgym.envs.swegym.tools import TOOLS

    agent = _agent(tiny)
    decision = agent.act("Fix the bug in calc.py", {"goal": "make the tests pass", "tools": TOOLS}, episode_id="e")
    prompt = tiny[1].decode(decision.prompt_token_ids)
    assert decision.info["format"] == "tool" and "str_replace(path, old_str, new_str)" in prompt
    assert "Admissible actions" not in prompt
    assert decision.text  # a tiny random model writes no JSON: the fallback still sends one line
    assert "\n" not in decision.text
