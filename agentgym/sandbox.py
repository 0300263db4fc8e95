"""A bubblewrap sandbox for agent-written code (shared by the SWEGym and KernelGym families).

Every command runs under ``bwrap`` (Debian package ``bubblewrap``) with:

* **no network**: a fresh network namespace (only a down loopback; the host's localhost is not reachable);
* **a read-only system**: ``/`` is bind-mounted read-only; ``/root`` and ``/home`` are hidden behind empty
  tmpfs mounts, and ``/tmp`` is a private tmpfs (the Python interpreter's own folders are mounted back
  read-only where they live under any of these);
* **one writable tree**: the work dir, bind-mounted at :attr:`Sandbox.mount_point` (``/tmp/repo``), plus
  a small private ``/tmp`` tmpfs and any extra ``writable`` binds the caller names;
* **a minimal /dev** (null, zero, random, tty, ...) plus the host device nodes the caller names
  (``devices=``, e.g. the NVIDIA devices for GPU work);
* **an unprivileged uid**: as root, bwrap runs without a user namespace and the command is started
  through ``setpriv`` as a uid of its own (:func:`default_uid`, no capabilities, ``no_new_privs``), so
  ``RLIMIT_NPROC`` is enforced (it is not for root); as a normal user, bwrap's user namespace keeps the
  caller's uid;
* **limits** (:class:`Limits`): CPU seconds, address space, processes, file size, tmpfs size and a
  wall-clock timeout, per process (rlimits); the captured output is capped too (head and tail kept);
* **aggregate limits** (optional, :attr:`Limits.total_memory_bytes`, :attr:`Limits.disk_bytes`): the
  memory of all the command's processes together and the size of the work dir, enforced by a watchdog
  in :meth:`Sandbox.run` that polls every :data:`POLL_SECONDS` (more when a poll is slow) and kills the
  whole command when either is exceeded (``SandboxResult.exceeded`` says which). cgroups are not used:
  on the machines this was built on the cgroup v1 controllers belong to the host's machinery and the
  unified (v2) hierarchy delegates no memory or pids controller, so a kernel-enforced cap is not
  available to an unprivileged library. The watchdog's bound is therefore *cap + what the command can
  allocate or write in one poll interval* (each process is still capped by ``RLIMIT_AS`` and each file
  by ``RLIMIT_FSIZE``); memory is the sum of the processes' PSS (shared pages counted once), and the
  private ``/tmp`` (``tmpfs_bytes``) comes on top of it;
* **no leaks**: a new session and process group, a pid namespace (everything left in it dies with the
  command) and ``--die-with-parent``; on timeout the whole group is killed with SIGKILL.

A command that breaks a limit is *reported*, not raised: :class:`SandboxResult` says what happened
(``timed_out``, ``killed``) and :meth:`SandboxResult.describe` words it for an agent. When the sandbox
itself cannot run (bwrap missing, a mount failing) :class:`SandboxError` (an
:class:`~agentgym.error.EngineFault`) is raised; :meth:`SandboxResult.raise_if_killed` raises
:class:`SandboxKilled` for callers (graders) that treat a killed command as a fault.

Layout: this module runs commands and reads their output (:class:`Sandbox`, :class:`SandboxResult`);
:mod:`agentgym.sandbox_bwrap` builds the bwrap command line and picks the uid; :mod:`agentgym.sandbox_limits`
holds :class:`Limits`, the rlimits and the aggregate-limit watchdog. Import everything from here.

Example:
    >>> from agentgym.sandbox import Sandbox                          # doctest: +SKIP
    >>> box = Sandbox("/tmp/work")                                    # doctest: +SKIP
    >>> box.run("echo hi > note.txt && cat note.txt").output         # doctest: +SKIP
    'hi\\n'

Change logs:
    v0: initial sandbox.
    v1: aggregate memory and work-dir size limits (watchdog), ``pass_fds``, timeouts described by
        their limit (not the measured duration, so observations repeat).
    v2: ``devices=`` binds host device nodes (KernelGym's GPU evaluation subclassed the sandbox for it).
"""

from __future__ import annotations

import dataclasses
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from agentgym.error import DependencyNotInstalled, EngineFault, InvalidArgumentError
from agentgym.sandbox_bwrap import (
    HIDDEN,
    MOUNT_POINT,
    bwrap_path,
    check_devices,
    command_line,
    default_uid,
    give_to,
    interpreter_paths,
)
from agentgym.sandbox_limits import (
    ENTRY_BYTES,
    POLL_SECONDS,
    Limits,
    Watchdog,
    apply_rlimits,
    process_memory,
    process_tree,
    tree_usage,
    user_process_count,
)

