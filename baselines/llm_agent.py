"""An LLM agent over any Hugging Face causal LM from a local folder (never a hub download).

:class:`LLMAgent` builds a chat prompt per turn (system: role, goal and output format; then a window of
past observations and replies; then the current observation with the admissible actions or the tool
list), generates for every pending episode of a rollout in **one batch** through a generation backend
(:mod:`agentgym.baselines.generation`: ``"builtin"``, our own KV-cache loop, by default; ``"hf-generate"``,
``"vllm"`` or any :class:`~agentgym.baselines.generation.GenerationBackend`), extracts the action, and
returns a :class:`~agentgym.trajectory.Decision` carrying the exact prompt and response token ids and
log-probs as generated. Nothing is ever re-tokenized from text.
The prompt (formats, instructions, messages) is built by :mod:`agentgym.baselines.llm_prompts`, shared
with the OpenAI-compatible agent.

Prompt modes (``prompt_mode``):

* ``"window"`` (default): each turn's prompt is the chat template of the system message, the last
  ``history`` turns and the current observation, rendered and tokenized afresh (cut to
  ``max_prompt_tokens`` by dropping old turns first);
* ``"append"``: token-in/token-out (:class:`~agentgym.baselines.token_chat.TokenChat`): turn 0's prompt is
  the template of the system message and the first observation; each later prompt is the previous prompt +
  response ids followed by the new user message (``history`` does not apply: the whole episode stays in
  the prompt), so the history is never re-tokenized and the drift meter
  (:func:`~agentgym.baselines.token_chat.token_drift`) reads zero. A turn whose appended prompt would
  exceed ``max_prompt_tokens`` falls back to the window builder (flagged ``prompt_truncated``; the
  meter counts it as drift), and the following turns append to that prompt.

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
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agentgym.actions import extract_action
from agentgym.actions import one_line as _one_line
from agentgym.agents import Agent
from agentgym.baselines.generation import GenerationBackend, Sampling, make_backend
from agentgym.baselines.llm_prompts import (
    DEFAULT_SYSTEM_PROMPT,
    FORMATS,
    Episode,
    OutputFormat,
    closest_action,
    prompt_messages,
    shown_actions,
    turn_format,
)
from agentgym.baselines.llm_sampling import token_logprobs
from agentgym.error import InvalidArgumentError
from agentgym.trajectory import Decision
from agentgym.wrappers.hooks import check_choice
from agentgym.wrappers.lm import ActionTrie, load_causal_lm

#: Re-exported: the prompt and sampling helpers lived here before they had modules of their own.
__all__ = ["FORMATS", "LLMAgent", "OutputFormat", "closest_action", "extract_action", "token_logprobs"]
_Episode = Episode


PROMPT_MODES = ("window", "append")


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
        bf16: on CUDA, the builtin backend samples with a bfloat16 copy of the policy (False: the fp32
            policy itself).
        name: the agent name recorded in trajectories and evaluation rows.
        backend: ``"builtin"``, ``"hf-generate"``, ``"vllm"`` (:func:`~agentgym.baselines.generation.make_backend`)
            or a backend instance.
        backend_kwargs: keyword arguments of the backend's constructor (a backend name only).
        prompt_mode: ``"window"`` or ``"append"`` (module docstring).
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
        backend: str | GenerationBackend = "builtin",
        backend_kwargs: Mapping[str, Any] | None = None,
        prompt_mode: str = "window",
    ):
        import torch

        check_choice("output_format", output_format, FORMATS)
        check_choice("prompt_mode", prompt_mode, PROMPT_MODES)
        if temperature <= 0:
            raise InvalidArgumentError(f"temperature must be > 0 (greedy=True for argmax), got {temperature}")
        if max_new_tokens < 1 or history < 0:
            raise InvalidArgumentError(f"need max_new_tokens >= 1 and history >= 0, got {max_new_tokens}, {history}")
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
        self.system_prompt = system_prompt or DEFAULT_SYSTEM_PROMPT
        self.seed = seed
        self.bf16 = bf16 and self.device.startswith("cuda")
        self.prompt_mode = prompt_mode
        if name:
            self.name = name
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
        self._episodes: dict[str, Episode] = {}
        #: prompt_mode="append": each running episode's last (prompt ids, response ids).
        self._last_ids: dict[str, tuple[list[int], list[int]]] = {}
        self._token_chat: Any = None
        if isinstance(backend, str):
            kwargs = dict(backend_kwargs or {})
            if backend == "builtin":
                kwargs.setdefault("dtype", "bfloat16" if self.bf16 else "float32")
            self.backend = make_backend(backend, self.model, tokenizer, device=self.device, seed=seed, **kwargs)
        else:
            if backend_kwargs:
                raise InvalidArgumentError("backend_kwargs go with a backend name, not a backend instance")
            self.backend = backend

    @property
    def generator(self) -> Any:
        """The sampling stream's ``torch.Generator`` (the backend's): trainer checkpoints save its state."""
        return self.backend.generator

    # ------------------------------------------------------------------ construction
    def config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this agent (recorded in checkpoints)."""
        keys = (
            "output_format",
            "history",
            "max_new_tokens",
            "temperature",
            "greedy",
            "near_miss",
            "near_miss_cutoff",
            "max_prompt_tokens",
            "max_admissible",
            "token_budget",
            "system_prompt",
            "seed",
            "prompt_mode",
        )
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
            raise InvalidArgumentError(f"{path / 'agent.json'} is a {meta.get('kind')!r} checkpoint, not 'llm'")
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
        return turn_format(self.output_format, info, self.counters)

    def _shown_actions(self, info: Mapping[str, Any]) -> list[str]:
        return shown_actions(info, self.max_admissible)

    def _messages(
        self, episode: Episode, observation: str, info: Mapping[str, Any], fmt: str, window: int, obs_chars: int | None
    ) -> list[dict[str, str]]:
        return prompt_messages(
            self.system_prompt, episode, observation, info, fmt, window, obs_chars, self.max_admissible
        )

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
        text = self.tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": action}], tokenize=False)
        full = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        expected = [*prompt, *self.reply_token_ids(action), self.end_id]
        if full[: len(expected)] != expected:
            raise InvalidArgumentError(
                "output_format='choice': this tokenizer's chat template merges the assistant reply "
                f"{action!r} with the tokens around it ({full[len(prompt) - 2 : len(expected) + 1]} vs "
                f"{expected[len(prompt) - 2 :]}), so constrained replies would not be re-scored exactly"
            )

    def _prompt(self, episode: Episode, observation: str, info: Mapping[str, Any], fmt: str) -> tuple[list[int], bool]:
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

    def _append_prompt(
        self, episode_id: str, episode: Episode, observation: str, info: Mapping[str, Any], fmt: str
    ) -> tuple[list[int], bool]:
        """prompt_mode="append": turn 0 opens the chat with the window builder's messages (no history);
        later turns extend the previous prompt + response ids with this turn's user message (the window
        builder's last message). Too long for ``max_prompt_tokens``: the window builder's prompt, flagged."""
        if self._token_chat is None:
            from agentgym.baselines.token_chat import TokenChat

            self._token_chat = TokenChat(self.tokenizer, self.stop_ids)
        messages = self._messages(episode, observation, info, fmt, 0, None)
        last = self._last_ids.get(episode_id)
        ids = (
            self._token_chat.open(messages)
            if last is None
            else self._token_chat.extend(last[0], last[1], messages[-1]["content"])
        )
        if len(ids) <= self.max_prompt_tokens:
            return ids, False
        return self._prompt(episode, observation, info, fmt)[0], True

    def sampling(self, max_new_tokens: int, constraint: ActionTrie | None = None) -> Sampling:
        """One row's :class:`~agentgym.baselines.generation.Sampling` under the agent's current settings
        (``temperature``, ``greedy`` and ``stop_ids`` are read at each call: evaluation flips ``greedy``)."""
        return Sampling(max_new_tokens, self.temperature, self.greedy, tuple(self.stop_ids), constraint)

    def generate(
        self, prompts: Sequence[Sequence[int]], max_new: Sequence[int]
    ) -> tuple[list[list[int]], list[list[float]]]:
        """Sample a reply for each prompt in one batch: ``(response ids, log-probs)``, the ids ending with
        the stop token when one was produced, each log-prob that of ``logits / temperature``."""
        out = self.backend.generate(prompts, [self.sampling(n) for n in max_new])
        return [g.token_ids for g in out], [g.logprobs for g in out]

    # ------------------------------------------------------------------ acting
    def act(self, observation: str, info: Mapping[str, Any], *, episode_id: str = "") -> Decision:
        return self.act_batch([observation], [info], [episode_id])[0]

    def act_batch(
        self, observations: Sequence[str], infos: Sequence[Mapping[str, Any]], episode_ids: Sequence[str]
    ) -> list[Decision]:
        episodes = [self._episodes.setdefault(e, Episode()) for e in episode_ids]
        formats = [self._format(info) for info in infos]
        prompts, cut, limits, limited, tries, choices = [], [], [], [], [], []
        for episode_id, episode, obs, info, fmt in zip(
            episode_ids, episodes, observations, infos, formats, strict=True
        ):
            if self.prompt_mode == "append":
                ids, truncated = self._append_prompt(episode_id, episode, obs, info, fmt)
            else:
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
        generations = self.backend.generate(prompts, [self.sampling(n, t) for n, t in zip(limits, tries)])
        decisions = []
        for k, (episode, obs, info, fmt) in enumerate(zip(episodes, observations, infos, formats)):
            response, logprobs = generations[k].token_ids, generations[k].logprobs
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
                details["allowed_token_ids"] = generations[k].allowed_token_ids
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
            if self.prompt_mode == "append":
                self._last_ids[episode_ids[k]] = (prompts[k], response)
            decisions.append(Decision(text_out, prompts[k], response, logprobs, info=details))
        return decisions

    def end_episode(self, episode_id: str) -> None:
        self._episodes.pop(episode_id, None)
        self._last_ids.pop(episode_id, None)
