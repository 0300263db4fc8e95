"""Where generated task files are cached: ``$AGENTGYM_CACHE``, else ``~/.cache/agentgym``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    root = os.environ.get("AGENTGYM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "agentgym"
    )
    return Path(root)
