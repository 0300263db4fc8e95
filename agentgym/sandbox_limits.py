"""The sandbox's resource limits: per-process rlimits, and the watchdog of the aggregate ones.

:class:`Limits` is the public description (re-exported by :mod:`agentgym.sandbox`). Per-process limits
are rlimits set in the child between fork and exec (:func:`apply_rlimits`). The aggregate limits (the
memory of all a command's processes together, the size of the work dir) have no kernel mechanism an
unprivileged library can use here (see :mod:`agentgym.sandbox`, "aggregate limits"), so
:class:`Watchdog` polls them from ``/proc`` and the work dir while the command runs.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import time
from pathlib import Path

from agentgym.error import InvalidArgumentError

#: How often the watchdog of the aggregate limits polls (seconds); a slow poll stretches the interval.
POLL_SECONDS = 0.1
#: Smallest size an entry of the work dir counts for (a block), so a million empty files are not free.
ENTRY_BYTES = 4096


@dataclasses.dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed command.

    Attributes:
        wall_seconds: wall-clock timeout; the whole process tree is killed after it.
        cpu_seconds: CPU time per process (``RLIMIT_CPU``; SIGXCPU, then SIGKILL one second later).
        memory_bytes: address space per process (``RLIMIT_AS``): allocations beyond it fail.
        processes: processes and threads of the sandbox uid (``RLIMIT_NPROC``).
        file_bytes: largest file a command may write (``RLIMIT_FSIZE``).
        tmpfs_bytes: size of the private ``/tmp``.
        output_bytes: captured output kept (half from the start, half from the end).
        total_memory_bytes: memory of all the command's processes together (sum of PSS), or ``None``
            for no aggregate cap; exceeding it kills the command (``exceeded="memory"``).
        disk_bytes: size of the work dir (apparent size, every entry at least :data:`ENTRY_BYTES`), or
            ``None`` for no quota; exceeding it kills the command (``exceeded="disk"``). It is also
            checked once after the command ends, so a write faster than one poll is still reported.
    """

    wall_seconds: float = 60.0
    cpu_seconds: int = 60
    memory_bytes: int = 2 << 30
    processes: int = 64
    file_bytes: int = 64 << 20
    tmpfs_bytes: int = 256 << 20
    output_bytes: int = 1 << 20
    total_memory_bytes: int | None = None
    disk_bytes: int | None = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None and field.name in ("total_memory_bytes", "disk_bytes"):
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise InvalidArgumentError(f"Limits.{field.name} must be a positive number, got {value!r}")


def apply_rlimits(limits: Limits, processes: int) -> None:
    """Set the per-process limits; runs in the child between fork and exec. ``processes`` is the
    ``RLIMIT_NPROC`` value, which counts every process of the uid (see :func:`user_process_count`)."""
    cpu = int(limits.cpu_seconds)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (int(limits.memory_bytes),) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(limits.file_bytes),) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (processes,) * 2)


def user_process_count(uid: int) -> int:
    """How many processes ``uid`` runs now (``RLIMIT_NPROC`` counts them all, not only the sandbox's)."""
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count


def tree_usage(path: str | os.PathLike, stop_above: int | None = None) -> int:
    """Apparent size of a folder tree in bytes, every entry counted as at least :data:`ENTRY_BYTES`.

    Symlinks are not followed; entries that vanish while walking are skipped. With ``stop_above`` the
    walk stops as soon as the total exceeds it (the quota check does not need the exact excess).
    """
    total, stack = 0, [os.fspath(path)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                total += max(st.st_size, ENTRY_BYTES)
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                if stop_above is not None and total > stop_above:
                    return total
    return total


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (host pids), from ``/proc``; orphans inside a bwrap pid
    namespace are re-parented to its init, itself a descendant, so they are found too."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    ppid = int(handle.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(children.get(pid, ()))
    return out


def process_memory(pid: int) -> int:
    """A process's proportional set size in bytes (shared pages split among their users); its RSS where
    ``smaps_rollup`` is unreadable; 0 when it has exited."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return 0


class Watchdog:
    """Polls the aggregate limits of one running command (process ``pid``, work dir ``workdir``)."""

    def __init__(self, pid: int, limits: Limits, workdir: Path):
        self.pid, self.limits, self.workdir = pid, limits, workdir
        self.active = limits.total_memory_bytes is not None or limits.disk_bytes is not None
        self.interval = POLL_SECONDS
        self.due = time.monotonic()

    def poll(self, final: bool = False) -> tuple[str, str] | None:
        """``(limit, reason)`` when a limit is exceeded, else ``None``; polls only when due (or final)."""
        now = time.monotonic()
        if not self.active or (not final and now < self.due):
            return None
        found = None
        if self.limits.total_memory_bytes is not None and not final:
            used = sum(process_memory(pid) for pid in process_tree(self.pid))
            if used > self.limits.total_memory_bytes:
                found = (
                    "memory",
                    f"memory limit exceeded: its processes used {used >> 20} MiB together "
                    f"(limit {self.limits.total_memory_bytes >> 20} MiB)",
                )
        if found is None and self.limits.disk_bytes is not None:
            used = tree_usage(self.workdir, stop_above=self.limits.disk_bytes)
            if used > self.limits.disk_bytes:
                found = ("disk", f"disk quota exceeded: the working tree grew past {self.limits.disk_bytes >> 20} MiB")
        spent = time.monotonic() - now
        self.interval = max(POLL_SECONDS, 10 * spent)  # a slow poll must not eat the command's CPU
        self.due = time.monotonic() + self.interval
        return found
