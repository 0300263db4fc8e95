"""The host-side file tools of SWEGym: ``view`` of a file, ``create_file``, ``str_replace``, ``undo_edit``.

They run in the host process (not in the sandbox) on the agent's working tree, so every path is confined
to the tree with symlinks resolved (:meth:`Editor.path`), only regular files are ever opened (a FIFO,
socket or device is refused, :func:`.workspace.file_kind`), reads are capped at :data:`MAX_FILE_BYTES`,
and each write keeps the file's previous content for ``undo_edit``. A call that cannot be carried out
raises :class:`Refused`, which the env answers as an invalid action.
"""

from __future__ import annotations

import os
from pathlib import Path

from agentgym.envs.swegym.workspace import file_kind, read_regular, write_regular

#: Largest file the host-side tools read (bytes).
MAX_FILE_BYTES = 8 << 20


class Refused(Exception):
    """A tool call that cannot be carried out (answered as an invalid action)."""


class Editor:
    """The file tools on one episode's working tree ``repo``, which the agent sees at ``mount``."""

    def __init__(self, repo: Path, mount: str):
        self.repo, self.mount = repo, mount
        self.history: dict[str, list[str | None]] = {}  # each path's earlier contents (None: absent)

    def path(self, path: str) -> tuple[Path, str]:
        """The real path of ``path`` inside the tree (symlinks resolved, never leaving it), refused when
        it is a FIFO, socket or device: the host never opens those."""
        if path == self.mount or path.startswith(self.mount + "/"):
            path = path[len(self.mount) :].lstrip("/") or "."
        if os.path.isabs(path):
            raise Refused(f"{path!r} is outside the repository; use a path relative to {self.mount}")
        root = os.path.realpath(self.repo)
        full = os.path.realpath(os.path.join(root, path))
        if full != root and not full.startswith(root + os.sep):
            raise Refused(f"{path!r} leads outside the repository")
        rel = os.path.relpath(full, root)
        kind = file_kind(full)
        if kind is not None:
            raise Refused(f"{rel!r} is {kind}; the file tools only read and write regular files")
        return Path(full), rel

    @staticmethod
    def read(full: Path) -> str:
        return read_regular(full, MAX_FILE_BYTES).decode("utf-8", "surrogateescape")

    def _write(self, full: Path, rel: str, content: str | None) -> None:
        previous = self.read(full) if full.is_file() else None
        self.history.setdefault(rel, []).append(previous)
        if content is None:
            full.unlink(missing_ok=True)
        else:
            full.parent.mkdir(parents=True, exist_ok=True)
            write_regular(full, content.encode("utf-8", "surrogateescape"))

    def view_file(self, full: Path, rel: str, start_line: int | None, end_line: int | None) -> str:
        """Lines ``start_line``..``end_line`` of a file (1-based, clipped to the file), numbered."""
        if not full.is_file():
            raise Refused(f"no file {rel!r}")
        lines = self.read(full).splitlines()
        first = max(1, start_line or 1)
        last = min(len(lines), end_line if end_line is not None and end_line >= 1 else len(lines))
        if first > max(len(lines), 1):
            raise Refused(f"{rel} has {len(lines)} lines; start_line {first} is past the end")
        body = "\n".join(f"{n:6}\t{lines[n - 1]}" for n in range(first, last + 1))
        return f"{rel} (lines {first}-{last} of {len(lines)}):\n{body}".encode("utf-8", "replace").decode("utf-8")

    def create_file(self, path: str, content: str) -> str:
        full, rel = self.path(path)
        if full.is_dir():
            raise Refused(f"{rel!r} is a folder")
        existed = full.exists()
        self._write(full, rel, content)
        verb = "Overwrote" if existed else "Created"
        return f"{verb} {rel} ({len(content.splitlines())} lines)."

    def str_replace(self, path: str, old_str: str, new_str: str) -> str:
        full, rel = self.path(path)
        if not full.is_file():
            raise Refused(f"no file {rel!r}")
        text = self.read(full)
        count = text.count(old_str) if old_str else 0
        if count != 1:
            why = (
                "old_str is empty"
                if not old_str
                else (f"old_str occurs {count} times in {rel}; it must occur exactly once (add surrounding lines)")
            )
            raise Refused(why)
        at = text.index(old_str)
        self._write(full, rel, text[:at] + new_str + text[at + len(old_str) :])
        line = text[:at].count("\n") + 1
        new_lines = (text[:at] + new_str).splitlines()
        lo, hi = max(0, line - 4), min(len(new_lines), line + new_str.count("\n") + 3)
        snippet = "\n".join(f"{n + 1:6}\t{new_lines[n]}" for n in range(lo, hi))
        snippet = snippet.encode("utf-8", "replace").decode("utf-8")  # no lone surrogates in observations
        return f"Edited {rel}; lines {lo + 1}-{hi} now read:\n{snippet}"

    def undo_edit(self, path: str) -> str:
        full, rel = self.path(path)
        if not self.history.get(rel):
            raise Refused(f"no edit of {rel!r} to undo")
        previous = self.history[rel].pop()
        if previous is None:
            full.unlink(missing_ok=True)
        else:
            write_regular(full, previous.encode("utf-8", "surrogateescape"))
        return f"Undid the last edit of {rel}."
