"""A bubblewrap sandbox for agent-written code (shared by the SWEGym and KernelGym families).

Every command runs under ``bwrap`` (Debian package ``bubblewrap``) with:

* **no network**: a fresh network namespace (only a down loopback; the host's localhost is not reachable);
* **a read-only system**: ``/`` is bind-mounted read-only; ``/root`` and ``/home`` are hidden behind empty
  tmpfs mounts, and ``/tmp`` is a private tmpfs (the Python interpreter's own folders are mounted back
  read-only where they live under any of these);
* **one writable tree**: the work dir, bind-mounted at :attr:`Sandbox.mount_point` (``/tmp/repo``), plus
  a small private ``/tmp`` tmpfs and any extra ``writable`` binds the caller names;
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

Example:
    >>> from agentgym.sandbox import Sandbox                          # doctest: +SKIP
    >>> box = Sandbox("/tmp/work")                                    # doctest: +SKIP
    >>> box.run("echo hi > note.txt && cat note.txt").output         # doctest: +SKIP
    'hi\\n'

Change logs:
    v0: initial sandbox.
    v1: aggregate memory and work-dir size limits (watchdog), ``pass_fds``, timeouts described by
        their limit (not the measured duration, so observations repeat).
"""

from __future__ import annotations

import dataclasses
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from agentgym.error import DependencyNotInstalled, EngineFault, InvalidArgumentError

#: Folders hidden behind an empty tmpfs inside the sandbox (secrets live there).
HIDDEN = ("/root", "/home")
#: Where the work dir appears inside the sandbox.
MOUNT_POINT = "/tmp/repo"
#: How often the watchdog of the aggregate limits polls (seconds); a slow poll stretches the interval.
POLL_SECONDS = 0.1
#: Smallest size an entry of the work dir counts for (a block), so a million empty files are not free.
ENTRY_BYTES = 4096
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


def bwrap_path() -> str | None:
    """The bwrap executable, or ``None`` when bubblewrap is not installed."""
    return shutil.which("bwrap")


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


def default_uid() -> int:
    """The uid sandboxed commands run as when the caller is root: one per host process.

    A uid of its own per process keeps ``RLIMIT_NPROC`` (counted per uid) from letting a fork bomb in
    one sandbox starve another process's sandboxes. The uid has no passwd entry and owns nothing else.
    """
    return 200_000 + os.getpid() % 100_000


def _user_process_count(uid: int) -> int:
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


class _Watchdog:
    """Polls the aggregate limits of one running command (see the module docstring)."""

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
                found = ("memory", f"memory limit exceeded: its processes used {used >> 20} MiB together "
                                   f"(limit {self.limits.total_memory_bytes >> 20} MiB)")
        if found is None and self.limits.disk_bytes is not None:
            used = tree_usage(self.workdir, stop_above=self.limits.disk_bytes)
            if used > self.limits.disk_bytes:
                found = ("disk", f"disk quota exceeded: the working tree grew past "
                                 f"{self.limits.disk_bytes >> 20} MiB")
        spent = time.monotonic() - now
        self.interval = max(POLL_SECONDS, 10 * spent)  # a slow poll must not eat the command's CPU
        self.due = time.monotonic() + self.interval
        return found


