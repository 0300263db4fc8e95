"""Where generated task files are cached (``$AGENTGYM_CACHE``, else ``~/.cache/agentgym``), and how a
cached folder is built safely when several processes may want it at once."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def cache_root() -> Path:
    root = os.environ.get("AGENTGYM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "agentgym"
    )
    return Path(root)


def cached_folder(final: Path, build: Callable[[Path], None], marker: str) -> Path:
    """``final / marker``, building the folder first with ``build(scratch_folder)`` if it is missing.

    The folder is built in a scratch folder beside it and renamed into place in one atomic step, so a
    reader sees a complete folder or none; when two processes race, the loser's copy is discarded.
    """
    target = final / marker
    if target.exists():
        return target
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".building-", dir=final.parent))
    try:
        build(scratch)
        try:
            os.rename(scratch, final)
        except OSError:
            if not target.exists():  # not a lost race with another process: a real error
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
