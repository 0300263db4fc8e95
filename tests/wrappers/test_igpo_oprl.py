"""IGPO and OPRL hooks on a tiny random causal LM built locally (nothing downloaded)."""

from __future__ import annotations

import copy
import math

import pytest
from hook_helpers import make_trajectory

torch = pytest.importorskip("torch")

from agentgym.error import InvalidArgumentError  # noqa: E402
from agentgym.trajectory import Trajectory, Turn  # noqa: E402
from agentgym.wrappers import IGPOHook, OPRLHook  # noqa: E402
from agentgym.wrappers.igpo import ANSWER_PREFIX, outcome_reward  # noqa: E402
from agentgym.wrappers.lm import chat_messages, chat_tokens, next_token_logprobs  # noqa: E402


def qa_batch():
    return [
        make_trajectory(
            ["search coin", "open chest", "<think>ok</think><answer>the coin</answer>"],
            truth="the coin",
            group="q",
            episode_id="a",
        ),
        make_trajectory(["look", "<answer>coin</answer>"], truth="the coin", group="q", episode_id="b"),
        make_trajectory(["look", "go east"], truth="the coin", group="q", end="truncated", episode_id="c"),
    ]


def naive_belief(model, tokenizer, trajectory, t, target):
    """logP_t from one plain forward pass over context_t + wrapper + target (no packing, no batching)."""
    chat = chat_tokens(trajectory, tokenizer)
    prefix = tokenizer(ANSWER_PREFIX, add_special_tokens=False)["input_ids"]
    answer = tokenizer(target, add_special_tokens=False)["input_ids"]
    ids = chat.ids[: chat.context_ends[t]] + prefix + answer
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    logp = torch.log_softmax(logits, -1)
    start = len(ids) - len(answer)
    return sum(float(logp[start - 1 + j, tok]) for j, tok in enumerate(answer)) / len(answer)


def test_chat_tokens_contexts_are_the_rendered_prefixes(tiny_lm):
    _, tokenizer = tiny_lm
    traj = qa_batch()[0]
    chat = chat_tokens(traj, tokenizer)
    for t in range(len(traj.turns) + 1):
        text = tokenizer.apply_chat_template(chat_messages(traj, upto=t), tokenize=False, add_generation_prompt=True)
        assert tokenizer.decode(chat.ids[: chat.context_ends[t]]) == text
    for (start, end), turn in zip(chat.action_spans, traj.turns):
        assert tokenizer.decode(chat.ids[start:end]) == turn.action


def test_igpo_beliefs_packed_equal_naive(tiny_lm):
    model, tokenizer = tiny_lm
    batch = qa_batch()
    packed = IGPOHook(model, tokenizer, batch_size=2).beliefs(batch)  # padded rows: masked first pass
    single = IGPOHook(model, tokenizer, batch_size=1).beliefs(batch)  # one row: unmasked first pass
    per_turn = IGPOHook(model, tokenizer, batching="per_turn", batch_size=3).beliefs(batch)
    one = IGPOHook(model, tokenizer, batching="per_turn", batch_size=1).beliefs(batch)
    for i, traj in enumerate(batch):
        naive = [naive_belief(model, tokenizer, traj, t, "the coin") for t in range(len(traj.turns) + 1)]
        assert packed[i] == pytest.approx(naive, abs=1e-4)
        assert single[i] == pytest.approx(naive, abs=1e-4)
        assert per_turn[i] == pytest.approx(naive, abs=1e-4)
        assert one[i] == pytest.approx(naive, abs=1e-4)


