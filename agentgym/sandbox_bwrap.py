"""The sandbox's isolation: the bubblewrap command line (what a command sees) and the uid it runs as.

:func:`command_line` builds the ``bwrap`` argv of one command (namespaces, the read-only root, hidden
folders, the private ``/tmp``, the writable binds, device nodes, and as root the ``setpriv`` drop to
:func:`default_uid`); :func:`give_to` hands the writable trees to that uid. :mod:`agentgym.sandbox`
runs the result; see its docstring for the guarantees.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from agentgym.error import InvalidArgumentError

#: Folders hidden behind an empty tmpfs inside the sandbox (secrets live there).
HIDDEN = ("/root", "/home")
#: Where the work dir appears inside the sandbox.
MOUNT_POINT = "/tmp/repo"


def bwrap_path() -> str | None:
    """The bwrap executable, or ``None`` when bubblewrap is not installed."""
    return shutil.which("bwrap")


def default_uid() -> int:
    """The uid sandboxed commands run as when the caller is root: one per host process.

    A uid of its own per process keeps ``RLIMIT_NPROC`` (counted per uid) from letting a fork bomb in
    one sandbox starve another process's sandboxes. The uid has no passwd entry and owns nothing else.
    """
    return 200_000 + os.getpid() % 100_000


def interpreter_paths(python: str | os.PathLike | None = None) -> list[str]:
    """Folders a Python interpreter needs (its prefixes and the real executable's folder)."""
    python = str(python or sys.executable)
    if os.path.realpath(python) == os.path.realpath(sys.executable) or python == sys.executable:
        paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    else:
        try:
            out = subprocess.run(
                [
                    python,
                    "-c",
                    "import sys,os;print(sys.prefix);print(sys.base_prefix);"
                    "print(os.path.dirname(os.path.realpath(sys.executable)))",
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout.split("\n")
        except (OSError, subprocess.SubprocessError) as exc:
            raise InvalidArgumentError(f"cannot run the Python interpreter {python!r}: {exc}") from exc
        paths = {line for line in out if line}
        paths.add(os.path.dirname(os.path.realpath(python)))
    return sorted(paths)


def check_devices(devices: Sequence[str | os.PathLike]) -> list[str]:
    """Host device nodes to bind into the sandbox (e.g. ``/dev/nvidia0``): absolute paths under ``/dev/``
    that exist; anything else is an :class:`~agentgym.error.InvalidArgumentError` naming it."""
    out = []
    for device in devices:
        path = os.fspath(device)
        if not path.startswith("/dev/") or ".." in Path(path).parts:
            raise InvalidArgumentError(f"devices must be paths under /dev/, got {path!r}")
        if not os.path.exists(path):
            raise InvalidArgumentError(f"device {path!r} does not exist on this host")
        out.append(path)
    return out


def command_line(
    *,
    workdir: Path,
    mount_point: str,
    readonly: Sequence[str],
    writable: Mapping[str, str | os.PathLike],
    devices: Sequence[str],
    tmpfs_bytes: int,
    cwd: str,
    as_root: bool,
    uid: int,
) -> list[str]:
    """The ``bwrap`` argv (without the command) that runs a command in ``workdir`` mounted at
    ``mount_point``; ``writable`` maps extra mount points under ``/tmp/`` to host folders."""
    args = [
        bwrap_path() or "bwrap",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
    ]
    if not as_root:
        args.append("--unshare-user")
    args += ["--ro-bind", "/", "/"]
    hidden = [h for h in HIDDEN if os.path.isdir(h)]
    for path in hidden:
        args += ["--tmpfs", path]
    args += ["--perms", "1777", "--size", str(int(tmpfs_bytes)), "--tmpfs", "/tmp"]
    # Read-only folders that the empty mounts above covered (an interpreter in /root/.pyenv, a
    # virtualenv in a checkout under /tmp) are mounted back where they live.
    for path in sorted(set(readonly)):
        under = [h for h in (*hidden, "/tmp") if path.startswith(h + "/")]
        if under and os.path.exists(path):
            parts = Path(path).relative_to(under[0]).parts
            for depth in range(1, len(parts)):  # parents bwrap would otherwise create as 0700
                args += ["--perms", "0755", "--dir", os.path.join(under[0], *parts[:depth])]
            args += ["--ro-bind", path, path]
    args += ["--bind", str(workdir), mount_point]
    for inside, host in writable.items():
        if not str(inside).startswith("/tmp/"):
            raise InvalidArgumentError(f"writable mount points must lie under /tmp/, got {inside!r}")
        args += ["--bind", str(host), str(inside)]
    args += ["--dev", "/dev", "--proc", "/proc"]
    for device in devices:  # after --dev, which mounts a minimal /dev (null, zero, random, tty, ...)
        args += ["--dev-bind", device, device]
    args += ["--chdir", cwd]
    if as_root:
        args += [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
        ]
    return args


def give_to(uid: int, paths: Sequence[str | os.PathLike]) -> None:
    """Make ``uid`` own every entry of the trees ``paths`` (files the host wrote belong to root, and the
    sandbox uid must be able to write its work dir); symlinks are changed, never followed."""
    for top in paths:
        for root, dirs, files in os.walk(top):
            for name in (*dirs, *files, ""):
                path = os.path.join(root, name) if name else root
                try:
                    st = os.lstat(path)
                    if st.st_uid != uid:
                        os.lchown(path, uid, uid)
                except OSError:
                    pass
