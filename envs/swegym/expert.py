"""SWEGym's expert: the next tool call that brings the working tree closer to the gold patch.

:class:`Expert` is made per episode. Its target (every file the gold ``patch`` touches, as the patch
leaves it) is computed once, on the first call, in a scratch checkout of ``base_commit``
(:meth:`.Workspace.apply_to_copy`): the gold patch never touches the agent's tree.
Each call compares the tree as it is now with the target and answers one step: a ``str_replace`` for
the first differing region (grown until its ``old_str`` is unique), ``create_file`` for a file that is
missing or too big to read, ``bash rm`` for a file the patch deletes or one the file tools refuse (a
symlink, a FIFO), and ``submit`` when the tree matches.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path

from agentgym.envs.swegym import engine, tools
from agentgym.envs.swegym.workspace import Workspace, file_kind


class Expert:
    """The expert of one episode on ``workspace`` towards ``patch``; ``read`` reads a regular file of the
    tree as the file tools do (raising ``OSError`` for one they refuse). Call it for the next action."""

    def __init__(self, workspace: Workspace, patch: str, read: Callable[[Path], str]):
        self.workspace, self.patch, self.read = workspace, patch, read
        self._target: dict[str, str | None] | None = None

    def __call__(self) -> str:
        if self._target is None:
            self._target = self.workspace.apply_to_copy(self.patch, engine.patch_files(self.patch))
        for rel, want in self._target.items():
            full = self.workspace.repo / rel
            if full.is_symlink() or file_kind(full) is not None:
                return tools.call_json("bash", command=f"rm -rf -- '{rel}'")
            try:
                have = self.read(full) if full.is_file() else None
            except OSError:  # too big to read: start the file over
                return tools.call_json("create_file", path=rel, content=want or "")
            if have == want:
                continue
            if want is None:
                return tools.call_json("bash", command=f"rm -f -- '{rel}'")
            if have is None:
                return tools.call_json("create_file", path=rel, content=want)
            return edit(rel, have, want)
        return "submit"


def edit(rel: str, have: str, want: str) -> str:
    """A ``str_replace`` call for the first differing region (grown until ``old_str`` is unique)."""
    a, b = have.splitlines(True), want.splitlines(True)
    op = next(o for o in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes() if o[0] != "equal")
    _, i1, i2, j1, j2 = op
    for context in range(0, max(len(a), 1) + 1):
        lo, hi = max(0, i1 - context), min(len(a), i2 + context)
        old = "".join(a[lo:hi])
        if old and have.count(old) == 1:
            new = "".join(a[lo:i1]) + "".join(b[j1:j2]) + "".join(a[i2:hi])
            return tools.call_json("str_replace", path=rel, old_str=old, new_str=new)
    return tools.call_json("create_file", path=rel, content=want)