def test_igpo_rewards_hand_computed(tiny_lm):
    model, tokenizer = tiny_lm
    batch = qa_batch()
    hook = IGPOHook(model, tokenizer)
    beliefs = hook.beliefs(batch)
    rewards = hook.score(batch)
    b = beliefs[0]
    assert rewards[0] == pytest.approx([b[1] - b[0], b[2] - b[1], 1.0], abs=1e-6)  # F1("the coin") = 1
    assert rewards[1][1] == pytest.approx(2 / 3)  # token F1("coin", "the coin"): precision 1, recall 1/2
    assert rewards[2][-1] == -2.0  # truncated without an answer
    prob = IGPOHook(model, tokenizer, ig="prob", metric="em").score(batch)
    assert prob[0][0] == pytest.approx(math.exp(b[1]) - math.exp(b[0]), abs=1e-7)
    assert prob[1][1] == 0.0  # exact match fails


def test_igpo_outcome_rules():
    assert outcome_reward("<answer>Paris</answer>", "paris") == 1.0
    assert outcome_reward("<answer>Paris</answer", "paris") == -2.0  # unbalanced
    assert outcome_reward("<think>x<answer>Rome</answer>", "paris") == -2.0  # unbalanced think
    assert outcome_reward("<answer>rome</answer>", "paris<|answer_split|>Rome", metric="em") == 1.0
    assert outcome_reward("no tags", "x", format_penalty=-1.0) == -1.0


def test_igpo_proxy_target_without_ground_truth(tiny_lm):
    model, tokenizer = tiny_lm
    traj = make_trajectory(["go east", "take coin"], won=True)  # TextWorld-like: no ground truth
    hook = IGPOHook(model, tokenizer)
    assert hook.target(traj) == ("I have completed the task.", False)
    rewards = hook.score([traj])[0]
    assert rewards[-1] == 1.0  # the env's normalised score, no format penalty
    custom = IGPOHook(model, tokenizer, target_fn=lambda t: ("take coin", False))
    assert custom.beliefs([traj])[0] != hook.beliefs([traj])[0]
    with pytest.raises(InvalidArgumentError, match="batching"):
        IGPOHook(model, tokenizer, batching="magic")


def recorded_trajectory(tokenizer, *, window):
    """A finished 3-turn QA trajectory whose turns carry prompt/response token ids as an LLM agent records
    them: a system prompt the hook's chat rendering does not have, and a history of ``window`` past turns
    (``window=1``: the window slides, so the prompts are not prefixes of each other)."""
    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    traj = make_trajectory(
        ["search coin", "open chest", "<answer>the coin</answer>"], truth="the coin", episode_id="rec"
    )
    observations = [traj.initial_observation] + [turn.observation for turn in traj.turns]
    history = []
    for t, turn in enumerate(traj.turns):
        messages = [{"role": "system", "content": "You are an agent. Reply with one action."}]
        for obs, reply in history[len(history) - window :] if window else []:
            messages += [{"role": "user", "content": obs}, {"role": "assistant", "content": reply}]
        messages.append({"role": "user", "content": observations[t]})
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        turn.prompt_token_ids = encode(text)
        turn.response_token_ids = encode(turn.action) + [tokenizer.eos_token_id]
        history.append((observations[t], turn.action))
    return traj


def manual_belief(model, ids, tokenizer, target="the coin"):
    """logP of ``target`` after ``ids`` + the answer wrapper: one plain forward pass."""
    prefix = tokenizer(ANSWER_PREFIX, add_special_tokens=False)["input_ids"]
    answer = tokenizer(target, add_special_tokens=False)["input_ids"]
    seq = list(ids) + prefix + answer
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([seq])).logits[0], -1)
    start = len(seq) - len(answer)
    return sum(float(logp[start - 1 + j, tok]) for j, tok in enumerate(answer)) / len(answer)