__all__ = [
    "ENTRY_BYTES",
    "HIDDEN",
    "MOUNT_POINT",
    "POLL_SECONDS",
    "Limits",
    "Sandbox",
    "SandboxError",
    "SandboxKilled",
    "SandboxResult",
    "available",
    "bwrap_path",
    "default_uid",
    "interpreter_paths",
    "process_memory",
    "process_tree",
    "tree_usage",
]

#: Signals a limit sends, and what to tell the agent.
_SIGNAL_REASONS = {
    signal.SIGXCPU: "CPU time limit exceeded",
    signal.SIGKILL: "killed (SIGKILL)",
    signal.SIGXFSZ: "file size limit exceeded",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
}


class SandboxError(EngineFault):
    """The sandbox could not run a command (bwrap missing or failing, work dir gone)."""


class SandboxKilled(SandboxError):
    """A sandboxed command was killed by a limit (timeout, CPU, memory) where the caller needed it to finish."""


@dataclasses.dataclass(frozen=True)
class SandboxResult:
    """What a sandboxed command did.

    ``killed`` is ``None`` for a normal exit, otherwise the reason (timeout, CPU limit, signal, an
    aggregate limit). ``exceeded`` names the aggregate limit that stopped the command (``"memory"`` or
    ``"disk"``), else ``None``. ``output`` is stdout and stderr interleaved, decoded as UTF-8 (bad bytes
    replaced), with the middle cut out when it exceeded :attr:`Limits.output_bytes` (``output_truncated``).
    """

    returncode: int
    output: str
    duration: float
    timed_out: bool = False
    killed: str | None = None
    output_truncated: bool = False
    output_bytes: int = 0
    exceeded: str | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.killed is None

    def describe(self) -> str:
        """One sentence for an agent: exit code, or what killed the command."""
        if self.timed_out:  # the limit, not the measured time: the same command is described the same way
            return f"[command {self.killed or 'timed out'} and was killed with all its processes]"
        if self.killed:
            return f"[command {self.killed}; exit code {self.returncode}]"
        return f"[exit code {self.returncode}]"

    def raise_if_killed(self, what: str = "sandboxed command") -> SandboxResult:
        if self.killed is not None:
            raise SandboxKilled(f"{what} was killed: {self.killed}")
        return self


def available() -> bool:
    """Whether sandboxed commands can run here (bwrap installed and namespaces allowed)."""
    return _probe()


_PROBED: dict[str, bool] = {}


def _probe() -> bool:
    if "ok" not in _PROBED:
        ok = False
        if bwrap_path() is not None:
            try:
                with tempfile.TemporaryDirectory(prefix="agentgym-probe-") as tmp:
                    ok = Sandbox(tmp).run(["true"]).returncode == 0
            except (SandboxError, OSError):
                ok = False
        _PROBED["ok"] = ok
    return _PROBED["ok"]