def interpreter_paths(python: str | os.PathLike | None = None) -> list[str]:
    """Folders a Python interpreter needs (its prefixes and the real executable's folder)."""
    python = str(python or sys.executable)
    if os.path.realpath(python) == os.path.realpath(sys.executable) or python == sys.executable:
        paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    else:
        try:
            out = subprocess.run(
                [python, "-c", "import sys,os;print(sys.prefix);print(sys.base_prefix);"
                 "print(os.path.dirname(os.path.realpath(sys.executable)))"],
                capture_output=True, text=True, timeout=60, check=True,
            ).stdout.split("\n")
        except (OSError, subprocess.SubprocessError) as exc:
            raise InvalidArgumentError(f"cannot run the Python interpreter {python!r}: {exc}") from exc
        paths = {line for line in out if line}
        paths.add(os.path.dirname(os.path.realpath(python)))
    return sorted(paths)


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
        self.as_root = os.geteuid() == 0
        self.uid = (uid if uid is not None else default_uid()) if self.as_root else os.getuid()

    # ----------------------------------------------------------------- command line
    def _bwrap_args(self, writable: Mapping[str, str | os.PathLike], limits: Limits, cwd: str) -> list[str]:
        args = [bwrap_path() or "bwrap", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
                "--unshare-cgroup-try", "--die-with-parent", "--new-session"]
        if not self.as_root:
            args.append("--unshare-user")
        args += ["--ro-bind", "/", "/"]
        hidden = [h for h in HIDDEN if os.path.isdir(h)]
        for path in hidden:
            args += ["--tmpfs", path]
        args += ["--perms", "1777", "--size", str(int(limits.tmpfs_bytes)), "--tmpfs", "/tmp"]
        # Read-only folders that the empty mounts above covered (an interpreter in /root/.pyenv, a
        # virtualenv in a checkout under /tmp) are mounted back where they live.
        for path in sorted(set(self.readonly)):
            under = [h for h in (*hidden, "/tmp") if path.startswith(h + "/")]
            if under and os.path.exists(path):
                parts = Path(path).relative_to(under[0]).parts
                for depth in range(1, len(parts)):  # parents bwrap would otherwise create as 0700
                    args += ["--perms", "0755", "--dir", os.path.join(under[0], *parts[:depth])]
                args += ["--ro-bind", path, path]
        args += ["--bind", str(self.workdir), self.mount_point]
        for inside, host in writable.items():
            if not str(inside).startswith("/tmp/"):
                raise InvalidArgumentError(f"writable mount points must lie under /tmp/, got {inside!r}")
            args += ["--bind", str(host), str(inside)]
        args += ["--dev", "/dev", "--proc", "/proc", "--chdir", cwd]
        if self.as_root:
            args += ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups",
                     "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
        return args

    def _own(self, paths: Sequence[str | os.PathLike]) -> None:
        """As root, give the sandbox uid the writable trees (files the host wrote belong to root)."""
        if not self.as_root:
            return
        for top in paths:
            for root, dirs, files in os.walk(top):
                for name in (*dirs, *files, ""):
                    path = os.path.join(root, name) if name else root
                    try:
                        st = os.lstat(path)
                        if st.st_uid != self.uid:
                            os.lchown(path, self.uid, self.uid)
                    except OSError:
                        pass

    def _limit(self, limits: Limits) -> None:  # runs in the child between fork and exec
        cpu = int(limits.cpu_seconds)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (int(limits.memory_bytes),) * 2)
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(limits.file_bytes),) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NPROC, (self._nproc,) * 2)

    # ----------------------------------------------------------------- running
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
        self._own([self.workdir, *writable.values()])
        self._nproc = int(limits.processes) + (0 if self.as_root else _user_process_count(self.uid))
        environment = {"PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
                       "PYTHONDONTWRITEBYTECODE": "1", "MALLOC_ARENA_MAX": "2", "TERM": "dumb"}
        environment.update(self.env)
        environment.update(env or {})
        full = self._bwrap_args(writable, limits, cwd or self.mount_point) + argv
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                env=environment, start_new_session=True, preexec_fn=lambda: self._limit(limits),
                pass_fds=tuple(pass_fds),
            )
        except OSError as exc:
            raise SandboxError(f"cannot start bwrap: {exc}") from exc
        head, tail, total, timed_out = bytearray(), bytearray(), 0, False
        half = int(limits.output_bytes) // 2
        deadline = start + limits.wall_seconds
        watchdog, exceeded = _Watchdog(proc.pid, limits, self.workdir), None
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
                total += len(chunk)
                if len(head) < half:
                    take = half - len(head)
                    head += chunk[:take]
                    chunk = chunk[take:]
                if chunk:
                    tail += chunk
                    if len(tail) > 2 * half:
                        del tail[: len(tail) - half]
        finally:
            _kill_group(proc)
            proc.stdout.close()  # type: ignore[union-attr]
        if exceeded is None and not timed_out:
            exceeded = watchdog.poll(final=True)
        duration = time.monotonic() - start
        tail = tail[-half:] if half else bytearray()
        truncated = total > len(head) + len(tail)
        output = head.decode("utf-8", "replace")
        if truncated:
            output += f"\n[... {total - len(head) - len(tail)} bytes of output cut ...]\n"
        output += tail.decode("utf-8", "replace")
        code = proc.returncode
        if timed_out:
            return SandboxResult(code, output, duration, True, f"timed out after {limits.wall_seconds:g} s",
                                 truncated, total)
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
