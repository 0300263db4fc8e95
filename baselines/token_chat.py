"""Token-in/token-out chat prompts, and the meter of re-tokenization drift.

The field's most reported multi-turn RL bug is *re-tokenization drift*: each turn the agent re-renders the
chat history as text and tokenizes it again, so the history's ids differ from the ids the model generated
(a reply cut mid-word, a merge across a message boundary, a window that drops old turns, a special token
the decoder dropped). The trainer then scores tokens the model never produced, and the KL to the rollout
policy spikes. Two tools here:

* :class:`TokenChat` builds each turn's prompt by **appending** to the previous prompt and response ids:
  the end of the assistant turn, the next user message and the generation prompt are tokenized on their
  own, and the history's ids are never tokenized again. Each new prompt therefore starts with the previous
  prompt + response ids, by construction; and when the response ids are the canonical tokenization of the
  reply (plus the end-of-turn token), the ids equal the template's own tokenization of the whole
  conversation (:attr:`TokenChat.matches_template`, checked once per tokenizer). The one exception is
  inherent to generating after a rendered prompt: a reply whose first token the tokenizer would merge with
  the generation prompt's end (SmolLM2 merges its newline with leading spaces) has no such tokenization;
  appending keeps the ids as generated, where re-tokenizing would change the history.
* :func:`token_drift` / :func:`drift_report` measure drift on recorded trajectories: a turn drifts when
  its prompt ids do not start with the previous turn's prompt + response ids.

The template's pieces (what follows an assistant reply up to the next user content, what follows a user
content up to the reply) are derived once from the template itself, by rendering a conversation with
sentinel contents and splitting the text around them; any template that renders each message
independently of the later ones works (ChatML, SmolLM2's and Qwen's default-system templates). A template
whose rendering of earlier turns depends on later ones cannot be appended to and is refused.

Example:
    >>> chat = TokenChat(tokenizer, stop_ids=[tokenizer.eos_token_id])                # doctest: +SKIP
    >>> prompt = chat.open([{"role": "user", "content": "A hall."}])                  # doctest: +SKIP
    >>> prompt = chat.extend(prompt, response_ids, "You go north. A kitchen.")        # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from agentgym.error import InvalidArgumentError

#: Sentinel contents of the conversation rendered to split the template: plain words that no template
#: writes itself, tokenized without surprises (no spaces or newlines for a template to trim).
_USER = ("sentinelUserOne", "sentinelUserTwo", "sentinelUserThree")
_REPLY = ("sentinelReplyOne", "sentinelReplyTwo")


class TokenChat:
    """Prompt ids of a multi-turn chat, each turn appended to the previous prompt and response ids.

    Args:
        tokenizer: a Hugging Face tokenizer with a chat template.
        stop_ids: the ids that end a generated reply (one of them must be the token the template closes an
            assistant turn with, e.g. ``<|im_end|>``).

    Raises:
        InvalidArgumentError: the template cannot be split into independent pieces (it re-renders earlier
            turns depending on later ones, or does not write a reply verbatim after the generation
            prompt), or no stop id is the token that closes an assistant turn.
    """

    def __init__(self, tokenizer: Any, stop_ids: Sequence[int]):
        self.tokenizer = tokenizer
        self.stop_ids = frozenset(int(i) for i in stop_ids)
        u1, u2, u3 = (_msg("user", u) for u in _USER)
        a1, a2 = (_msg("assistant", a) for a in _REPLY)
        first = self._render([u1])
        second = self._render([u1, a1, u2])
        if not second.startswith(first + a1["content"]):
            raise InvalidArgumentError(
                "TokenChat: this chat template does not render a conversation as the previous prompt followed "
                f"by the reply (the first prompt is {first!r}, but with a reply and a user message it becomes "
                f"{second!r}); earlier turns are rendered depending on later ones, so prompts cannot be "
                "appended to: use the windowed prompt builder"
            )
        rest = second[len(first) + len(a1["content"]) :]
        where = rest.find(u2["content"])
        if where < 0:
            raise InvalidArgumentError(
                f"TokenChat: the chat template does not write a user message verbatim (rendered {rest!r})"
            )
        #: Template text from the end of a reply to the next user content (closing + user header), and from
        #: the end of a user content to the next reply (user closing + generation prompt).
        self._between, self._after_user = rest[:where], rest[where + len(u2["content"]) :]
        third = self._render([u1, a1, u2, a2, u3])
        predicted = second + a2["content"] + self._between + u3["content"] + self._after_user
        if third != predicted:
            raise InvalidArgumentError(
                "TokenChat: this chat template renders a turn differently depending on its position or on "
                f"later turns (expected {predicted!r}, the template renders {third!r}), so prompts cannot be "
                "appended to: use the windowed prompt builder"
            )
        texts = {i: tokenizer.decode([i]) for i in sorted(self.stop_ids)}
        found = {i: self._between.find(text) for i, text in texts.items() if text and text in self._between}
        if not found:
            raise InvalidArgumentError(
                f"TokenChat: none of the stop ids {texts} closes an assistant turn in this chat template, which "
                f"writes {self._between!r} after a reply; pass the template's end-of-turn token id in stop_ids"
            )
        #: The token that closes an assistant turn in the template (the stop id written first after a reply).
        self.end_id = min(found, key=found.get)
        self._after_end = self._between[found[self.end_id] + len(texts[self.end_id]) :]
        #: Whether appending canonical replies reproduces the template's own tokenization of the whole
        #: conversation. False for a tokenizer that merges text across the template's pieces (e.g. strips
        #: whitespace around special tokens): the ids stay drift-free, but differ from a fresh tokenization.
        self.matches_template = self._appended([u1, u2, u3], _REPLY) == self._encode(third)

    def _render(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def _appended(self, users: list[dict[str, str]], replies: Sequence[str]) -> list[int]:
        """The prompt ids :meth:`extend` builds for ``users`` interleaved with canonical ``replies``."""
        ids = self.open(users[:1])
        for reply, user in zip(replies, users[1:], strict=True):
            ids = self.extend(ids, [*self._encode(reply), self.end_id], user["content"])
        return ids

    def open(self, messages: list[dict[str, str]]) -> list[int]:
        """The first prompt: the chat template's ids of ``messages`` with the generation prompt (the same
        render-then-tokenize as the windowed builder, so the first turn is identical in both modes)."""
        return self._encode(self._render(messages))

    def extend(self, prompt_ids: Sequence[int], response_ids: Sequence[int], user_content: str) -> list[int]:
        """The next prompt: ``prompt_ids + response_ids``, then the end of the assistant turn, the user
        message ``user_content`` and the generation prompt, tokenized on their own.

        A response that ended with a stop id keeps it as generated (even a stop id other than the template's
        end-of-turn token) and gets only what the template writes after the end-of-turn token; a response cut
        by the length limit gets the template's whole end of turn, so the model sees a closed turn.
        """
        ended = bool(response_ids) and int(response_ids[-1]) in self.stop_ids
        tail = (self._after_end if ended else self._between) + user_content + self._after_user
        return [*prompt_ids, *response_ids, *self._encode(tail)]


def _msg(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def _turn_drifts(trajectory: Any) -> Iterable[tuple[int, bool]]:
    """``(k, drifted)`` for every turn k >= 1 whose prompt and the previous turn's prompt and response ids
    were recorded; turns without ids (a scripted agent, an old file) are not checked."""
    turns = trajectory.turns
    for k in range(1, len(turns)):
        before, now = turns[k - 1], turns[k]
        if before.prompt_token_ids is None or before.response_token_ids is None or now.prompt_token_ids is None:
            continue
        history = [*before.prompt_token_ids, *before.response_token_ids]
        yield k, list(now.prompt_token_ids[: len(history)]) != history


def token_drift(trajectory: Any) -> tuple[int, int]:
    """``(turns checked, turns drifted)``: a turn drifts when its prompt ids do not start with the previous
    turn's prompt + response ids (what a trainer re-scoring the history would see change)."""
    checks = [drifted for _, drifted in _turn_drifts(trajectory)]
    return len(checks), sum(checks)


def drifting_turns(trajectories: Iterable[Any]) -> list[tuple[str, int]]:
    """``(episode_id, turn index)`` of every drifted turn, for error messages that point at the data."""
    return [(t.episode_id, k) for t in trajectories for k, drifted in _turn_drifts(t) if drifted]


def drift_report(trajectories: Iterable[Any]) -> dict[str, float]:
    """Rollout metrics: ``rollout/token_drift_rate`` (drifted / checked turns, 0.0 when none was checked),
    ``rollout/token_drift_turns`` (drifted turns) and ``rollout/token_drift_episodes`` (episodes with any)."""
    checked = drifted = episodes = 0
    for trajectory in trajectories:
        n, bad = token_drift(trajectory)
        checked, drifted, episodes = checked + n, drifted + bad, episodes + (bad > 0)
    return {
        "rollout/token_drift_rate": drifted / checked if checked else 0.0,
        "rollout/token_drift_turns": drifted,
        "rollout/token_drift_episodes": episodes,
    }
