"""IGPO information-gain turn rewards (spec ``reward-hooks.md`` §8): the policy's belief in the answer.

The belief after turn t is the policy's length-normalised log-probability of the ground-truth answer,
teacher-forced inside the answer wrapper right after the context the policy would see next:

    context_t + "<think>\\nNow there's enough information to answer\\n</think>\\n<answer>\\n" + GT
    logP_t = mean over GT tokens j of log pi(GT_j | context_t, wrapper, GT_<j)        (t = 0: prompt only)

Non-final turn t gets ``logP_t - logP_{t-1}`` (``ig="log_prob"``, the official code's default) or
``exp(logP_t) - exp(logP_{t-1})`` (``ig="prob"``, the v1 paper). The final turn (the one that ends the
episode) gets the outcome instead: token F1 (``metric="f1"``) or exact match (``"em"``) between the
``<answer>`` of the final action and the ground truth (best over ``<|answer_split|>`` alternatives), or
``format_penalty`` (-2.0) when the tags are unbalanced or there is no ``<answer>`` (e.g. a truncated episode).
Only the first gold answer is used for the information gain. Normalisation and discounting are the
estimator's job (:func:`agentgym.baselines.estimators.igpo_advantages`).

Which context: the belief after turn t is measured on the context the policy saw before acting at turn
t+1, i.e. after turn t's action and the env's reply (the spec's "computed at the start of every turn").
When every turn records its ``prompt_token_ids`` (an LLM agent's rollout), that context is exactly turn
t+1's recorded prompt ids (t = 0: turn 1's prompt, which the policy saw before its first action), ending
with the generation prompt, so the answer wrapper follows where the policy's reply would; the policy's
own system prompt, history window and truncation are all in it. Only trajectories without recorded ids
(saved by a non-LLM agent, or an online :class:`~agentgym.wrappers.TurnRewardWrapper` episode), and an
unfinished trajectory's last context (the next prompt is not recorded yet), fall back to this hook's own
chat rendering of the trajectory (:func:`agentgym.wrappers.lm.chat_tokens`, ``system``).

Which answer: ``info["ground_truth"]``. Of the gym's families only WebShop provides one (the goal ASIN and
its options, ``"b0123; color: red"``): the belief is then the policy's probability of naming the product
it should buy. Families with no answer (``ground_truth`` None: TextWorld, ALFWorld, ScienceWorld, SWEGym,
KernelGym, Negotiation) use the documented proxy: the belief is the policy's probability of
``proxy_target`` ("I have completed the task.") as its answer, a self-assessed progress signal, and the
final turn gets the env's normalised score ``info["score"]`` (TextWorld: score / max score) with no format
penalty. ``target_fn`` overrides both. A family whose ground truth is not something the agent writes in an
``<answer>`` (WebShop: the agent clicks "buy now") gets the format penalty as the hook's own final
reward; train such runs with the ``igpo`` estimator's default ``outcome: task``, which replaces the final
turn's reward with the task return.

Scoring is batched, under ``torch.no_grad`` with the model in eval mode (its mode is restored after).
``batching="packed"`` (default) reads each conversation once (plain causal attention, keeping the KV cache),
then scores one short answer block per turn in a second pass, each block attending only to its own
context prefix in the cache (a custom 4D mask and explicit position ids); several trajectories go through
each pass together. That needs each context to be a token prefix of the next, as the chat rendering's
are; recorded prompts whose history window slides are not, and are scored per turn.
``batching="per_turn"`` builds one padded sequence per (trajectory, turn); with ``batch_size=1`` that is
the one-turn-at-a-time baseline of ``benchmarks/igpo_batching.py``. Both give the same numbers.

Any Hugging Face causal LM with a prefix-preserving chat template (ChatML and most others) works; load one
from a local folder with :func:`agentgym.wrappers.lm.load_causal_lm`.

Example:
    >>> from agentgym.wrappers.igpo import IGPOHook
    >>> from agentgym.wrappers.lm import load_causal_lm
    >>> hook = IGPOHook(*load_causal_lm("smollm2"))                           # doctest: +SKIP
    >>> rewards = hook.score(load_jsonl("trajectories.jsonl"))                # doctest: +SKIP

Change logs:
    v0: initial version.
    v1: beliefs on the recorded prompt token ids when present; ``from_policy``; eval mode while scoring;
        the outcome reads ``Turn.agent_text`` (the raw reply, where the ``<answer>`` is).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

from agentgym.error import InvalidArgumentError
from agentgym.trajectory import Trajectory
from agentgym.wrappers.hooks import TurnRewardHook, check_choice, ground_truth, is_final_turn
from agentgym.wrappers.lm import chat_tokens, eval_mode, forward_model, next_token_logprobs, returned_cache
from agentgym.wrappers.progressive import ANSWER_RE, normalize_answer, token_f1

ANSWER_PREFIX = "<think>\nNow there's enough information to answer\n</think>\n<answer>\n"
ANSWER_SPLIT = "<|answer_split|>"
PROXY_TARGET = "I have completed the task."
_BALANCED_TAGS = ("think", "answer", "tool_call", "code")


def answer_format_ok(text: str) -> bool:
    """All of ``<think>``, ``<answer>``, ``<tool_call>``, ``<code>`` balanced and an ``<answer>`` present."""
    for tag in _BALANCED_TAGS:
        if text.count(f"<{tag}>") != text.count(f"</{tag}>"):
            return False
    return bool(ANSWER_RE.search(text))


def outcome_reward(text: str, truth: str, *, metric: Literal["f1", "em"] = "f1", format_penalty: float = -2.0) -> float:
    """IGPO's final-turn reward: F1 or EM of the ``<answer>`` against the best gold answer, or the penalty."""
    if not answer_format_ok(text):
        return format_penalty
    answer = ANSWER_RE.search(text).group(1)  # type: ignore[union-attr]
    golds = [gold for gold in truth.split(ANSWER_SPLIT) if gold.strip()] or [truth]
    if metric == "em":
        return max(float(normalize_answer(answer) == normalize_answer(gold)) for gold in golds)
    return max(token_f1(answer, gold) for gold in golds)


