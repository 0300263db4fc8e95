"""The agent's tools: JSON schemas for LLM tool calling, and the plain-text syntax.

An action is one of:

* a **tool call as JSON** (one line): ``{"name": "view", "arguments": {"path": "setup.py"}}``;
  ``arguments`` may also be a JSON-encoded string, and OpenAI's ``{"function": {...}}`` wrapper is
  accepted;
* **plain text**: the tool name, then its arguments::

      bash <command line, verbatim>
      view <path> [<first line> [<last line>]]
      search <pattern> [<path>]                  (shell-style quoting for spaces)
      create_file <path> "<content as a JSON string>"
      str_replace <path> "<old text>" "<new text>"   (JSON strings: write newlines as \\n)
      undo_edit <path>
      run_tests [<test file or node id> ...]
      submit

Actions are single lines (agentgym refuses control characters), so multi-line text travels as JSON
string escapes (``\\n``, ``\\"``, ``\\\\``).

JSON escapes can carry what a plain action cannot (``"\\u0000"``, a lone ``"\\ud800"``), so
:func:`check_arguments` checks the decoded arguments before any tool runs: no NUL bytes or unpaired
surrogates in any string, paths of at most :data:`MAX_PATH_BYTES` UTF-8 bytes (components at most
:data:`MAX_NAME_BYTES`), commands and patterns of at most :data:`MAX_ARGUMENT_BYTES` (the kernel refuses
longer single arguments), line numbers within +-:data:`MAX_LINE`, at most :data:`MAX_PATHS` test paths.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

#: Longest path a tool accepts (UTF-8 bytes; Linux's PATH_MAX) and longest path component (NAME_MAX).
MAX_PATH_BYTES, MAX_NAME_BYTES = 4096, 255
#: Longest command or search pattern (UTF-8 bytes; below the kernel's 128 KiB limit on one argument).
MAX_ARGUMENT_BYTES = 100_000
#: Largest line number, and most test paths, a call may give.
MAX_LINE, MAX_PATHS = 10**9, 200
_PATH_ARGUMENTS = ("path",)
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")

_STR = {"type": "string"}

#: The tools in OpenAI function-calling form (also the order of ``info["tools"]``).
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "bash",
            "description": "Run a shell command (bash) in the repository root, sandboxed: no network, "
            "limited time and memory. Returns its output and exit code.",
            "parameters": {"type": "object", "properties": {"command": _STR}, "required": ["command"]},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "view",
            "description": "Show a file with line numbers (optionally a line range), or list a folder.",
            "parameters": {
                "type": "object",
                "properties": {"path": _STR, "start_line": {"type": "integer"}, "end_line": {"type": "integer"}},
                "required": ["path"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search files for a regular expression (grep -rnE); optional path.",
            "parameters": {"type": "object", "properties": {"pattern": _STR, "path": _STR}, "required": ["pattern"]},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "create_file",
            "description": "Create or overwrite a file with the given content.",
            "parameters": {
                "type": "object",
                "properties": {"path": _STR, "content": _STR},
                "required": ["path", "content"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "str_replace",
            "description": "Replace old_str, which must occur exactly once in the file, with new_str.",
            "parameters": {
                "type": "object",
                "properties": {"path": _STR, "old_str": _STR, "new_str": _STR},
                "required": ["path", "old_str", "new_str"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "undo_edit",
            "description": "Undo the last create_file or str_replace on a file.",
            "parameters": {"type": "object", "properties": {"path": _STR}, "required": ["path"]},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "run_tests",
            "description": "Run the task's tests (or the given test files / node ids) "
            "with pytest and show the results.",
            "parameters": {"type": "object", "properties": {"paths": {"type": "array", "items": _STR}}},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "submit",
            "description": "Submit the current changes for grading; ends the episode.",
            "parameters": {"type": "object", "properties": {}},
        },
    },
]
TOOL_NAMES = tuple(tool["function"]["name"] for tool in TOOLS)
_REQUIRED = {t["function"]["name"]: t["function"]["parameters"].get("required", []) for t in TOOLS}
_PROPERTIES = {t["function"]["name"]: t["function"]["parameters"]["properties"] for t in TOOLS}

SYNTAX = """Tools (one per action; plain text or a JSON tool call {"name": ..., "arguments": {...}}):
  bash <command>                              run a shell command in the repository root
  view <path> [<first line> [<last line>]]    show a file with line numbers, or list a folder
  search <pattern> [<path>]                   grep -rnE for a regular expression
  create_file <path> "<content>"              write a file (content as a JSON string: newlines as \\n)
  str_replace <path> "<old>" "<new>"          replace a unique occurrence of old with new (JSON strings)
  undo_edit <path>                            undo the last edit of a file
  run_tests [<test file or node id> ...]      run the tests
  submit                                      submit your changes (ends the episode)"""


class ToolSyntaxError(ValueError):
    """An action that is not a well-formed tool call; the message says how to write it."""


def _json_strings(text: str, count: int, tool: str) -> list[str]:
    decoder, values, at = json.JSONDecoder(), [], 0
    for _ in range(count):
        while at < len(text) and text[at] == " ":
            at += 1
        try:
            value, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            raise ToolSyntaxError(
                f"{tool} expects {count} JSON string(s) after the path, e.g. "
                f"{tool} src/a.py " + ('"old text" "new text"' if count == 2 else '"line 1\\nline 2\\n"')
            ) from None
        if not isinstance(value, str):
            raise ToolSyntaxError(f"{tool}: arguments after the path must be JSON strings in double quotes")
        values.append(value)
    if text[at:].strip():
        raise ToolSyntaxError(f"{tool}: unexpected text after the arguments: {text[at:].strip()[:60]!r}")
    return values


def parse(action: str) -> tuple[str, dict[str, Any]]:
    """``(tool name, arguments)`` of an action, or :class:`ToolSyntaxError`."""
    if action.startswith("{"):
        return _parse_json(action)
    name, _, rest = action.partition(" ")
    rest = rest.strip()
    if name not in TOOL_NAMES:
        raise ToolSyntaxError(f"unknown tool {name[:40]!r}; the tools are {', '.join(TOOL_NAMES)}")
    if name == "bash":
        if not rest:
            raise ToolSyntaxError("bash needs a command, e.g. bash ls -la")
        return name, {"command": rest}
    if name in ("create_file", "str_replace"):
        path, _, tail = rest.partition(" ")
        if not path:
            raise ToolSyntaxError(f"{name} needs a path")
        values = _json_strings(tail, 1 if name == "create_file" else 2, name)
        keys = ["content"] if name == "create_file" else ["old_str", "new_str"]
        return name, {"path": path, **dict(zip(keys, values))}
    try:
        words = shlex.split(rest)
    except ValueError as exc:
        raise ToolSyntaxError(f"{name}: cannot split the arguments ({exc})") from None
    if name == "view":
        if not 1 <= len(words) <= 3:
            raise ToolSyntaxError("view <path> [<first line> [<last line>]]")
        try:
            lines = [int(w) for w in words[1:]]
        except ValueError:
            raise ToolSyntaxError("view: line numbers must be integers") from None
        return name, {"path": words[0], **dict(zip(["start_line", "end_line"], lines))}
    if name == "search":
        if not 1 <= len(words) <= 2:
            raise ToolSyntaxError("search <pattern> [<path>] (quote a pattern with spaces)")
        return name, {"pattern": words[0], **({"path": words[1]} if len(words) == 2 else {})}
    if name == "undo_edit":
        if len(words) != 1:
            raise ToolSyntaxError("undo_edit <path>")
        return name, {"path": words[0]}
    if name == "run_tests":
        return name, {"paths": words} if words else {}
    if words:
        raise ToolSyntaxError("submit takes no arguments")
    return name, {}


def _parse_json(action: str) -> tuple[str, dict[str, Any]]:
    try:
        call = json.loads(action)
    except (ValueError, RecursionError) as exc:  # also numbers over Python's digit limit, deep nesting
        raise ToolSyntaxError(f"the action starts with '{{' but is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(call, dict):
        raise ToolSyntaxError("a JSON tool call must be an object")
    if isinstance(call.get("function"), dict):
        call = call["function"]
    name, arguments = call.get("name"), call.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except (ValueError, RecursionError) as exc:
            raise ToolSyntaxError(f"'arguments' is a string but not valid JSON: {str(exc)[:200]}") from None
    if name not in TOOL_NAMES:
        raise ToolSyntaxError(f"unknown tool {str(name)[:40]!r}; the tools are {', '.join(TOOL_NAMES)}")
    if not isinstance(arguments, dict):
        raise ToolSyntaxError("'arguments' must be an object")
    missing = [key for key in _REQUIRED[name] if key not in arguments]
    if missing:
        raise ToolSyntaxError(f"{name} needs the arguments {missing}")
    unknown = sorted(set(arguments) - set(_PROPERTIES[name]))
    if unknown:
        raise ToolSyntaxError(f"{name} has no arguments {unknown}; it takes {sorted(_PROPERTIES[name])}")
    for key, value in arguments.items():
        kind = _PROPERTIES[name][key]["type"]
        ok = {
            "string": isinstance(value, str),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "array": isinstance(value, list) and all(isinstance(v, str) for v in value),
        }[kind]
        if not ok:
            raise ToolSyntaxError(f"{name}: argument {key!r} must be of type {kind}")
    return name, dict(arguments)


def check_arguments(name: str, arguments: dict[str, Any]) -> str | None:
    """What is wrong with a parsed call's argument values (``None`` when nothing is); see the module."""
    for key, value in arguments.items():
        for text in value if isinstance(value, list) else [value]:
            if not isinstance(text, str):
                continue
            bad = _BAD_TEXT.search(text)
            if bad is not None:
                what = "a NUL byte" if bad.group() == "\x00" else "an unpaired surrogate (invalid Unicode)"
                return f"{name}: argument {key!r} contains {what} at position {bad.start()}"
            size = len(text.encode("utf-8"))
            if key in _PATH_ARGUMENTS or key == "paths":
                if size > MAX_PATH_BYTES:
                    return f"{name}: the path in {key!r} is {size} bytes long; the limit is {MAX_PATH_BYTES}"
                if any(len(part.encode("utf-8")) > MAX_NAME_BYTES for part in text.split("/")):
                    return f"{name}: a component of the path in {key!r} is over {MAX_NAME_BYTES} bytes"
            elif key in ("command", "pattern") and size > MAX_ARGUMENT_BYTES:
                return f"{name}: {key!r} is {size} bytes long; the limit is {MAX_ARGUMENT_BYTES}"
        if isinstance(value, int) and not -MAX_LINE <= value <= MAX_LINE:
            return f"{name}: {key!r} must be a line number between {-MAX_LINE} and {MAX_LINE}"
        if isinstance(value, list) and len(value) > MAX_PATHS:
            return f"{name}: at most {MAX_PATHS} test paths per call, got {len(value)}"
    return None


def call_json(name: str, **arguments: Any) -> str:
    """The one-line JSON form of a tool call (what the expert sends)."""
    return json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
