"""The cache of ``torch.compile(reference)`` timings (``compile_baseline=True``), one JSON file.

Timing the compiled reference is slow on CPU, and its result depends only on the task, its shapes, the
device, the machine, torch and the protocol, so the :class:`~.engine.Evaluator` asks here first and
stores what the judge measured. The file is replaced atomically, so a reader never sees half of it;
an unreadable file reads as empty.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
from pathlib import Path
from typing import Any

from agentgym.cache import cache_root


def path() -> Path:
    """The cache file, under the agentgym cache."""
    return cache_root() / "kernelgym" / "compile_baselines.json"


def key(protocol: int, task: Any, device: str, perf_trials: int) -> str:
    """What a baseline timing depends on: the protocol version, the task's source and shapes on
    ``device``, the torch version, the machine (CPU model and count) and the timed runs."""
    blob = json.dumps(
        [
            protocol,
            task.source,
            task.shapes(device),
            device,
            importlib.metadata.version("torch"),
            platform.machine(),
            platform.processor(),
            os.cpu_count(),
            perf_trials,
        ]
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def cached(baseline_key: str) -> float | None:
    """The stored timing (ms) for ``baseline_key``, or None."""
    try:
        return json.loads(path().read_text()).get(baseline_key)
    except (OSError, ValueError):
        return None


def store(baseline_key: str, value: float) -> None:
    """Add one timing (ms) to the file."""
    file = path()
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError):
        data = {}
    data[baseline_key] = value
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, file)
