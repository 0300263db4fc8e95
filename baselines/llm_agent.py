"""An LLM agent over any Hugging Face causal LM from a local folder (never a hub download).

:class:`LLMAgent` builds a chat prompt per turn (system: role, goal and output format; then a window of
past observations and replies; then the current observation with the admissible actions or the tool
list), generates for every pending episode of a rollout in **one batch** with the KV cache (its own
sampling loop, so each token's log-prob is the one it was sampled from), extracts the action, and returns a
:class:`~agentgym.trajectory.Decision` carrying the exact prompt and response token ids and log-probs
as generated. Nothing is ever re-tokenized from text.

Output formats (``output_format``); replies are parsed by :func:`agentgym.actions.parse_reply`, the one
parser the hooks use too (the first action of a reply wins):

* ``"react"``: a short thought, then ``Action: <command>`` on the last line;
* ``"action"``: the command only;
* ``"tool"``: one JSON tool call ``{"name": ..., "arguments": {...}}`` (optionally inside
  ``<tool_call>`` tags); the tool schemas come from ``info["tools"]`` (SWEGym);
* ``"raw"``: the whole reply, flattened to one line (for hooks that parse it themselves, e.g. RLVMR);
* ``"choice"``: the reply **is** one of the listed admissible actions, by prefix-constrained decoding over a
  token trie of them (:class:`~agentgym.wrappers.lm.ActionTrie`): at every position sampling (or argmax) is
  restricted to the tokens that continue some listed action, and the end-of-turn token is allowed only
  where an action is complete. ``response_logprobs`` are the exact log-probs of that *masked* distribution
  (``logits / temperature`` renormalised over the allowed tokens) and ``Decision.info["allowed_token_ids"]``
  holds the allowed ids of every response position, so the trainer recomputes the same distribution
  (:func:`agentgym.baselines.train_pg.batch_logprobs`). Each action is tokenized as the chat template
  tokenizes an assistant reply of exactly that text (checked once per agent), so the response ids are
  what a fresh forward pass scores. The reply length is the longest listed action's (``max_new_tokens``
  does not cut an action). A turn without admissible actions falls back to ``"action"`` (counted as
  ``no_admissible``). Small models need this: free text rarely matches a command;
* ``"auto"`` (default): ``"tool"`` when ``info["tools"]`` is present, else ``"react"``.

With ``near_miss=True`` an extracted action that is not admissible is replaced by the closest admissible
one (``difflib`` ratio at least ``near_miss_cutoff``); every replacement is counted in
:attr:`LLMAgent.counters` and reported in ``Decision.info["near_miss"]``. ``token_budget`` caps the
prompt+response tokens of one episode (the reply is shortened to fit; the rollout's own ``token_budget``
truncates the episode); ``Decision.info`` flags ``response_truncated`` (no end-of-turn token within
``max_new_tokens``), ``prompt_truncated`` (history or observation cut to fit ``max_prompt_tokens``) and
``budget_limited``.

Example:
    >>> from agentgym.baselines.llm_agent import LLMAgent
    >>> agent = LLMAgent.from_pretrained("smollm2", max_new_tokens=48)     # doctest: +SKIP
    >>> decision = agent.act(obs, info, episode_id="e0")                   # doctest: +SKIP
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from agentgym.actions import extract_action
from agentgym.actions import one_line as _one_line
from agentgym.agents import Agent
from agentgym.error import InvalidArgumentError
from agentgym.trajectory import Decision
from agentgym.wrappers.hooks import check_choice
from agentgym.wrappers.lm import (
    ActionTrie,
    allowed_mask,
    build_cache,
    cache_argument,
    cache_key_values,
    load_causal_lm,
    masked_log_softmax,
    next_token_logprobs,
    returned_cache,
)

OutputFormat = Literal["auto", "react", "action", "tool", "raw", "choice"]
FORMATS = ("auto", "react", "action", "tool", "raw", "choice")

_INSTRUCTIONS = {
    "react": "Think in one short sentence, then give the next command on its own line as:\nAction: <command>",
    "action": "Reply with the next command only.",
    "tool": 'Reply with exactly one tool call as JSON: {"name": "<tool>", "arguments": {...}}',
    "raw": "Reply with your next move.",
    "choice": "Reply with one of the admissible actions, exactly as written.",
}


def closest_action(action: str, admissible: Sequence[str], cutoff: float) -> str | None:
    """The admissible action closest to ``action`` (case and spaces ignored), or None below ``cutoff``."""
    norm = {" ".join(a.lower().split()): a for a in admissible}
    match = difflib.get_close_matches(" ".join(action.lower().split()), list(norm), n=1, cutoff=cutoff)
    return norm[match[0]] if match else None


def _tool_lines(tools: Sequence[Mapping[str, Any]]) -> str:
    lines = []
    for tool in tools:
        spec = tool.get("function", tool)
        params = ", ".join(spec.get("parameters", {}).get("properties", {}))
        lines.append(f"- {spec.get('name')}({params}): {spec.get('description', '')}")
    return "Tools:\n" + "\n".join(lines)


# --------------------------------------------------------------------------- log-probs of given tokens
def token_logprobs(
    model: Any, input_ids: Any, attention_mask: Any, start: int = 0, temperature: float = 1.0
) -> Any:
    """``out[b, j] = log p(input_ids[b, start + j + 1] | prefix)`` under ``logits / temperature``.

    Rows are right-padded; positions follow the attention mask. Keeps the autograd graph, and computes
    the vocabulary projection only from position ``start`` on.
    """
    import torch

    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    keep = torch.arange(start, input_ids.shape[1] - 1, device=input_ids.device)
    return next_token_logprobs(model, input_ids, attention_mask, position_ids, keep=keep, temperature=temperature)


# --------------------------------------------------------------------------- the agent
@dataclasses.dataclass
class _Episode:
    history: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (observation, reply)
    tokens: int = 0


class LLMAgent(Agent):
    """A chat LLM policy; see the module docstring.

    Args:
        model, tokenizer: a causal LM and its tokenizer (with a chat template).
        output_format: ``auto``, ``react``, ``action``, ``tool``, ``raw`` or ``choice``.
        history: past turns (observation + reply) kept in the prompt.
        max_new_tokens: reply length limit.
        temperature: sampling temperature (log-probs are those of ``logits / temperature``).
        greedy: take the most likely token instead of sampling (log-probs still recorded).
        near_miss: map a non-admissible action to the closest admissible one.
        near_miss_cutoff: smallest ``difflib`` similarity ratio for that mapping.
        max_prompt_tokens: prompts are cut to this length (oldest history first, then the observation).
        max_admissible: at most this many admissible actions are listed in the prompt.
        token_budget: per-episode cap on prompt+response tokens (None: none).
        system_prompt: replaces the default role sentence.
        seed: seeds the sampling generator.
        device: ``cuda`` when available, else ``cpu`` (None: choose).
        bf16: run the model under bfloat16 autocast on CUDA.
        name: the agent name recorded in trajectories and evaluation rows.
    """

    name = "llm"
    info_keys = frozenset({"admissible_actions", "tools"})

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        output_format: OutputFormat = "auto",
        history: int = 3,
        max_new_tokens: int = 64,
        temperature: float = 1.0,
        greedy: bool = False,
        near_miss: bool = False,
        near_miss_cutoff: float = 0.6,
        max_prompt_tokens: int = 1024,
        max_admissible: int = 40,
        token_budget: int | None = None,
        system_prompt: str | None = None,
        seed: int = 0,
        device: str | None = None,
        bf16: bool = True,
        name: str | None = None,
    ):
        import torch

        check_choice("output_format", output_format, FORMATS)
        if temperature <= 0:
            raise InvalidArgumentError(f"temperature must be > 0 (greedy=True for argmax), got {temperature}")
        if max_new_tokens < 1 or history < 0:
            raise InvalidArgumentError(
                f"need max_new_tokens >= 1 and history >= 0, got {max_new_tokens}, {history}"
            )
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device)
        self.tokenizer = tokenizer
        self.output_format = output_format
        self.history = history
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.greedy = greedy
        self.near_miss = near_miss
        self.near_miss_cutoff = near_miss_cutoff
        self.max_prompt_tokens = max_prompt_tokens
        self.max_admissible = max_admissible
        self.token_budget = token_budget
        self.system_prompt = system_prompt or "You are an agent acting in a text environment."
        self.seed = seed
        self.bf16 = bf16 and self.device.startswith("cuda")
        if name:
            self.name = name
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        vocab = tokenizer.get_vocab()
        ends = [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>") if t in vocab]
        stops = {tokenizer.eos_token_id, *ends}
        self.stop_ids = sorted(i for i in stops if i is not None)
        #: The token that closes an assistant turn in the chat template: ends every choice-format reply.
        self.end_id = vocab.get("<|im_end|>", tokenizer.eos_token_id)
        self._action_ids: dict[str, list[int]] = {}
        self._reply_boundary_checked = False
        #: Running counts: decisions, near_miss, fallback (no format rule matched), response_truncated,
        #: prompt_truncated, budget_limited, no_admissible (a choice-format turn without admissible actions).
        self.counters: collections.Counter[str] = collections.Counter()
        self._episodes: dict[str, _Episode] = {}
        #: Choice-format prefill reuse: the KV of each prompt's system message (role, goal, instructions), the
        #: same at every turn of an episode and in every episode of a task, keyed by its token ids; valid
        #: while the weights are unchanged (``_prefix_version``), at most ``MAX_PREFIXES`` kept.
        self._prefix_kv: dict[tuple[int, ...], list[tuple[Any, Any]]] = {}
        self._prefix_version: tuple[int, int] | None = None
        self._prefix_reuse = True

    MAX_PREFIXES = 256

    # ------------------------------------------------------------------ construction
    def config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this agent (recorded in checkpoints)."""
        keys = ("output_format", "history", "max_new_tokens", "temperature", "greedy", "near_miss",
                "near_miss_cutoff", "max_prompt_tokens", "max_admissible", "token_budget", "system_prompt",
                "seed")
        return {key: getattr(self, key) for key in keys}

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs: Any) -> LLMAgent:
        """Load a local model folder (or ``"smollm2"``: :mod:`agentgym.wrappers.lm`); nothing downloads."""
        model, tokenizer = load_causal_lm(name_or_path)
        return cls(model, tokenizer, **kwargs)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, **overrides: Any) -> LLMAgent:
        """An agent from a trainer checkpoint folder (``agent.json`` with ``"kind": "llm"``).

        The folder holds either a full ``model/`` or a LoRA ``adapter/`` over ``base_model`` (merged on load).
        Evaluation defaults to greedy decoding (``greedy=False`` in ``overrides`` to sample).
        """
        path = Path(path)
        meta = json.loads((path / "agent.json").read_text())
        if meta.get("kind") != "llm":
            raise InvalidArgumentError(
                f"{path / 'agent.json'} is a {meta.get('kind')!r} checkpoint, not 'llm'"
            )
        if meta.get("adapter"):
            from peft import PeftModel

            base, tokenizer = load_causal_lm(meta["base_model"])
            model = PeftModel.from_pretrained(base, str(path / meta["adapter"])).merge_and_unload()
            model.eval()
        else:
            model, tokenizer = load_causal_lm(path / meta["model"])
        kwargs = {**meta.get("agent", {}), "greedy": True, "name": meta.get("name") or f"llm:{path.name}"}
        kwargs.update(overrides)
        return cls(model, tokenizer, **kwargs)

    # ------------------------------------------------------------------ prompts
    def _format(self, info: Mapping[str, Any]) -> str:
        if self.output_format == "choice" and not info.get("admissible_actions"):
            self.counters["no_admissible"] += 1
            return "action"
        if self.output_format != "auto":
            return self.output_format
        return "tool" if info.get("tools") else "react"

    def _shown_actions(self, info: Mapping[str, Any]) -> list[str]:
        """The admissible actions listed in the prompt (the first ``max_admissible``, duplicates dropped);
        a choice-format reply is one of exactly these."""
        return list(dict.fromkeys(info.get("admissible_actions") or []))[: self.max_admissible]

    def _messages(self, episode: _Episode, observation: str, info: Mapping[str, Any], fmt: str,
                  window: int, obs_chars: int | None) -> list[dict[str, str]]:
        system = self.system_prompt
        if info.get("goal"):
            system += f"\nGoal: {info['goal']}"
        if fmt == "tool" and info.get("tools"):
            system += "\n" + _tool_lines(info["tools"])
        system += "\n" + _INSTRUCTIONS[fmt]
        messages = [{"role": "system", "content": system}]
        for past_obs, reply in episode.history[len(episode.history) - window :] if window else []:
            messages += [{"role": "user", "content": past_obs}, {"role": "assistant", "content": reply}]
        # a shortened observation keeps its end: the latest text
        current = observation if obs_chars is None else "..." + observation[-obs_chars:]
        actions = list(dict.fromkeys(info.get("admissible_actions") or []))
        if actions and fmt != "tool":
            shown = self._shown_actions(info)
            more = f" (and {len(actions) - len(shown)} more)" if len(actions) > len(shown) and fmt != "choice" else ""
            current += "\n\nAdmissible actions: " + " | ".join(shown) + more
        messages.append({"role": "user", "content": current})
        return messages

    def _encode(self, messages: list[dict[str, str]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def reply_token_ids(self, action: str) -> list[int]:
        """The token ids of an assistant reply that is exactly ``action`` (without the end-of-turn token)."""
        if action not in self._action_ids:
            if len(self._action_ids) > 100_000:
                self._action_ids.clear()
            self._action_ids[action] = list(self.tokenizer(action, add_special_tokens=False)["input_ids"])
        return self._action_ids[action]

    def check_reply_boundary(self, messages: list[dict[str, str]], action: str) -> None:
        """Raise unless the chat template tokenizes ``messages`` + an assistant reply ``action`` as the
        generation prompt's ids, then :meth:`reply_token_ids`, then the end-of-turn token: the condition for
        the choice format's recorded ids to be what a fresh forward pass over the conversation scores."""
        prompt = self._encode(messages)
        text = self.tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": action}],
                                                  tokenize=False)
        full = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        expected = [*prompt, *self.reply_token_ids(action), self.end_id]
        if full[: len(expected)] != expected:
            raise InvalidArgumentError(
                "output_format='choice': this tokenizer's chat template merges the assistant reply "
                f"{action!r} with the tokens around it ({full[len(prompt) - 2 : len(expected) + 1]} vs "
                f"{expected[len(prompt) - 2 :]}), so constrained replies would not be re-scored exactly"
            )

    def _prompt(
        self, episode: _Episode, observation: str, info: Mapping[str, Any], fmt: str
    ) -> tuple[list[int], bool]:
        """Prompt ids within ``max_prompt_tokens``: drop old turns first, then shorten the observation."""
        window = min(self.history, len(episode.history))
        obs_chars: int | None = None
        while True:
            ids = self._encode(self._messages(episode, observation, info, fmt, window, obs_chars))
            truncated = window < min(self.history, len(episode.history)) or obs_chars is not None
            if len(ids) <= self.max_prompt_tokens:
                return ids, truncated
            if window > 0:
                window -= 1
            elif (obs_chars or len(observation)) > 32:
                obs_chars = (obs_chars or len(observation)) // 2
            else:
                return ids[-self.max_prompt_tokens :], True

    # ------------------------------------------------------------------ acting
    def act(self, observation: str, info: Mapping[str, Any], *, episode_id: str = "") -> Decision:
        return self.act_batch([observation], [info], [episode_id])[0]

    def act_batch(
        self, observations: Sequence[str], infos: Sequence[Mapping[str, Any]], episode_ids: Sequence[str]
    ) -> list[Decision]:
        episodes = [self._episodes.setdefault(e, _Episode()) for e in episode_ids]
        formats = [self._format(info) for info in infos]
        prompts, cut, limits, limited, tries, choices = [], [], [], [], [], []
        for episode, obs, info, fmt in zip(episodes, observations, infos, formats, strict=True):
            ids, truncated = self._prompt(episode, obs, info, fmt)
            prompts.append(ids)
            cut.append(truncated)
            left = None if self.token_budget is None else self.token_budget - episode.tokens - len(ids)
            trie, by_ids = None, {}
            if fmt == "choice":
                shown = self._shown_actions(info)
                if not self._reply_boundary_checked:
                    self.check_reply_boundary(self._messages(episode, obs, info, fmt, 0, None), shown[0])
                    self._reply_boundary_checked = True
                by_ids = {tuple(self.reply_token_ids(a)): a for a in shown}
                trie = ActionTrie([list(key) for key in by_ids], self.end_id)
            tries.append(trie)
            choices.append(by_ids)
            # a choice reply is never cut short (it would not be an action): the rollout's budget check ends
            # the episode instead
            wanted = trie.depth if trie is not None else self.max_new_tokens
            limits.append(wanted if left is None or trie is not None else max(1, min(wanted, left)))
            limited.append(left is not None and left < wanted)
        responses, logprobs, allowed = self.sample(prompts, limits, tries)
        decisions = []
        for k, (episode, obs, info, fmt) in enumerate(zip(episodes, observations, infos, formats)):
            response = responses[k]
            text = self.tokenizer.decode(response, skip_special_tokens=True)
            if tries[k] is not None:
                action, how = choices[k][tuple(response[:-1])], "choice"
            else:
                action, how = extract_action(text, fmt)
            details: dict[str, Any] = {
                "reply": text,
                "format": fmt,
                "parse": how,
                "response_truncated": not response or response[-1] not in self.stop_ids,
                "prompt_truncated": cut[k],
                "budget_limited": limited[k],
                "near_miss": None,
            }
            if tries[k] is not None:
                details["allowed_token_ids"] = allowed[k]
            admissible = list(info.get("admissible_actions") or [])
            if self.near_miss and admissible and fmt != "tool" and action not in admissible:
                closest = closest_action(action, admissible, self.near_miss_cutoff)
                if closest is not None:
                    details["near_miss"] = {"from": action, "to": closest}
                    action = closest
            flags = ("response_truncated", "prompt_truncated", "budget_limited", "near_miss")
            self.counters.update(["decisions", *(key for key in flags if details[key])])
            if how == "fallback":
                self.counters["fallback"] += 1
            episode.history.append((obs, text))
            episode.tokens += len(prompts[k]) + len(response)
            text_out = action or _one_line(text) or "look"
            decisions.append(Decision(text_out, prompts[k], response, logprobs[k], info=details))
        return decisions

    def end_episode(self, episode_id: str) -> None:
        self._episodes.pop(episode_id, None)

    # ------------------------------------------------------------------ batched generation
    def generate(
        self, prompts: Sequence[Sequence[int]], max_new: Sequence[int]
    ) -> tuple[list[list[int]], list[list[float]]]:
        """Sample a reply for each prompt in one left-padded batch with the KV cache.

        Returns the response ids (ending with the stop token when one was produced) and the log-prob of
        each under ``logits / temperature``, as computed while sampling.
        """
        responses, logprobs, _ = self.sample(prompts, max_new)
        return responses, logprobs

    def sample(
        self, prompts: Sequence[Sequence[int]], max_new: Sequence[int],
        tries: Sequence[ActionTrie | None] | None = None,
    ) -> tuple[list[list[int]], list[list[float]], list[list[list[int]] | None]]:
        """:meth:`generate`, where a row with a trie in ``tries`` samples only tokens that continue one of its
        actions, from the distribution renormalised over them; also returns, per row, the allowed token ids
        of every response position (None for a row without a trie)."""
        import torch

        batch = len(prompts)
        limit = torch.tensor(list(max_new), device=self.device)
        stops = torch.tensor(self.stop_ids, device=self.device)
        done = torch.zeros(batch, dtype=torch.bool, device=self.device)
        steps: list[tuple[Any, Any, Any]] = []  # (token, log-prob, row still active) per step, on the device
        tries = list(tries) if tries is not None else [None] * batch
        prefixes: list[list[int]] = [[] for _ in range(batch)]
        allowed: list[list[list[int]] | None] = [[] if trie is not None else None for trie in tries]
        was_training = self.model.training
        self.model.eval()
        cache_key = cache_argument(getattr(self.model, "get_base_model", lambda: self.model)())
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16):
            first = self._reuse_prefixes(prompts) if all(trie is not None for trie in tries) else None
            if first is None:
                step_input, mask = self._left_padded(prompts)
                step_pos, cache = (mask.cumsum(-1) - 1).clamp(min=0), None
            else:
                step_input, mask, step_pos, cache = first
            for step in range(int(limit.max())):
                extra = {cache_key: cache} if cache is not None else {}
                output = self.model(input_ids=step_input, attention_mask=mask, position_ids=step_pos,
                                    use_cache=True, logits_to_keep=1, **extra)
                cache = returned_cache(output)
                scores = output.logits[:, -1].float() / self.temperature
                constraint = None
                if any(trie is not None and not done[b] for b, trie in enumerate(tries)):
                    choices = [trie.allowed(prefixes[b]) if trie is not None and not done[b] else None
                               for b, trie in enumerate(tries)]
                    for b, ids_b in enumerate(choices):
                        if ids_b is not None:
                            allowed[b].append(ids_b)
                    constraint = allowed_mask(choices, scores.shape[-1], device=self.device)
                logp = masked_log_softmax(scores, constraint)
                if self.greedy:
                    token = logp.argmax(-1)
                else:
                    token = torch.multinomial(logp.exp(), 1, generator=self.generator).squeeze(-1)
                steps.append((token, logp.gather(-1, token[:, None]).squeeze(-1), ~done))
                if constraint is not None:
                    for b in range(batch):
                        if tries[b] is not None and not done[b]:
                            prefixes[b].append(int(token[b]))
                done = done | torch.isin(token, stops) | (step + 1 >= limit)
                if bool(done.all()):
                    break
                step_input = token[:, None]
                step_pos = step_pos[:, -1:] + 1
                mask = torch.cat([mask, torch.ones((batch, 1), dtype=mask.dtype, device=self.device)], dim=1)
        self.model.train(was_training)
        tokens, logps, active = (torch.stack(parts, dim=1).cpu() for parts in zip(*steps))
        out_ids = [tokens[b][active[b]].tolist() for b in range(batch)]
        out_lp = [logps[b][active[b]].tolist() for b in range(batch)]
        return out_ids, out_lp, allowed

    def _left_padded(self, prompts: Sequence[Sequence[int]]) -> tuple[Any, Any]:
        """``(ids, attention_mask)`` of ``prompts`` left-padded to one width, on the device."""
        import torch

        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            if prompt:
                ids[row, width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
                mask[row, width - len(prompt) :] = 1
        return ids.to(self.device), mask.to(self.device)

    def _reuse_prefixes(self, prompts: Sequence[Sequence[int]]) -> tuple[Any, Any, Any, Any] | None:
        """The first forward's ``(input ids, attention mask, position ids, KV cache)`` with each prompt's
        system message (its ids up to the first end-of-turn token) taken from stored KV, so only the rest
        (observation and actions) is computed; None when no prompt has such a prefix or the model's cache
        is not a plain one (the caller then runs the whole prompts).

        A choice-format rollout repeats the same system message (role, goal, instructions: about two
        thirds of the prompt) at every turn and in every episode of a task, so this cuts the prefill cost
        about threefold. Layout of each row: ``[pad | prefix | pad | rest]``; the mask hides the pads and
        the position ids continue the prefix's, so the result is the full prompt's forward pass up to float
        rounding. The store is emptied when any weight changes (the sum of the parameters' version counters,
        which every in-place update bumps), so a trainer's update never meets a stale prefix.
        """
        import torch
        from torch.nn.functional import pad

        if not self._prefix_reuse:
            return None
        version = (id(self.model), sum(p._version for p in self.model.parameters()))
        if version != self._prefix_version:
            self._prefix_kv.clear()
            self._prefix_version = version
        cuts = [list(p).index(self.end_id) + 1 if self.end_id in p else 0 for p in prompts]
        cuts = [cut if cut < len(p) else 0 for cut, p in zip(cuts, prompts)]
        prefixes = [tuple(p[:cut]) for p, cut in zip(prompts, cuts)]
        if not any(prefixes):
            return None
        if len(self._prefix_kv) + len(set(prefixes)) > self.MAX_PREFIXES:
            self._prefix_kv.clear()
        missing = list(dict.fromkeys(x for x in prefixes if x and x not in self._prefix_kv))
        if missing:
            ids, mask = self._left_padded(missing)
            output = self.model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                                use_cache=True, logits_to_keep=1)
            layers = cache_key_values(returned_cache(output))
            if layers is None:
                self._prefix_reuse = False
                return None
            for b, prefix in enumerate(missing):
                start = ids.shape[1] - len(prefix)
                self._prefix_kv[prefix] = [(k[b : b + 1, :, start:].clone(), v[b : b + 1, :, start:].clone())
                                           for k, v in layers]
        template = self._prefix_kv[next(x for x in prefixes if x)]
        width = max(len(x) for x in prefixes)

        def stored(prefix: tuple[int, ...], layer: int, which: int) -> Any:
            tensor = self._prefix_kv[prefix][layer][which] if prefix else template[layer][which][:, :, :0]
            return pad(tensor, (0, 0, width - len(prefix), 0))

        cache = build_cache([tuple(torch.cat([stored(x, layer, which) for x in prefixes]) for which in (0, 1))
                             for layer in range(len(template))])
        rest_ids, rest_mask = self._left_padded([p[cut:] for p, cut in zip(prompts, cuts)])
        prefix_mask = self._left_padded(prefixes)[1]
        lengths = torch.tensor([len(x) for x in prefixes], device=self.device)
        positions = (rest_mask.cumsum(-1) - 1).clamp(min=0) + lengths[:, None]
        return rest_ids, torch.cat([prefix_mask, rest_mask], dim=1), positions, cache
