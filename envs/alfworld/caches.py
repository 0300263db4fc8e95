"""The memos of ALFWorld's fast engine path: bounded in-process LRU memos and the on-disk cache.

Fast-downward's PDDL->SAS translation and the TatSu parse of a game's grammar document are pure functions of
the game's text: they are kept in memory and on disk under ``agentgym.cache.cache_root()/alfworld-engine/
v<N>/``, keyed by the sha256 of the inputs and the pinned package versions, written atomically (a reader sees a
whole entry or none; a damaged entry is recomputed). ``AGENTGYM_ALFWORLD_DISK_CACHE=0`` turns the disk part off.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import tempfile
import zlib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentgym.cache import cache_root
from agentgym.envs.alfworld.seams import PINNED

#: Version of the on-disk cache layout; bump it when what is stored changes.
DISK_CACHE_VERSION = 1
#: ``AGENTGYM_ALFWORLD_DISK_CACHE=0`` turns the on-disk translation cache off (benchmarks, read-only caches).
DISK_CACHE_VARIABLE = "AGENTGYM_ALFWORLD_DISK_CACHE"


class LRU(OrderedDict):
    """A bounded memo: ``remember`` evicts the least recently used entries beyond ``size``."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def remember(self, key: Any, value: Any) -> Any:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)
        return value

    def recall(self, key: Any) -> Any:
        try:
            self.move_to_end(key)
            return self[key]
        except KeyError:  # not there, or dropped by another thread meanwhile
            return None


def disk_cache_enabled() -> bool:
    return os.environ.get(DISK_CACHE_VARIABLE, "1") != "0"


def digest(*parts: str) -> str:
    hasher = hashlib.sha256(repr(sorted(PINNED.items())).encode())
    for part in parts:
        hasher.update(b"\0" + part.encode())
    return hasher.hexdigest()


def disk_cache_dir() -> Path:
    return cache_root() / "alfworld-engine" / f"v{DISK_CACHE_VERSION}"


def disk_memo(kind: str, key: str, compute: Callable[[], Any]) -> Any:
    if not disk_cache_enabled():
        return compute()
    path = disk_cache_dir() / kind / key[:2] / f"{key}.pkl.z"
    with contextlib.suppress(OSError, pickle.UnpicklingError, zlib.error, EOFError, AttributeError):
        return pickle.loads(zlib.decompress(path.read_bytes()))
    value = compute()
    with contextlib.suppress(OSError, pickle.PicklingError):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, scratch = tempfile.mkstemp(prefix=".writing-", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(zlib.compress(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), 1))
            os.replace(scratch, path)  # atomic: a reader sees a whole entry or none
        finally:
            with contextlib.suppress(OSError):
                os.unlink(scratch)
    return value


#: The in-process memos of the fast branches (bounded): grammar strings -> parsed symbols, query strings ->
#: rules, game grammar documents -> (actions, grammar), (domain, problem) -> translation, per game the
#: derived commands, and per set of templates which of them are static.
MEMO = {
    "symbols": LRU(8192),
    "queries": LRU(4096),
    "documents": LRU(16),
    "translations": LRU(16),
    "commands": LRU(256),
    "static_flags": LRU(64),
}


def clear_memory_caches() -> None:
    """Forget everything memoised in this process (the on-disk cache stays): the next load is cold."""
    for memo in MEMO.values():
        memo.clear()
