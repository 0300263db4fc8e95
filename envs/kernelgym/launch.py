"""Where KernelGym's judge runs: ``python worker.py JOB_DIR ...`` in bubblewrap, or as a plain process.

:func:`launch_worker` is the one place the :class:`~.engine.Evaluator` starts the worker (an evaluation
or a trusted build). With ``isolation="bwrap"`` it runs in :class:`agentgym.sandbox.Sandbox` with the build
cache mounted read-only and, on CUDA, the NVIDIA device nodes; with ``isolation="process"`` (a machine
where bubblewrap cannot run) :func:`run_process` gives it the same rlimits and wall-clock timeout, its own
session, and kills its whole process group afterwards. Both answer a :class:`agentgym.sandbox.SandboxResult`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from agentgym.sandbox import Limits, Sandbox, SandboxResult


def launch_worker(
    folder: Path, argv_tail: list[str], env: dict, *, limits: Limits, isolation: str, cache: Path, gpu: bool
) -> SandboxResult:
    """``python worker.py JOB_DIR ...`` on the job ``folder`` (the build cache mounted read-only)."""
    if isolation == "bwrap":
        box = Sandbox(folder, limits=limits, env=env, readonly=[cache], devices=gpu_devices() if gpu else ())
        return box.run([sys.executable, "worker.py", box.mount_point, *argv_tail])
    return run_process([sys.executable, str(folder / "worker.py"), str(folder), *argv_tail], folder, env, limits)


def gpu_devices() -> list[str]:
    """The NVIDIA device nodes a CUDA worker needs inside the sandbox."""
    return sorted(str(p) for p in Path("/dev").glob("nvidia*"))


def run_process(argv: list[str], cwd: Path, env: dict, limits: Limits) -> SandboxResult:
    """The worker as a plain subprocess (no bubblewrap): rlimits, its own session, a wall timeout."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (int(limits.cpu_seconds), int(limits.cpu_seconds) + 1))
        if limits.memory_bytes < (1 << 46):
            resource.setrlimit(resource.RLIMIT_AS, (int(limits.memory_bytes),) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    start = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=limit,
    )
    timed_out = False
    try:
        out, _ = proc.communicate(timeout=limits.wall_seconds)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    text = out.decode("utf-8", "replace")
    code = proc.returncode
    killed = (
        f"timed out after {limits.wall_seconds:g} s"
        if timed_out
        else (f"killed by signal {-code}" if code < 0 else None)
    )
    return SandboxResult(code, text, time.monotonic() - start, timed_out, killed)