def _nested(contexts: Sequence[list[int]]) -> bool:
    """Whether every context is a token prefix of the longest one (what packed scoring needs)."""
    longest = max(contexts, key=len, default=[])
    return all(longest[: len(c)] == c for c in contexts)


class IGPOHook(TurnRewardHook):
    """Information-gain turn rewards from a causal LM (module docstring). Name: ``"igpo"``.

    Args:
        model, tokenizer: the policy (any HF causal LM, or a peft model around one) and its tokenizer; the
            model is used in eval mode under ``torch.no_grad``.
        ig: ``"log_prob"`` (code default) or ``"prob"`` (v1 paper) difference.
        metric: ``"f1"`` or ``"em"`` for the final turn.
        format_penalty: final-turn reward for a malformed or missing answer (-2.0).
        proxy_target: answer text used when the task has no ground truth.
        target_fn: ``trajectory -> (target text, has_answer)``; overrides the ground truth / proxy choice.
        system: optional system prompt for the rendered chat.
        batching: ``"packed"`` or ``"per_turn"``; ``batch_size``: trajectories (packed) or sequences
            (per turn) per forward pass.
        tokens: ``"recorded"`` (the turns' prompt ids when every turn has them, else the chat rendering)
            or ``"rendered"`` (always the chat rendering: for a scoring model whose tokenizer is not the
            policy's, such as a config's ``model:`` of another family).
    """

    name = "igpo"
    requires_policy = True

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        ig: Literal["log_prob", "prob"] = "log_prob",
        metric: Literal["f1", "em"] = "f1",
        format_penalty: float = -2.0,
        proxy_target: str = PROXY_TARGET,
        target_fn: Callable[[Trajectory], tuple[str, bool]] | None = None,
        system: str | None = None,
        batching: Literal["packed", "per_turn"] = "packed",
        batch_size: int = 8,
        tokens: Literal["recorded", "rendered"] = "recorded",
    ):
        check_choice("ig", ig, ("log_prob", "prob"))
        check_choice("tokens", tokens, ("recorded", "rendered"))
        check_choice("metric", metric, ("f1", "em"))
        check_choice("batching", batching, ("packed", "per_turn"))
        if batch_size < 1:
            raise InvalidArgumentError(f"batch_size must be at least 1, got {batch_size}")
        self.model, self.tokenizer = model, tokenizer
        self.ig, self.metric, self.format_penalty = ig, metric, format_penalty
        self.proxy_target, self.target_fn, self.system = proxy_target, target_fn, system
        self.batching, self.batch_size, self.tokens = batching, batch_size, tokens
        self._episode_beliefs: dict[int, float] = {}
        #: Sequences and tokens of the last scoring call (``benchmarks/igpo_batching.py`` reads them).
        self.last_stats: dict[str, int] = {}

    @classmethod
    def from_policy(cls, policy: Any, tokenizer: Any, **kwargs: Any) -> IGPOHook:
        """The trainer's builder (``hooks: [{name: igpo, kwargs: {...}}]``): the hook scores with ``policy``
        itself, not a copy. The trainer updates it in place and scores each batch before updating, so the
        beliefs are those of the policy that generated the batch (the spec's ``pi_old``). With a config's
        ``model:`` that model scores instead (``tokens="rendered"`` if its tokenizer is not the policy's)."""
        return cls(policy, tokenizer, **kwargs)

    # ------------------------------------------------------------ targets and outcome
    def target(self, trajectory: Trajectory) -> tuple[str, bool]:
        """``(text the belief is measured on, whether it is a real ground-truth answer)``."""
        if self.target_fn is not None:
            return self.target_fn(trajectory)
        truth = ground_truth(trajectory)
        if truth is None:
            return self.proxy_target, False
        return truth.split(ANSWER_SPLIT)[0].strip(), True

    def outcome(self, trajectory: Trajectory) -> float:
        """The final turn's reward."""
        _, has_answer = self.target(trajectory)
        last = trajectory.turns[-1]
        if not has_answer:
            return float(last.info.get("score") or 0.0)
        truth = ground_truth(trajectory) if self.target_fn is None else self.target(trajectory)[0]
        return outcome_reward(last.agent_text, truth or "", metric=self.metric, format_penalty=self.format_penalty)

    # ------------------------------------------------------------ beliefs
    def beliefs(
        self, trajectories: Sequence[Trajectory], contexts: Sequence[Sequence[int]] | None = None
    ) -> list[list[float]]:
        """``logP_t`` of each trajectory for the context indices ``contexts[i]`` (default: all, 0..T)."""
        import torch

        prefix = self._encode(ANSWER_PREFIX)
        jobs = []  # (token ids of each wanted context, answer tokens)
        for index, trajectory in enumerate(trajectories):
            target = self._encode(self.target(trajectory)[0])
            if not target:
                raise InvalidArgumentError(f"trajectory {trajectory.episode_id!r}: the answer target is empty")
            wanted = list(range(len(trajectory.turns) + 1)) if contexts is None else list(contexts[index])
            jobs.append((self.context_ids(trajectory, wanted), target))
        self.last_stats = {"forward_passes": 0, "tokens": 0}
        nested = [self.batching == "packed" and _nested(ids) for ids, _ in jobs]
        packed = [j for j, flag in enumerate(nested) if flag]
        per_turn = [j for j, flag in enumerate(nested) if not flag]
        out: list[list[float]] = [[] for _ in jobs]
        with torch.no_grad(), eval_mode(self.model):
            net = forward_model(self.model)
            for group, run in ((packed, self._packed), (per_turn, self._per_turn)):
                for j, row in zip(group, run(net, [jobs[j] for j in group], prefix)):
                    out[j] = row
        return out

    def context_ids(self, trajectory: Trajectory, wanted: Sequence[int]) -> list[list[int]]:
        """The token ids of each wanted context ``t`` (what the policy saw after turn t): turn t+1's
        recorded ``prompt_token_ids`` when every turn has them and t < T, else this hook's chat rendering
        of the whole trajectory (module docstring; ``tokens="rendered"``: always the rendering)."""
        turns = trajectory.turns
        if (
            self.tokens == "recorded"
            and turns
            and all(t.prompt_token_ids for t in turns)
            and all(t < len(turns) for t in wanted)
        ):
            return [list(turns[t].prompt_token_ids) for t in wanted]  # type: ignore[arg-type]
        chat = chat_tokens(trajectory, self.tokenizer, system=self.system)
        return [chat.ids[: chat.context_ends[t]] for t in wanted]

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _device(self) -> Any:
        return next(self.model.parameters()).device

    def _per_turn(self, net: Any, jobs: list, prefix: list[int]) -> list[list[float]]:
        """One padded sequence per (trajectory, context): context + answer wrapper + answer."""
        import torch

        rows = []  # (job index, sequence, answer start)
        for j, (contexts, target) in enumerate(jobs):
            for context in contexts:
                rows.append((j, context + prefix + target, len(context) + len(prefix)))
        out: list[list[float]] = [[] for _ in jobs]
        pad = self.tokenizer.pad_token_id or 0
        device = self._device()
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            width = max(len(seq) for _, seq, _ in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            wanted = []
            for b, (j, seq, answer_start) in enumerate(chunk):
                ids[b, : len(seq)] = torch.tensor(seq)
                mask[b, : len(seq)] = 1
                wanted.append(range(answer_start - 1, answer_start - 1 + len(jobs[j][1])))
            keep = sorted(set().union(*wanted))
            column = {position: k for k, position in enumerate(keep)}
            logp = next_token_logprobs(
                net, ids.to(device), mask.to(device), keep=torch.tensor(keep, device=device)
            ).cpu()
            self.last_stats["forward_passes"] += 1
            self.last_stats["tokens"] += ids.numel()
            for b, ((j, _, _), positions) in enumerate(zip(chunk, wanted)):
                out[j].append(float(logp[b, [column[p] for p in positions]].mean()))
        return out

    def _packed(self, net: Any, jobs: list, prefix: list[int]) -> list[list[float]]:
        """Two passes per chunk of trajectories whose contexts are prefixes of their longest one. 1: each
        longest context once, plain causal attention, keeping the KV cache. 2: one answer block per
        context, all blocks of a row side by side, each block attending to its context prefix in the
        cache (custom mask) and causally to itself."""
        import torch

        out: list[list[float]] = []
        pad = self.tokenizer.pad_token_id or 0
        device = self._device()
        for start in range(0, len(jobs), self.batch_size):
            chunk = jobs[start : start + self.batch_size]
            bases = [max(contexts, key=len) for contexts, _ in chunk]
            blocks = [prefix + target for _, target in chunk]
            width = max(len(base) for base in bases)
            queries = max(len(block) * len(contexts) for block, (contexts, _) in zip(blocks, chunk))
            base_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            base_mask = torch.zeros((len(chunk), width), dtype=torch.long)
            block_ids = torch.full((len(chunk), queries), pad, dtype=torch.long)
            positions = torch.zeros((len(chunk), queries), dtype=torch.long)
            allowed = torch.zeros((len(chunk), queries, width + queries), dtype=torch.bool)
            wanted_positions = []
            for b, ((contexts, target), base, block) in enumerate(zip(chunk, bases, blocks)):
                base_ids[b, : len(base)] = torch.tensor(base, dtype=torch.long)
                base_mask[b, : len(base)] = 1
                n = len(block)
                causal = torch.ones((n, n), dtype=torch.bool).tril()
                rows = []
                for k, context in enumerate(contexts):
                    begin, end = k * n, len(context)
                    block_ids[b, begin : begin + n] = torch.tensor(block, dtype=torch.long)
                    positions[b, begin : begin + n] = torch.arange(end, end + n)
                    allowed[b, begin : begin + n, :end] = True
                    allowed[b, begin : begin + n, width + begin : width + begin + n] = causal
                    rows.append(range(begin + len(prefix) - 1, begin + len(prefix) - 1 + len(target)))
                for i in range(n * len(contexts), queries):  # padding attends to itself only
                    allowed[b, i, width + i] = True
                wanted_positions.append(rows)
            keep = sorted(set().union(*(r for rows in wanted_positions for r in rows)))
            column = {position: k for k, position in enumerate(keep)}
            cache = returned_cache(
                net(
                    input_ids=base_ids.to(device),
                    # no padding: no mask, so attention takes its fast causal path
                    attention_mask=None if bool(base_mask.all()) else base_mask.to(device),
                    use_cache=True,
                    logits_to_keep=1,
                )
            )
            logp = next_token_logprobs(
                net,
                block_ids.to(device),
                self._mask(allowed).to(device),
                positions.to(device),
                keep=torch.tensor(keep, device=device),
                past_key_values=cache,
            ).cpu()
            self.last_stats["forward_passes"] += 2
            self.last_stats["tokens"] += base_ids.numel() + block_ids.numel()
            for b, rows in enumerate(wanted_positions):
                out.append([float(logp[b, [column[p] for p in r]].mean()) for r in rows])
        return out

    def _mask(self, allowed: Any) -> Any:
        """A 4D attention mask from a boolean (batch, query, key) one, as the attention code expects it."""
        import torch

        if getattr(self.model.config, "_attn_implementation", None) == "sdpa":
            return allowed[:, None]  # boolean, True attends
        dtype = next(self.model.parameters()).dtype
        return torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)[:, None]

    # ------------------------------------------------------------ rewards
    def _gain(self, before: float, after: float) -> float:
        return math.exp(after) - math.exp(before) if self.ig == "prob" else after - before

    def score(self, trajectories: Sequence[Trajectory]) -> list[list[float]]:
        finals = [bool(t.turns) and is_final_turn(t, len(t.turns) - 1) for t in trajectories]
        contexts = [range(len(t.turns) + 1 - final) for t, final in zip(trajectories, finals)]
        beliefs = self.beliefs(trajectories, contexts)
        out = []
        for trajectory, final, belief in zip(trajectories, finals, beliefs):
            rewards = [self._gain(belief[t], belief[t + 1]) for t in range(len(trajectory.turns) - final)]
            if final:
                rewards.append(self.outcome(trajectory))
            out.append(rewards)
        return out

    def begin_episode(self, trajectory: Trajectory) -> None:
        self._episode_beliefs = {}

    def score_last_turn(self, trajectory: Trajectory) -> float:
        """Online: one new context scored per step (the previous belief is cached)."""
        t = len(trajectory.turns)
        if is_final_turn(trajectory, t - 1):
            return self.outcome(trajectory)
        missing = [k for k in (t - 1, t) if k not in self._episode_beliefs]
        if missing:
            self._episode_beliefs.update(zip(missing, self.beliefs([trajectory], [missing])[0]))
        return self._gain(self._episode_beliefs[t - 1], self._episode_beliefs[t])