@pytest.mark.parametrize("window", [1, 5])  # 1: sliding window (per-turn rows); 5: nested prompts (packed)
def test_igpo_beliefs_on_recorded_prompt_ids(tiny_lm, window):
    model, tokenizer = tiny_lm
    traj = recorded_trajectory(tokenizer, window=window)
    prompts = [turn.prompt_token_ids for turn in traj.turns]
    seen = []
    spy = model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["input_ids"].tolist()), with_kwargs=True
    )
    try:
        hook = IGPOHook(model, tokenizer, batch_size=1)
        rewards = hook.score([traj])[0]
    finally:
        spy.remove()
    prefix = tokenizer(ANSWER_PREFIX, add_special_tokens=False)["input_ids"]
    answer = tokenizer("the coin", add_special_tokens=False)["input_ids"]
    nested = window == 5
    if nested:  # packed: the longest recorded prompt once, then one answer block per context
        assert seen[0] == [prompts[-1]] and seen[1] == [(prefix + answer) * 3]
    else:  # per turn: exactly each recorded prompt, then the wrapper and the answer
        assert seen == [[p + prefix + answer] for p in prompts]
    # the final turn gets the outcome, so its context (after the last turn) is never needed
    beliefs = [manual_belief(model, p, tokenizer) for p in prompts]
    assert rewards == pytest.approx([beliefs[1] - beliefs[0], beliefs[2] - beliefs[1], 1.0], abs=1e-4)
    bare = copy.deepcopy(traj)
    for turn in bare.turns:
        turn.prompt_token_ids = turn.response_token_ids = None
    assert hook.beliefs([bare], [[0, 1, 2]])[0] != pytest.approx(beliefs, abs=1e-4)  # the rendered chat


def test_igpo_falls_back_to_the_chat_rendering(tiny_lm):
    """Without recorded ids on every turn, or for a context after the last turn, the hook renders the chat."""
    model, tokenizer = tiny_lm
    traj = recorded_trajectory(tokenizer, window=1)
    chat = chat_tokens(traj, tokenizer)
    hook = IGPOHook(model, tokenizer)
    assert hook.context_ids(traj, [0, 3]) == [chat.ids[: chat.context_ends[0]], chat.ids]
    rendered = IGPOHook(model, tokenizer, tokens="rendered")
    assert rendered.context_ids(traj, [1]) == [chat.ids[: chat.context_ends[1]]]
    assert hook.context_ids(traj, [1]) == [traj.turns[1].prompt_token_ids]
    traj.turns[1].prompt_token_ids = None
    assert hook.context_ids(traj, [1]) == [chat.ids[: chat.context_ends[1]]]


def test_igpo_scores_in_eval_mode_and_restores_train_mode(tiny_lm):
    model, tokenizer = tiny_lm
    modes = []
    spy = model.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    model.train()
    try:
        IGPOHook(model, tokenizer).beliefs(qa_batch()[:1])
        assert modes and not any(modes) and model.training
    finally:
        spy.remove()
        model.eval()


# ------------------------------------------------------------------ OPRL
def oprl_batch():
    win = make_trajectory(["open chest", "take coin"], won=True, rewards=[0, 1], group="g", episode_id="w")
    lose = make_trajectory(["go east", "eat key"], won=False, group="g", episode_id="l")
    alone = make_trajectory(["look"], won=True, rewards=[1], group="h", episode_id="x")
    return [win, lose, alone]


def test_oprl_initial_rewards_zero_and_loss_log2(tiny_lm):
    model, tokenizer = tiny_lm
    hook = OPRLHook.from_policy(model, tokenizer)
    batch = oprl_batch()
    assert hook.score(batch) == [[0.0, 0.0], [0.0, 0.0], [0.0]]
    assert hook.pairs(batch) == [(0, 1)]  # group h has no failure: no pair
    ratios = hook.step_log_ratios(batch, grad=True)
    assert float(hook.dpo_loss(ratios, hook.pairs(batch)).detach()) == pytest.approx(math.log(2))
    assert hook.dpo_loss(ratios, []) is None


