"""One action parser for the whole gym: the LLM agent, the online hook wrapper and every reward hook use it.

An agent's *reply* is the text the model wrote; its *action* is the command sent to the env. A
:class:`~agentgym.trajectory.Turn` keeps both (``Turn.reply``, ``Turn.action``). :func:`parse_reply`
turns a reply into a :class:`ParsedReply`: the action, the rule that found it, whether the reply is
**well formed** (exactly one complete action in its format, nothing ambiguous) and the first meta-reasoning
tag (RLVMR).

Rules (each names ``ParsedReply.rule``):

=============  ==========================================================================================
rule           matches
=============  ==========================================================================================
``tool_json``  a JSON object with a string ``name`` (or ``{"function": {...}}``), optionally inside
               ``<tool_call>`` tags; the action is ``{"name": ..., "arguments": {...}}`` re-serialised.
               Well formed: exactly one such call, ``arguments`` (when given) an object.
``tag``        an ``<action>...</action>`` block (case-insensitive). An unclosed ``<action>`` at the end of a
               reply (cut at the token limit) still gives its text, but is not well formed. Well formed:
               exactly one ``<action>``/``<answer>`` block, closed and non-empty.
``answer``     an ``<answer>...</answer>`` block and no ``<action>`` block (QA replies; IGPO, PRS).
``react``      a line containing ``Action: <command>`` (case-insensitive). Well formed: exactly one such
               line, a non-empty command, and it is the last non-empty line — so a ReAct reply
               ``"thought\\nAction: x"`` is well formed, ``"Action: x\\nObservation: ..."`` is not.
``action``     a plain command: the first non-empty line. Well formed: the reply is that one line, at most
               :data:`MAX_COMMAND_CHARS` characters, with no ``<tag>`` markup.
``raw``        the whole reply flattened to one line (``format="raw"``: for hooks that parse it themselves).
``fallback``   nothing matched: the last non-empty line. Never well formed.
=============  ==========================================================================================

**Several actions: the first one wins** (every rule). A model that keeps writing after its action is
simulating later turns ("Action: x\\nObservation: ...\\nAction: y"); the first action is the one it meant
for this turn, and it is what RLVMR's and verl-agent's reference projections take. Such a reply is not well
formed.

Which rules are tried, in order, depends on the reply format the agent asked for (``format``):

* ``"tool"``: tool_json, tag/answer, fallback;
* ``"react"``: tag/answer, react, fallback;
* ``"action"``: tag/answer, action;
* ``"rlvmr"``: tag/answer, fallback; well formed also needs a closed meta-reasoning block (``<planning>``,
  ``<explore>``, ``<reflection>`` or ``<monitor>``) before the action — the paper's rule; RLVMR's stricter
  reference-code rule lives in :func:`agentgym.wrappers.rlvmr.parse_rlvmr`;
* ``"raw"``: raw;
* ``"auto"`` (what hooks use: they do not know the agent's format): tool_json, tag/answer, react, then a
  plain one-line command; a reply that starts like a tool call (``{`` or ``<tool_call>``) but does not parse,
  or carries ``<tag>`` markup without an action block, is a fallback.

Example:
    >>> from agentgym.actions import parse_reply
    >>> parse_reply("The chest is closed.\\nAction: open chest")
    ParsedReply(action='open chest', rule='react', well_formed=True, tag=None, count=1, issue=None)
    >>> parse_reply("<planning>get the key</planning><action>take key</action><action>go on</action>").action
    'take key'

Change logs:
    v0: initial version: one rule set replaces the agent's, RLVMR's and PRS's own parsers.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Literal

ReplyFormat = Literal["auto", "react", "action", "tool", "raw", "rlvmr"]
FORMATS = ("auto", "react", "action", "tool", "raw", "rlvmr")
META_TAGS = ("planning", "explore", "reflection", "monitor")
#: Longest plain command counted as well formed (longer one-liners are prose, not commands).
MAX_COMMAND_CHARS = 200

_ACTION_OPEN_RE = re.compile(r"<action>", re.IGNORECASE)
_ACTION_RE = re.compile(r"<action>(.*?)</action>", re.IGNORECASE | re.DOTALL)
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)
_ANSWER_OPEN_RE = re.compile(r"<answer>", re.IGNORECASE)
_META_RE = re.compile(r"<(planning|explore|reflection|monitor)>(.*?)</\1>", re.IGNORECASE | re.DOTALL)
_REACT_RE = re.compile(r"\baction\s*:\s*(.*)", re.IGNORECASE)
_MARKUP_RE = re.compile(r"</?[A-Za-z_][\w-]*>")
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f]+")


@dataclasses.dataclass(frozen=True)
class ParsedReply:
    """What :func:`parse_reply` found in a reply (module docstring)."""

    #: The command to send to the env ('' when the reply has none).
    action: str
    #: The rule that found it: tool_json, tag, answer, react, action, raw or fallback.
    rule: str
    #: Exactly one complete action in the reply's format, nothing ambiguous.
    well_formed: bool
    #: The first closed meta-reasoning block's tag (planning, explore, reflection, monitor), or None.
    tag: str | None = None
    #: How many actions the rule found (more than one: the first wins, not well formed).
    count: int = 0
    #: Why the reply is not well formed (None when it is).
    issue: str | None = None


@dataclasses.dataclass(frozen=True)
class MetaBlock:
    """One closed meta-reasoning block: its tag, its content and where it lies in the reply."""

    tag: str
    content: str
    start: int
    end: int


def one_line(text: str) -> str:
    """``text`` with control characters and runs of whitespace collapsed to single spaces."""
    return " ".join(_CONTROL_RE.sub(" ", text).split())


def clean_command(text: str) -> str:
    """One line, without surrounding quotes or backticks, and without a final period after a phrase."""
    text = one_line(text).strip().strip("`'\"").strip()
    return text[:-1] if text.endswith(".") and " " in text else text


def meta_blocks(text: str) -> list[MetaBlock]:
    """The closed ``<planning>``/``<explore>``/``<reflection>``/``<monitor>`` blocks of a reply, in order."""
    return [MetaBlock(m.group(1).lower(), m.group(2), m.start(), m.end()) for m in _META_RE.finditer(text)]


def action_blocks(text: str) -> list[re.Match[str]]:
    """The closed ``<action>...</action>`` blocks of a reply, in order (``.group(1)``: the content)."""
    return list(_ACTION_RE.finditer(text))


def tool_calls(text: str) -> list[dict[str, Any]]:
    """Every JSON object in ``text`` that is a tool call (a string ``name``; ``{"function": {...}}``
    unwrapped), found by decoding from each ``{`` that is not inside an earlier call."""
    decoder = json.JSONDecoder()
    calls, position = [], 0
    while True:
        start = text.find("{", position)
        if start < 0:
            return calls
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            position = start + 1
            continue
        position = end
        if isinstance(value, dict) and isinstance(value.get("function"), dict):
            value = value["function"]
        if isinstance(value, dict) and isinstance(value.get("name"), str) and value["name"]:
            calls.append(value)


# --------------------------------------------------------------------------- the rules
def _tool(text: str) -> ParsedReply | None:
    calls = tool_calls(text)
    if not calls:
        return None
    call = calls[0]
    arguments = call.get("arguments", {})
    action = json.dumps({"name": call["name"], "arguments": arguments}, ensure_ascii=False)
    issue = None
    if len(calls) > 1:
        issue = f"{len(calls)} tool calls"
    elif not isinstance(arguments, dict):
        issue = "tool call arguments are not an object"
    return ParsedReply(action, "tool_json", issue is None, count=len(calls), issue=issue)


def _tag(text: str) -> ParsedReply | None:
    actions, answers = action_blocks(text), list(_ANSWER_RE.finditer(text))
    opened = len(_ACTION_OPEN_RE.findall(text)) + len(_ANSWER_OPEN_RE.findall(text))
    count = len(actions) + len(answers)
    if actions:
        action, rule = one_line(actions[0].group(1)), "tag"
    elif answers:
        action, rule = one_line(answers[0].group(1)), "answer"
    else:
        unclosed = _ACTION_OPEN_RE.search(text)
        if unclosed is None:
            return None
        tail = text[unclosed.end() :]
        return ParsedReply(one_line(tail), "tag", False, count=1, issue="unclosed <action>")
    issue = None
    if count > 1:
        issue = f"{count} action/answer blocks"
    elif opened > count:
        issue = "unclosed <action> or <answer>"
    elif not action:
        issue = "empty action block"
    return ParsedReply(action, rule, issue is None, count=count, issue=issue)


def _react(text: str) -> ParsedReply | None:
    lines = [line for line in (ln.strip() for ln in text.splitlines()) if line]
    hits = [(k, m) for k, line in enumerate(lines) for m in [_REACT_RE.search(line)] if m]
    if not hits:
        return None
    k, match = hits[0]
    action = clean_command(match.group(1))
    issue = None
    if len(hits) > 1:
        issue = f"{len(hits)} Action: lines"
    elif not action:
        issue = "empty Action: line"
    elif k != len(lines) - 1:
        issue = "text after the Action: line"
    return ParsedReply(action, "react", issue is None, count=len(hits), issue=issue)


def _plain(text: str) -> ParsedReply:
    lines = [line for line in (ln.strip() for ln in text.splitlines()) if line]
    if not lines:
        return ParsedReply("", "fallback", False, issue="empty reply")
    issue = None
    if len(lines) > 1:
        issue = f"{len(lines)} lines"
    elif len(lines[0]) > MAX_COMMAND_CHARS:
        issue = f"longer than {MAX_COMMAND_CHARS} characters"
    elif _MARKUP_RE.search(lines[0]):
        issue = "markup without an <action> block"
    return ParsedReply(clean_command(lines[0]), "action", issue is None, count=1, issue=issue)


def _fallback(text: str, issue: str = "no action rule matched") -> ParsedReply:
    lines = [line for line in (ln.strip() for ln in text.splitlines()) if line]
    return ParsedReply(clean_command(lines[-1]) if lines else "", "fallback", False, issue=issue)


def _first_tag(text: str) -> str | None:
    blocks = meta_blocks(text)
    return blocks[0].tag if blocks else None


def parse_reply(text: str, format: ReplyFormat | str = "auto") -> ParsedReply:
    """Parse one reply under the rules of ``format`` (module docstring)."""
    if format not in FORMATS:
        from agentgym.error import InvalidArgumentError

        raise InvalidArgumentError(f"reply format must be one of {FORMATS}, got {format!r}")
    text = text or ""
    tag = _first_tag(text)
    if format == "raw":
        action = one_line(text)
        issue = None if action else "empty reply"
        return ParsedReply(action, "raw", bool(action), tag, int(bool(action)), issue)
    parsed: ParsedReply | None = None
    if format in ("tool", "auto"):
        parsed = _tool(text)
    if parsed is None:
        parsed = _tag(text)
    if parsed is None and format in ("react", "auto"):
        parsed = _react(text)
    if parsed is None:
        if format == "action":
            parsed = _plain(text)
        elif format == "auto":
            stripped = text.strip()
            if stripped.startswith("{") or "<tool_call>" in stripped.lower():
                parsed = _fallback(text, "unparseable tool call")
            else:
                parsed = _plain(text)
                if not parsed.well_formed and parsed.rule == "action":
                    parsed = _fallback(text, parsed.issue or "")
        else:
            parsed = _fallback(text)
    if format == "rlvmr" and parsed.well_formed:
        blocks = meta_blocks(text)
        first_action = action_blocks(text)[:1]
        before = blocks and first_action and blocks[0].start < first_action[0].start()
        if not before:
            issue = "no meta-reasoning block before the action"
            parsed = dataclasses.replace(parsed, well_formed=False, issue=issue)
    return dataclasses.replace(parsed, tag=tag)


def extract_action(text: str, output_format: str) -> tuple[str, str]:
    """``(action, rule)`` of a reply (the LLM agent's call): :func:`parse_reply` in short."""
    parsed = parse_reply(text, output_format)
    return parsed.action, parsed.rule