class _Output:
    """The captured output of one command: the first half of ``limit`` bytes and the last half."""

    def __init__(self, limit: int):
        self.half = int(limit) // 2
        self.head, self.tail, self.total = bytearray(), bytearray(), 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if len(self.head) < self.half:
            take = self.half - len(self.head)
            self.head += chunk[:take]
            chunk = chunk[take:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > 2 * self.half:
                del self.tail[: len(self.tail) - self.half]

    def text(self) -> tuple[str, bool]:
        """The output decoded (a marker where the middle was cut) and whether it was cut."""
        tail = self.tail[-self.half :] if self.half else bytearray()
        cut = self.total - len(self.head) - len(tail)
        output = self.head.decode("utf-8", "replace")
        if cut > 0:
            output += f"\n[... {cut} bytes of output cut ...]\n"
        return output + tail.decode("utf-8", "replace"), cut > 0


class Sandbox:
    """Run commands on one work dir inside bubblewrap (see the module docstring).

    Args:
        workdir: the host folder mounted writable at ``mount_point``; it must exist.
        limits: default :class:`Limits` of every command.
        mount_point: where the work dir appears inside; must be under ``/tmp`` (bwrap cannot create
            folders on the read-only root).
        readonly: extra host paths mounted back read-only (needed when they live under ``/root`` or
            ``/home``); the running interpreter's folders are always included.
        env: environment variables of every command (on top of a minimal PATH/HOME/LANG set).
        uid: the uid commands run as when the caller is root (default :func:`default_uid`).
        devices: host device nodes bound in read-write (paths under ``/dev/``, e.g. ``/dev/nvidia0``).
    """

    def __init__(
        self,
        workdir: str | os.PathLike,
        *,
        limits: Limits | None = None,
        mount_point: str = MOUNT_POINT,
        readonly: Sequence[str | os.PathLike] = (),
        env: Mapping[str, str] | None = None,
        uid: int | None = None,
        devices: Sequence[str | os.PathLike] = (),
    ):
        if bwrap_path() is None:
            raise DependencyNotInstalled(
                "the sandbox needs bubblewrap: `apt-get install bubblewrap` (or `bash scripts/system-deps.sh`)"
            )
        if not mount_point.startswith("/tmp/"):
            raise InvalidArgumentError(f"mount_point must lie under /tmp/, got {mount_point!r}")
        self.workdir = Path(workdir).resolve()
        if not self.workdir.is_dir():
            raise InvalidArgumentError(f"sandbox work dir {str(self.workdir)!r} is not a folder")
        self.limits = limits or Limits()
        self.mount_point = mount_point
        self.readonly = [str(Path(p).resolve()) for p in readonly] + interpreter_paths()
        self.env = dict(env or {})
        self.devices = check_devices(devices)
        self.as_root = os.geteuid() == 0
        self.uid = (uid if uid is not None else default_uid()) if self.as_root else os.getuid()

    def run(
        self,
        command: str | Sequence[str],
        *,
        limits: Limits | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        writable: Mapping[str, str | os.PathLike] | None = None,
        pass_fds: Sequence[int] = (),
    ) -> SandboxResult:
        """Run ``command`` (a shell string for ``/bin/bash -c``, or an argv list) in the work dir.

        ``timeout`` overrides ``limits.wall_seconds``. ``writable`` maps extra mount points under
        ``/tmp/`` to host folders. ``pass_fds`` are host file descriptors the command inherits (under
        the same numbers): a channel to the host that has no path inside the sandbox, e.g. a report
        file the host opened in a folder the sandbox cannot see.
        """
        limits = limits or self.limits
        if timeout is not None:
            limits = dataclasses.replace(limits, wall_seconds=float(timeout))
        writable = dict(writable or {})
        if not self.workdir.is_dir():
            raise SandboxError(f"the sandbox work dir {str(self.workdir)!r} has disappeared")
        argv = ["/bin/bash", "-c", command] if isinstance(command, str) else [str(a) for a in command]
        if self.as_root:
            give_to(self.uid, [self.workdir, *writable.values()])
        nproc = int(limits.processes) + (0 if self.as_root else user_process_count(self.uid))
        environment = {
            "PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin",
            "HOME": "/tmp",
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "MALLOC_ARENA_MAX": "2",
            "TERM": "dumb",
        }
        environment.update(self.env)
        environment.update(env or {})
        full = (
            command_line(
                workdir=self.workdir,
                mount_point=self.mount_point,
                readonly=self.readonly,
                writable=writable,
                devices=self.devices,
                tmpfs_bytes=limits.tmpfs_bytes,
                cwd=cwd or self.mount_point,
                as_root=self.as_root,
                uid=self.uid,
            )
            + argv
        )
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                full,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=environment,
                start_new_session=True,
                preexec_fn=lambda: apply_rlimits(limits, nproc),
                pass_fds=tuple(pass_fds),
            )
        except OSError as exc:
            raise SandboxError(f"cannot start bwrap: {exc}") from exc
        captured = _Output(limits.output_bytes)
        timed_out, deadline = False, start + limits.wall_seconds
        watchdog, exceeded = Watchdog(proc.pid, limits, self.workdir), None
        try:
            assert proc.stdout is not None
            fd = proc.stdout.fileno()
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                exceeded = watchdog.poll()
                if exceeded is not None:
                    break
                ready, _, _ = select.select([fd], [], [], min(left, watchdog.interval if watchdog.active else 1.0))
                if not ready:
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:  # output closed: wait for the exit until the deadline
                    try:
                        proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
                    except subprocess.TimeoutExpired:
                        timed_out = True
                    break
                captured.add(chunk)
        finally:
            _kill_group(proc)
            proc.stdout.close()  # type: ignore[union-attr]
        if exceeded is None and not timed_out:
            exceeded = watchdog.poll(final=True)
        duration = time.monotonic() - start
        output, truncated = captured.text()
        code, total = proc.returncode, captured.total
        if timed_out:
            return SandboxResult(
                code, output, duration, True, f"timed out after {limits.wall_seconds:g} s", truncated, total
            )
        if exceeded is not None:
            return SandboxResult(code, output, duration, False, exceeded[1], truncated, total, exceeded[0])
        if code == 1 and output.startswith("bwrap:"):
            raise SandboxError(f"bwrap failed: {output.strip()[:500]}")
        killed = None
        if code < 0 or code > 128:
            sig = -code if code < 0 else code - 128
            if sig in _SIGNAL_REASONS:
                killed = _SIGNAL_REASONS[signal.Signals(sig)]
                if sig == signal.SIGKILL and duration >= limits.cpu_seconds:
                    killed = "CPU time limit exceeded (killed)"
        return SandboxResult(code, output, duration, False, killed, truncated, total)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL bwrap's whole process group; the pid namespace takes everything inside with it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # pragma: no cover - the kernel reaps a SIGKILLed group
        proc.kill()
        proc.wait()
