"""The KernelGym judge: the one trusted process of an evaluation; it never runs either model.

Run as ``python worker.py JOB_DIR`` inside the sandbox (``python worker.py JOB_DIR build`` is the
trusted build step, :func:`runner.build_main`). It reads ``job.json``, makes itself non-dumpable (its
memory and descriptors are then out of reach of its own uid), imports torch, forks a **reference
runner** and a **submission runner** (:mod:`.runner`) and drives them call by call:

1. the reference runner draws call *i*'s inputs from its seed and sends their bytes;
2. each runner, in a random order, gets the same messages: ``prep`` (the judge writes the input bytes
   into the submission runner's buffers through ``/proc/PID/mem``), ``load``, ``go``; the judge times
   ``go`` from outside with its own clock (minus the measured pipe round trip), so the ``forward``
   of a correctness call and of a timed call are the same code path, and a patched timer in the
   submission's process changes nothing;
3. the judge reads the submission's outputs out of its memory while it is blocked on its pipe, reads
   the reference outputs from the reference runner's pipe, and compares them here, where no
   submission code ever ran. Every call is checked: warm-up, timed and profiled calls alike.

Only this process writes stdout (the runners' stdout goes to log files), so the result line
``KERNELGYM-RESULT <json>`` cannot be forged; ``KERNELGYM-STAGE <name>`` lines say where a crash
happened. Only the standard library and torch are imported (the files are copied into the job folder).
"""

from __future__ import annotations

import json
import math
import os
import random
import select
import signal
import sys
import time
import traceback

import runner as rn

_PERF = time.perf_counter_ns
_STDOUT = sys.stdout
_START = _PERF()
STAGES: dict = {}
#: The evaluation's timeout (seconds), for messages.
TIMEOUT = [0.0]
#: Largest reply line a runner may send (bytes).
REPLY_LIMIT = 1 << 22


def stage(name: str) -> None:
    STAGES[name] = round((_PERF() - _START) / 1e9, 3)  # seconds since the judge started
    _STDOUT.write(f"KERNELGYM-STAGE {name}\n")
    _STDOUT.flush()


class RunnerFailed(Exception):
    """A runner died, hung past the deadline or sent something malformed."""


