"""An agent behind any OpenAI-compatible chat-completions server (vLLM, llama.cpp, sglang, OpenAI).

``agentgym eval --agent openai:BASE_URL#MODEL`` builds :class:`OpenAIAgent` (``--agent-kwargs`` are its
keyword arguments). Each turn it sends the :class:`~agentgym.baselines.llm_agent.LLMAgent`'s prompt (the
same system message, history window and admissible-action list, built by
:func:`agentgym.baselines.llm_prompts.prompt_messages`) as chat
``messages`` in ``POST BASE_URL/chat/completions``, reads ``choices[0].message.content`` (or its first
``tool_calls`` entry, as JSON) and extracts the action with :func:`agentgym.actions.parse_reply`. The client
is the standard library's (``urllib``): no extra dependency.

* **Key**: ``Authorization: Bearer $OPENAI_API_KEY`` when that variable (or ``api_key``) is set; a local
  server needs none.
* **Concurrency**: the pending turns of a rollout's episodes are sent at once, at most ``concurrency``
  requests in flight.
* **Timeouts and retries**: a request with no answer within ``timeout`` seconds (per socket read), a
  refused connection, a 408/409/429 or a 5xx answer is retried up to ``max_retries`` times after
  ``backoff * 2**attempt`` seconds (at most ``max_backoff``; a ``Retry-After`` header wins). Another 4xx
  (a bad model name, a prompt over the context length) fails at once.
* **A failure is reported, not hidden**: when the retries run out, :class:`ModelServerError` says why
  (the address, the attempts, the last error). The turn is not played with a made-up action: under
  ``agentgym eval`` the evaluation stops with that one-line message, every finished episode is already
  stored, and running the same command again plays only the missing episodes (the ones in flight are
  replayed from their start, so none is lost or stored twice).
* **Token usage**: each decision's ``Decision.info["usage"]`` (recorded as ``Turn.agent_info["usage"]``)
  holds the server's ``usage`` (``prompt_tokens``, ``completion_tokens``, ``total_tokens``), with
  ``attempts`` and ``seconds``; :attr:`OpenAIAgent.stats` sums them over the agent's life with
  ``requests``, ``retries`` and ``decisions``. No token ids: a server does not return them.

Example:
    >>> from agentgym.agents import make_agent
    >>> agent = make_agent("openai:http://localhost:8000/v1#Qwen2.5-7B-Instruct", temperature=0.0)  # doctest: +SKIP
    >>> agent.name                                                                                   # doctest: +SKIP
    'openai:Qwen2.5-7B-Instruct@5be0c2a1'
"""

from __future__ import annotations

import collections
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPException
from typing import Any

from agentgym.actions import one_line, parse_reply
from agentgym.agent_specs import name_agent, split_openai_spec
from agentgym.agents import Agent
from agentgym.baselines.llm_prompts import (
    DEFAULT_SYSTEM_PROMPT,
    FORMATS,
    Episode,
    closest_action,
    prompt_messages,
    turn_format,
)
from agentgym.error import AgentGymError, InvalidArgumentError
from agentgym.trajectory import Decision
from agentgym.wrappers.hooks import check_choice

#: HTTP statuses worth another try (the server is busy or failing, not refusing the request).
RETRY_STATUSES = frozenset({408, 409, 429})


class ModelServerError(AgentGymError, RuntimeError):
    """The model server did not answer a turn (after the retries), or answered something unusable."""