def test_oprl_step_rewards_hand_computed(tiny_lm):
    model, tokenizer = tiny_lm
    prm = copy.deepcopy(model)
    with torch.no_grad():
        for p in prm.parameters():
            p.add_(0.05 * torch.randn_like(p))
    hook = OPRLHook(prm, tokenizer, reference_model=copy.deepcopy(model), beta=0.5)
    traj = oprl_batch()[0]
    chat = chat_tokens(traj, tokenizer)
    ids = torch.tensor([chat.ids[: chat.context_ends[-1]]])
    with torch.no_grad():
        lp_prm = next_token_logprobs(prm, ids, torch.ones_like(ids))[0]
        lp_ref = next_token_logprobs(model, ids, torch.ones_like(ids))[0]
    want = [0.5 * float((lp_prm[s - 1 : e - 1] - lp_ref[s - 1 : e - 1]).sum()) for s, e in chat.action_spans]
    got = hook.score([traj])[0]
    assert got == pytest.approx(want, abs=1e-5) and all(abs(x) > 0 for x in got)
    scaled = OPRLHook(prm, tokenizer, reference_model=copy.deepcopy(model), beta=0.5, normalize="batch_max").score(
        [traj]
    )[0]
    assert max(abs(x) for x in scaled) == pytest.approx(1.0, abs=1e-4)


def test_oprl_dpo_training_separates_success_from_failure(tiny_lm):
    model, tokenizer = tiny_lm
    batch = oprl_batch()
    after = OPRLHook.from_policy(model, tokenizer, lr=3e-3, beta=0.5, update="after")
    rewards, loss = after.train_step(batch)
    assert loss == pytest.approx(math.log(2)) and rewards == [[0.0, 0.0], [0.0, 0.0], [0.0]]  # pre-update
    losses = [loss]
    for _ in range(5):
        losses.append(after.train_step(batch)[1])
    assert losses[-1] < losses[0] - 0.05
    q = [sum(r) for r in after.score(batch)]
    assert q[0] > q[1]  # the PRM now prefers the successful trajectory
    before = OPRLHook(
        copy.deepcopy(model),
        tokenizer,
        reference_model=copy.deepcopy(model),
        lr=3e-3,
        beta=0.5,
        update="before",
        trajectory_score="mean",
    )
    rewards, loss = before.train_step(batch)
    assert loss == pytest.approx(math.log(2)) and sum(rewards[0]) > sum(rewards[1])  # scored after the update
    # sync_reference makes the PRM and the reference equal again when the PRM is the policy
    before.sync_reference(before.prm)
    assert before.score(batch)[0] == [0.0, 0.0]


def test_oprl_recorded_tokens_and_reference_logprobs(tiny_lm):
    model, tokenizer = tiny_lm
    prompt = tokenizer("You are in a kitchen.", add_special_tokens=False)["input_ids"]
    response = tokenizer("open chest", add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + response])
    with torch.no_grad():
        lp = next_token_logprobs(model, ids, torch.ones_like(ids))[0]
    generated = [float(x) for x in lp[len(prompt) - 1 : len(prompt) + len(response) - 1]]
    turn = Turn(
        "obs",
        "open chest",
        1.0,
        True,
        False,
        {"won": True},
        prompt_token_ids=prompt,
        response_token_ids=response,
        response_logprobs=generated,
    )
    traj = Trajectory("e", "env", "t", 0, "agent", "start", {}, [turn], group_id="g")
    hook = OPRLHook(copy.deepcopy(model), tokenizer, reference="recorded")
    assert hook.score([traj])[0][0] == pytest.approx(0.0, abs=1e-5)
    rendered = OPRLHook(copy.deepcopy(model), tokenizer, reference="recorded", tokens="rendered")
    assert abs(rendered.score([traj])[0][0]) > 1e-3  # the chat rendering is another context
    with pytest.raises(InvalidArgumentError, match="response_logprobs"):
        hook.score(oprl_batch())
    with pytest.raises(InvalidArgumentError, match="reference_model"):
        OPRLHook(model, tokenizer)