class RunnerProcess:
    """One forked runner and the judge's end of its two pipes."""

    def __init__(self, role: str, job: dict, inherited: list[int]):
        cmd_r, cmd_w = os.pipe()
        rep_r, rep_w = os.pipe()
        log = os.open(os.path.join(job["job_dir"], f"{role}.log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        pid = os.fork()
        if pid == 0:  # the runner: drop every descriptor of the judge before anything else runs
            try:
                os.dup2(log, 1)
                os.dup2(log, 2)
                for fd in (cmd_w, rep_r, log, *inherited):
                    os.close(fd)
                if role == "submission":
                    rn.set_dumpable(1)  # so the judge can read its memory
                rn.serve(role, job, rn.Channel(cmd_r, rep_w))
            finally:
                os._exit(0)
        for fd in (cmd_r, rep_w, log):
            os.close(fd)
        self.role, self.pid, self.cmd, self.rep = role, pid, cmd_w, rep_r
        self.buffer = b""
        self.mem: int | None = None
        self.deadline = job["deadline"]

    def fds(self) -> list[int]:
        return [self.cmd, self.rep]

    def send(self, message: dict) -> None:
        data = (json.dumps(message) + "\n").encode()
        try:
            while data:
                data = data[os.write(self.cmd, data) :]
        except OSError:
            raise RunnerFailed(self.exit_reason()) from None

    def _fill(self, need, line: bool) -> None:
        while not need():
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise RunnerFailed(f"timed out after {TIMEOUT[0]:g} s")
            ready, _, _ = select.select([self.rep], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.rep, 1 << 20)
            if not chunk:
                raise RunnerFailed(self.exit_reason())
            self.buffer += chunk
            if line and b"\n" not in self.buffer and len(self.buffer) > REPLY_LIMIT:
                raise RunnerFailed(f"the {self.role} runner sent a reply over {REPLY_LIMIT} bytes")

    def receive(self) -> dict:
        self._fill(lambda: b"\n" in self.buffer, line=True)
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            reply = json.loads(line)
        except ValueError:
            raise RunnerFailed(f"the {self.role} runner sent a malformed reply") from None
        if not isinstance(reply, dict):
            raise RunnerFailed(f"the {self.role} runner sent a malformed reply")
        return reply

    def receive_bytes(self, count: int) -> bytes:
        self._fill(lambda: len(self.buffer) >= count, line=False)
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def call(self, message: dict) -> dict:
        self.send(message)
        return self.receive()

    def memory(self) -> int:
        if self.mem is None:
            try:
                self.mem = os.open(f"/proc/{self.pid}/mem", os.O_RDWR)
            except OSError as exc:
                raise Hack("output_unreadable", f"cannot read the submission's memory: {exc}") from None
        return self.mem

    def read(self, ptr: int, count: int) -> bytes:
        chunks, done = [], 0
        while done < count:
            try:
                chunk = os.pread(self.memory(), count - done, ptr + done)
            except OSError as exc:
                raise Hack("output_unreadable", f"an output points outside the submission's memory ({exc})") from None
            if not chunk:
                raise Hack("output_unreadable", "an output points outside the submission's memory")
            chunks.append(chunk)
            done += len(chunk)
        return b"".join(chunks)

    def write(self, ptr: int, data: bytes) -> None:
        done = 0
        while done < len(data):
            done += os.pwrite(self.memory(), data[done:], ptr + done)

    def exit_reason(self) -> str:
        try:
            pid, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            return f"the {self.role} runner exited"
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            names = {
                signal.SIGSEGV: "segmentation fault",
                signal.SIGKILL: "killed (SIGKILL)",
                signal.SIGXCPU: "CPU time limit exceeded",
                signal.SIGABRT: "aborted",
                signal.SIGBUS: "bus error",
            }
            return f"{names.get(sig, f'killed by signal {sig}')} in the {self.role} runner"
        return f"the {self.role} runner exited with code {os.WEXITSTATUS(status)}"

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


class Hack(Exception):
    """A check failed in a way that voids the turn (``name`` goes to ``hacks``)."""

    def __init__(self, name: str, detail: str):
        super().__init__(detail)
        self.name = name


def tensor_from(torch, meta: dict, raw: bytes):
    """Rebuild a tensor from its bytes and the (untrusted) layout the runner reported."""
    shape, stride = meta.get("shape"), meta.get("stride")
    dtype = getattr(torch, str(meta.get("dtype")), None)
    ok = (
        isinstance(dtype, torch.dtype)
        and isinstance(shape, list)
        and isinstance(stride, list)
        and len(shape) == len(stride)
        and all(isinstance(v, int) and v >= 0 for v in shape + stride)
    )
    if not ok:
        raise Hack("output_unreadable", "an output has a layout that cannot be read")
    if not all(shape):
        return torch.empty(shape, dtype=dtype)
    flat = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype)
    return flat.as_strided(shape, stride)


def span_ok(meta: dict, cap: int) -> bool:
    return isinstance(meta.get("ptr"), int) and isinstance(meta.get("span"), int) and 0 <= meta["span"] <= cap


def stats(ref, new):
    diff = (ref.double() - new.double()).abs()
    return {
        "max_abs_diff": float(diff.max()) if diff.numel() else 0.0,
        "mean_abs_diff": float(diff.mean()) if diff.numel() else 0.0,
    }


def check_outputs(torch, ref_out, new_out, atol, rtol):
    """``(ok, problem, stats)`` for one call's outputs (both built here from bytes)."""
    if len(ref_out) != len(new_out):
        return False, f"expected {len(ref_out)} outputs, got {len(new_out)}", {}
    worst = {"max_abs_diff": 0.0, "mean_abs_diff": 0.0, "mismatched": 0, "numel": 0}
    for i, (r, n) in enumerate(zip(ref_out, new_out)):
        if isinstance(n, str):
            return False, f"output {i} is a {n}, not a tensor", {}
        if tuple(r.shape) != tuple(n.shape):
            return False, f"output {i} has shape {tuple(n.shape)}, expected {tuple(r.shape)}", {}
        if n.dtype != r.dtype:
            n = n.to(r.dtype)
        s = stats(r, n)
        close = torch.isclose(n, r, atol=atol, rtol=rtol, equal_nan=True)
        bad = int((~close).sum())
        worst["max_abs_diff"] = max(worst["max_abs_diff"], s["max_abs_diff"])
        worst["mean_abs_diff"] = max(worst["mean_abs_diff"], s["mean_abs_diff"])
        worst["mismatched"] += bad
        worst["numel"] += r.numel()
        if bad:
            where = tuple(int(v) for v in (~close).nonzero()[0].tolist())
            worst["first_mismatch"] = {"output": i, "index": where, "expected": float(r[where]), "got": float(n[where])}
    if worst["mismatched"]:
        return False, "outputs differ beyond the tolerance", worst
    return True, None, worst


def summary(values_ms: list[float]) -> dict:
    values = sorted(values_ms)
    n = len(values)
    median = values[n // 2] if n % 2 else 0.5 * (values[n // 2 - 1] + values[n // 2])
    mean = sum(values) / n
    return {
        "median": median,
        "mean": mean,
        "min": values[0],
        "max": values[-1],
        "p10": values[n // 10],
        "p90": values[(9 * n) // 10],
        "std": math.sqrt(sum((v - mean) ** 2 for v in values) / n),
        "n": n,
    }


def main() -> None:
    job_dir = sys.argv[1]
    if sys.argv[2:] == ["build"]:
        os._exit(rn.build_main(job_dir))
    rn.set_dumpable(0)  # before anything else: the runners are forked from here
    job = json.load(open(os.path.join(job_dir, "job.json"), encoding="utf-8"))
    job["job_dir"] = job_dir
    TIMEOUT[0] = float(job["timeout"])
    job["deadline"] = time.monotonic() + float(job["timeout"]) - float(job.get("startup_seconds", 2.0))
    sys.modules.setdefault("worker", sys.modules[__name__])  # judge.py imports this module, not a copy
    import judge

    try:
        result = judge.run(job)
    except BaseException as exc:  # noqa: BLE001 - report, never hang
        result = {
            "compiled": False,
            "correct": False,
            "hacks": [],
            "warnings": [],
            "trials": [],
            "error": "evaluation judge failed:\n" + rn.trim("".join(traceback.format_exception(exc))),
        }
    result["stage_seconds"] = STAGES
    _STDOUT.write(f"KERNELGYM-RESULT {json.dumps(result, default=str)}\n")
    _STDOUT.flush()
    os._exit(0)  # skip interpreter teardown


if __name__ == "__main__":
    random.seed()
    main()
