"""The chat prompt of the LLM agents: output formats, their instructions, the per-episode memory, and the
messages of one turn.

:class:`~agentgym.baselines.llm_agent.LLMAgent` (a local model) and
:class:`~agentgym.baselines.openai_agent.OpenAIAgent` (a model server) both call :func:`prompt_messages`,
so the two agents send the same conversation for the same turn. The messages are: one system message
(role sentence, goal, tool list in the ``tool`` format, the format's instruction), then a window of past
``(observation, reply)`` turns, then the current observation followed by the admissible actions (the first
``max_admissible``, see :func:`shown_actions`).

Example:
    >>> info = {"goal": "find the coin", "admissible_actions": ["look", "go north"]}
    >>> [m["role"] for m in prompt_messages("You act.", Episode(), "A hall.", info, "action", 0, None, 40)]
    ['system', 'user']
    >>> closest_action("Go  North", ["look", "go north"], cutoff=0.6)
    'go north'
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

OutputFormat = Literal["auto", "react", "action", "tool", "raw", "choice"]
FORMATS = ("auto", "react", "action", "tool", "raw", "choice")

#: The role sentence of the system message when the agent is given no ``system_prompt``.
DEFAULT_SYSTEM_PROMPT = "You are an agent acting in a text environment."

INSTRUCTIONS = {
    "react": "Think in one short sentence, then give the next command on its own line as:\nAction: <command>",
    "action": "Reply with the next command only.",
    "tool": 'Reply with exactly one tool call as JSON: {"name": "<tool>", "arguments": {...}}',
    "raw": "Reply with your next move.",
    "choice": "Reply with one of the admissible actions, exactly as written.",
}


@dataclasses.dataclass
class Episode:
    """What an agent remembers of one running episode."""

    history: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (observation, reply)
    tokens: int = 0  # prompt + response tokens spent so far (the LLM agent's ``token_budget``)


def closest_action(action: str, admissible: Sequence[str], cutoff: float) -> str | None:
    """The admissible action closest to ``action`` (case and spaces ignored), or None below ``cutoff``."""
    norm = {" ".join(a.lower().split()): a for a in admissible}
    match = difflib.get_close_matches(" ".join(action.lower().split()), list(norm), n=1, cutoff=cutoff)
    return norm[match[0]] if match else None


def tool_lines(tools: Sequence[Mapping[str, Any]]) -> str:
    """The tool list of the system message: one ``- name(params): description`` line per tool schema."""
    lines = []
    for tool in tools:
        spec = tool.get("function", tool)
        params = ", ".join(spec.get("parameters", {}).get("properties", {}))
        lines.append(f"- {spec.get('name')}({params}): {spec.get('description', '')}")
    return "Tools:\n" + "\n".join(lines)


def turn_format(output_format: str, info: Mapping[str, Any], counters: collections.Counter[str]) -> str:
    """The format of this turn's reply: ``auto`` resolves to ``tool`` when ``info["tools"]`` is present, else
    ``react``; ``choice`` without admissible actions falls back to ``action`` (counted as ``no_admissible``)."""
    if output_format == "choice" and not info.get("admissible_actions"):
        counters["no_admissible"] += 1
        return "action"
    if output_format != "auto":
        return output_format
    return "tool" if info.get("tools") else "react"


def shown_actions(info: Mapping[str, Any], max_admissible: int) -> list[str]:
    """The admissible actions listed in the prompt (the first ``max_admissible``, duplicates dropped);
    a choice-format reply is one of exactly these."""
    return list(dict.fromkeys(info.get("admissible_actions") or []))[:max_admissible]


def prompt_messages(
    system_prompt: str,
    episode: Episode,
    observation: str,
    info: Mapping[str, Any],
    fmt: str,
    window: int,
    obs_chars: int | None,
    max_admissible: int,
) -> list[dict[str, str]]:
    """The chat messages of one turn (module docstring): the last ``window`` past turns, and the
    observation's last ``obs_chars`` characters (None: all of it)."""
    system = system_prompt
    if info.get("goal"):
        system += f"\nGoal: {info['goal']}"
    if fmt == "tool" and info.get("tools"):
        system += "\n" + tool_lines(info["tools"])
    system += "\n" + INSTRUCTIONS[fmt]
    messages = [{"role": "system", "content": system}]
    for past_obs, reply in episode.history[len(episode.history) - window :] if window else []:
        messages += [{"role": "user", "content": past_obs}, {"role": "assistant", "content": reply}]
    # a shortened observation keeps its end: the latest text
    current = observation if obs_chars is None else "..." + observation[-obs_chars:]
    actions = list(dict.fromkeys(info.get("admissible_actions") or []))
    if actions and fmt != "tool":
        shown = shown_actions(info, max_admissible)
        more = f" (and {len(actions) - len(shown)} more)" if len(actions) > len(shown) and fmt != "choice" else ""
        current += "\n\nAdmissible actions: " + " | ".join(shown) + more
    messages.append({"role": "user", "content": current})
    return messages