class OpenAIAgent(Agent):
    """Chat-completions policy; see the module docstring.

    Args:
        base_url: the API root as the OpenAI client takes it, e.g. ``http://localhost:8000/v1``.
        model: the ``model`` field of each request.
        output_format: ``auto``, ``react``, ``action``, ``tool`` or ``raw`` (as the LLM agent's; ``choice``
            needs token-level constraints a server does not offer).
        history: past turns (observation + reply) kept in the prompt.
        temperature, top_p, max_tokens: sampling fields of each request (``top_p`` sent when set).
        system_prompt: replaces the default role sentence.
        max_admissible: at most this many admissible actions listed in the prompt.
        near_miss, near_miss_cutoff: map a non-admissible action to the closest admissible one.
        seed: sent as the request's ``seed`` (servers that support it sample reproducibly).
        timeout: seconds to wait for an answer (each socket read).
        max_retries: further tries of a failed request.
        backoff, max_backoff: first and longest wait between tries, in seconds.
        concurrency: most requests in flight at once.
        api_key: bearer token (default ``$OPENAI_API_KEY``; none sent when empty).
        extra_body: more JSON fields for each request (e.g. ``{"top_k": 20}`` for vLLM).
        name: readable label of the agent's name (default ``openai:MODEL``); ``@HASH`` is appended.
    """

    info_keys = frozenset({"admissible_actions", "tools"})

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        output_format: str = "auto",
        history: int = 3,
        temperature: float = 0.0,
        top_p: float | None = None,
        max_tokens: int = 256,
        system_prompt: str | None = None,
        max_admissible: int = 40,
        near_miss: bool = False,
        near_miss_cutoff: float = 0.6,
        seed: int = 0,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        concurrency: int = 8,
        api_key: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        name: str | None = None,
    ):
        check_choice("output_format", output_format, tuple(f for f in FORMATS if f != "choice"))
        if temperature < 0 or max_tokens < 1 or history < 0:
            raise InvalidArgumentError(
                f"need temperature >= 0, max_tokens >= 1 and history >= 0, got {temperature}, {max_tokens}, {history}"
            )
        if timeout <= 0 or max_retries < 0 or concurrency < 1:
            raise InvalidArgumentError(
                f"need timeout > 0, max_retries >= 0 and concurrency >= 1, got {timeout}, {max_retries}, {concurrency}"
            )
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.output_format = output_format
        self.history = history
        self.temperature = temperature
        self.top_p = top_p
        self.max_tokens = max_tokens
        self.system_prompt = system_prompt or DEFAULT_SYSTEM_PROMPT
        self.max_admissible = max_admissible
        self.near_miss = near_miss
        self.near_miss_cutoff = near_miss_cutoff
        self.seed = seed
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.concurrency = concurrency
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        self.extra_body = dict(extra_body or {})
        #: Sums over the agent's life: decisions, requests, retries, prompt_tokens, completion_tokens,
        #: total_tokens, near_miss, fallback.
        self.stats: collections.Counter[str] = collections.Counter()
        self._episodes: dict[str, Episode] = {}
        name_agent(
            self,
            name or f"openai:{model}",
            {"spec": f"openai:{base_url}#{model}", "kind": "openai", "model": model, "agent": self.config()},
        )

    @classmethod
    def from_spec(cls, spec: str, **kwargs: Any) -> OpenAIAgent:
        """The agent of ``openai:BASE_URL#MODEL`` with keyword arguments ``kwargs``."""
        base_url, model = split_openai_spec(spec)
        return cls(base_url, model, **kwargs)

    def config(self) -> dict[str, Any]:
        """What changes the replies: prompt format and sampling settings (not the seed, address or key)."""
        keys = (
            "output_format",
            "history",
            "temperature",
            "top_p",
            "max_tokens",
            "system_prompt",
            "max_admissible",
            "near_miss",
            "near_miss_cutoff",
            "extra_body",
        )
        return {key: getattr(self, key) for key in keys}

    # ------------------------------------------------------------------ acting
    def act(self, observation: str, info: Mapping[str, Any], *, episode_id: str = "") -> Decision:
        return self.act_batch([observation], [info], [episode_id])[0]

    def act_batch(
        self, observations: Sequence[str], infos: Sequence[Mapping[str, Any]], episode_ids: Sequence[str]
    ) -> list[Decision]:
        episodes = [self._episodes.setdefault(e, Episode()) for e in episode_ids]
        formats = [turn_format(self.output_format, info, self.stats) for info in infos]
        payloads = [
            self._payload(
                prompt_messages(
                    self.system_prompt,
                    episode,
                    obs,
                    info,
                    fmt,
                    min(self.history, len(episode.history)),
                    None,
                    self.max_admissible,
                )
            )
            for episode, obs, info, fmt in zip(episodes, observations, infos, formats, strict=True)
        ]
        if len(payloads) == 1:
            answers = [self._complete(payloads[0])]
        else:
            with ThreadPoolExecutor(min(self.concurrency, len(payloads))) as pool:
                answers = list(pool.map(self._complete, payloads))
        return [self._decide(*args) for args in zip(episodes, observations, infos, formats, answers)]

    def end_episode(self, episode_id: str) -> None:
        self._episodes.pop(episode_id, None)

    def _payload(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
        }
        if self.top_p is not None:
            payload["top_p"] = self.top_p
        return {**payload, **self.extra_body}

    def _decide(
        self,
        episode: Episode,
        observation: str,
        info: Mapping[str, Any],
        fmt: str,
        answer: tuple[str, str | None, dict[str, int], int, float],
    ) -> Decision:
        reply, finish_reason, usage, attempts, seconds = answer
        parsed = parse_reply(reply, fmt)
        action = parsed.action
        details: dict[str, Any] = {
            "reply": reply,
            "format": fmt,
            "parse": parsed.rule,
            "near_miss": None,
            "response_truncated": finish_reason == "length",
            "usage": {**usage, "attempts": attempts, "seconds": round(seconds, 3)},
        }
        admissible = list(info.get("admissible_actions") or [])
        if self.near_miss and admissible and fmt != "tool" and action not in admissible:
            closest = closest_action(action, admissible, self.near_miss_cutoff)
            if closest is not None:
                details["near_miss"] = {"from": action, "to": closest}
                action = closest
        self.stats.update(
            {
                "decisions": 1,
                "near_miss": int(details["near_miss"] is not None),
                "fallback": int(parsed.rule == "fallback"),
                **usage,
            }
        )
        episode.history.append((observation, reply))
        return Decision(action or one_line(reply) or "look", info=details, reply=reply)

    # ------------------------------------------------------------------ the protocol
    def _complete(self, payload: dict[str, Any]) -> tuple[str, str | None, dict[str, int], int, float]:
        """``(reply, finish_reason, usage, attempts, seconds)`` of one request, retried (module docstring)."""
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        started = time.perf_counter()
        for attempt in range(1, self.max_retries + 2):
            self.stats["requests"] += 1
            retry_after = None
            try:
                request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = response.read()
            except urllib.error.HTTPError as exc:
                detail = one_line(exc.read(500).decode(errors="replace"))
                problem = f"HTTP {exc.code} {exc.reason}: {detail}"
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
                if exc.code not in RETRY_STATUSES and exc.code < 500:
                    raise ModelServerError(f"{self.url} refused the request ({problem})") from None
            except (TimeoutError, urllib.error.URLError, HTTPException, ConnectionError) as exc:
                reason = getattr(exc, "reason", exc)
                problem = (
                    f"timed out: no answer within {self.timeout:g} s"
                    if isinstance(reason, TimeoutError)
                    else f"{type(reason).__name__}: {reason}"
                )
            else:
                reply, finish_reason, usage = self._read(raw)
                return reply, finish_reason, usage, attempt, time.perf_counter() - started
            if attempt > self.max_retries:
                raise ModelServerError(
                    f"{self.url} (model {self.model!r}) failed {attempt} attempts, last: {problem}. "
                    "agentgym eval keeps the finished episodes: run it again to resume"
                )
            self.stats["retries"] += 1
            time.sleep(_wait(retry_after, min(self.max_backoff, self.backoff * 2 ** (attempt - 1))))
        raise AssertionError("unreachable")

    def _read(self, raw: bytes) -> tuple[str, str | None, dict[str, int]]:
        """``(reply, finish_reason, usage)`` of a chat-completions answer."""
        try:
            answer = json.loads(raw)
            choice = answer["choices"][0]
            message = choice["message"]
            reply = message.get("content")
            if not reply and message.get("tool_calls"):
                call = message["tool_calls"][0]["function"]
                arguments = call.get("arguments") or "{}"
                if isinstance(arguments, str):
                    arguments = json.loads(arguments)
                reply = json.dumps({"name": call["name"], "arguments": arguments})
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            excerpt = one_line(raw[:300].decode(errors="replace"))
            raise ModelServerError(
                f"{self.url} answered something that is not a chat completion ({type(exc).__name__}: {exc}): {excerpt}"
            ) from None
        usage = {
            key: int(value)
            for key, value in (answer.get("usage") or {}).items()
            if key in ("prompt_tokens", "completion_tokens", "total_tokens") and isinstance(value, int)
        }
        return reply or "", choice.get("finish_reason"), usage


def _wait(retry_after: str | None, default: float) -> float:
    """Seconds to wait before the next try: the server's ``Retry-After`` (seconds, at most 60) or ``default``."""
    try:
        return min(60.0, max(0.0, float(retry_after))) if retry_after else default
    except ValueError:
        return default
