"""The judging of one evaluation, run in the trusted judge process (:mod:`.worker`).

Every call (warm-up, correctness, timed, profiled) goes through :func:`one_call` for both runners, in a
random order; its inputs are fresh (drawn from the call's own seed), and its outputs are compared here.
What the submission's process says about itself (backend, kernels launched, ops called, timers
patched) only ever adds flags; what decides correctness and speed is measured here.
"""

from __future__ import annotations

import os
import random

import worker as wk
from worker import Hack, RunnerFailed, RunnerProcess

#: A runner may report an output whose bytes span at most this many times the reference's.
SPAN_SLACK = 4


def _proc_children(pid: int) -> list[int]:
    found = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as handle:
                found += [int(p) for p in handle.read().split()]
    except OSError:
        pass
    return found


def _threads(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            return next(int(line.split()[1]) for line in handle if line.startswith("Threads:"))
    except (OSError, StopIteration, ValueError):
        return 0


def _strangers(known: set[int]) -> list[int]:
    """Processes in the sandbox's pid namespace that are none of ours (a helper the submission left)."""
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in known]


class Judge:
    def __init__(self, job: dict):
        import torch

        self.torch, self.job = torch, job
        self.result = {
            "compiled": False,
            "correct": False,
            "hacks": [],
            "warnings": [],
            "error": None,
            "backend": "torch",
            "trials": [],
            "stage": "setup",
        }
        self.ref = RunnerProcess("reference", job, [])
        self.sub = RunnerProcess("submission", job, self.ref.fds())
        self.known = {1, os.getpid(), self.ref.pid, self.sub.pid}
        self.rng = random.Random(int(job["seed"]))
        self.previous: list = []  # (meta, bytes) of the submission's last outputs
        self.events: list = []  # profiler events of the submission's profiled calls
        self.threads = 0

    def hack(self, name: str) -> None:
        if name not in self.result["hacks"]:
            self.result["hacks"].append(name)

    # ------------------------------------------------------------------ one call
    def draw_inputs(self, seed: int):
        reply = self.ref.call({"op": "inputs", "seed": seed})
        if "task_error" in reply:
            raise TaskError(reply["task_error"], reply.get("message", ""))
        items = reply["items"]
        pristine = [self.ref.receive_bytes(item["tensor"]["span"]) if "tensor" in item else None for item in items]
        return items, pristine

    def prepare(self, items, pristine) -> list:
        """Both runners allocate and load this call's inputs; the judge writes the submission's bytes."""
        self.ref.call({"op": "prep"})
        self.ref.call({"op": "load"})
        buffers = self.sub.call({"op": "prep", "items": items}).get("inputs")
        if not isinstance(buffers, list) or len(buffers) != len(items):
            raise Hack("protocol_violation", "the submission runner answered prep with the wrong number of buffers")
        for buf, data in zip(buffers, pristine):
            if data is not None:
                if not isinstance(buf, dict) or not wk.span_ok(buf, len(data)) or buf["span"] != len(data):
                    raise Hack("protocol_violation", "the submission runner allocated input buffers of the wrong size")
                self.sub.write(buf["ptr"], data)
        self.sub.call({"op": "load"})
        return buffers

    def go(self, process: RunnerProcess, flags: dict) -> tuple[int, dict]:
        start = wk._PERF()
        reply = process.call({"op": "go", **flags})
        return wk._PERF() - start, reply

    def reference_outputs(self, reply: dict):
        if "error" in reply:
            raise TaskError("Model.forward", reply["error"])
        fetched = self.ref.call({"op": "fetch"})
        outs = [wk.tensor_from(self.torch, m, self.ref.receive_bytes(m["span"])) for m in fetched["outputs"]]
        return outs, [m.get("device") for m in reply["outputs"]]

    def submission_outputs(self, reply: dict, ref_out, devices, buffers, pristine):
        """The submission's outputs, read from its memory while it waits on its pipe (a problem text for
        a non-tensor or misplaced output)."""
        self.events += reply.get("profile") or []
        metas = reply.get("outputs")
        if not isinstance(metas, list) or not all(isinstance(m, dict) for m in metas):
            raise Hack("protocol_violation", "the submission runner sent no outputs")
        not_tensor = [m["not_tensor"] for m in metas if "not_tensor" in m]
        if not_tensor:
            return f"an output is a {not_tensor[0]}, not a tensor"
        on = [m.get("device") for m in metas]
        if on != devices[: len(on)]:
            return f"outputs are on {on}, expected {devices}"
        if self.job["device"] == "cuda":
            metas = self.sub.call({"op": "fetch"}).get("outputs") or []  # GPU: copies on the host
        outs, read = [], []
        for i, meta in enumerate(metas):
            expected = ref_out[i].numel() * ref_out[i].element_size() if i < len(ref_out) else 0
            cap = SPAN_SLACK * max(expected, 1)
            if not isinstance(meta, dict) or not wk.span_ok(meta, cap):
                raise Hack("output_unreadable", f"output {i} does not lie in readable memory of at most {cap} bytes")
            raw = self.sub.read(meta["ptr"], meta["span"])
            outs.append(wk.tensor_from(self.torch, meta, raw))
            read.append((meta, raw))
        if self.job["device"] == "cpu":
            self.overlaps(read, buffers, pristine)
        self.previous = read
        return outs

    def overlaps(self, read, buffers, pristine) -> None:
        """Outputs sharing memory with inputs or the previous outputs; inputs or old outputs changed."""

        def ranges(metas):
            return [(m["ptr"], m["ptr"] + m["span"]) for m in metas if m.get("span")]

        def overlap(a, b):
            return any(x0 < y1 and y0 < x1 for x0, x1 in a for y0, y1 in b)

        outs = ranges([m for m, _ in read])
        cpu_inputs = [b for b in buffers if isinstance(b, dict) and b.get("device") == "cpu" and b.get("span")]
        if self.job["device"] == "cpu" and overlap(outs, ranges(cpu_inputs)):
            self.hack("output_aliases_input")
        if self.job["device"] == "cpu":
            for buf, data in zip(buffers, pristine):
                if data is not None and self.sub.read(buf["ptr"], buf["span"]) != data:
                    self.hack("mutates_inputs")
        if overlap(outs, ranges([m for m, _ in self.previous])):
            self.hack("reuses_output_buffer")
        elif any(self.sub.read(m["ptr"], m["span"]) != raw for m, raw in self.previous if m.get("span")):
            self.hack("overwrites_previous_output")

    def one_call(self, index: int, seed: int, flags: dict) -> tuple[int, int] | None:
        """Both models on call ``index``'s fresh inputs, in a random order; the two windows (ns), or
        ``None`` when the submission failed this call."""
        items, pristine = self.draw_inputs(seed)
        buffers = self.prepare(items, pristine)
        order = [("ref", self.ref, {}), ("sub", self.sub, flags)]
        self.rng.shuffle(order)
        windows, replies = {}, {}
        for name, process, message in order:
            windows[name], replies[name] = self.go(process, message)
            if name == "sub":  # the runner is blocked on its pipe until the judge has read its outputs
                if _threads(self.sub.pid) > self.threads:
                    self.hack("thread_injection")
                if _proc_children(self.sub.pid) or (self.job["isolation"] == "bwrap" and _strangers(self.known)):
                    self.hack("spawned_process")
        ref_out, devices = self.reference_outputs(replies["ref"])
        if "error" in replies["sub"]:
            self.result["error"] = f"{replies['sub']['error']} (call {index})"
            return None
        sub = self.submission_outputs(replies["sub"], ref_out, devices, buffers, pristine)
        if isinstance(sub, str):
            ok, problem, detail = False, sub, {}
        else:
            ok, problem, detail = wk.check_outputs(self.torch, ref_out, sub, self.job["atol"], self.job["rtol"])
        if index < self.job["correct_trials"] or not ok:
            self.result["trials"].append({"call": index, "seed": seed, "ok": ok, "problem": problem, **detail})
        self.result["calls_checked"] = index + 1
        return (windows["ref"], windows["sub"]) if ok else None

    # ------------------------------------------------------------------ the evaluation
    def run(self) -> dict:
        job, result = self.job, self.result
        wk.stage("reference")
        reply = self.ref.call({"op": "setup"})
        if "task_error" in reply:
            raise TaskError(reply["task_error"], reply.get("message", ""))
        init_inputs = reply["init_inputs"]
        wk.stage("compile")
        result["stage"] = "compile"
        reply = self.sub.call({"op": "setup", "init_inputs": init_inputs})
        if "need_build" in reply:
            result["need_build"] = {"spec": reply["need_build"]}
            return result
        if "error" in reply:
            result["error"] = reply["error"]
            result["compiled"] = reply.get("stage") == "init"
            return result
        result.update(compiled=True, backend=str(reply.get("backend")), compile_seconds=reply.get("compile_seconds"))
        self.threads = _threads(self.sub.pid)
        if result["backend"] not in job["allowed_backends"]:
            self.hack("backend_not_allowed")
        rtt = {name: sorted(self._ping(p) for _ in range(15))[7] for name, p in (("ref", self.ref), ("sub", self.sub))}
        result["pipe_round_trip_us"] = {k: v / 1e3 for k, v in rtt.items()}

        wk.stage("calls")
        result["stage"] = "correctness"
        warmup, perf, correct = job["warmup"], job["perf_trials"], job["correct_trials"]
        timed = range(warmup, warmup + perf) if perf > 0 else range(0)
        total = max(correct, warmup + perf if perf > 0 else 0)
        profiled = int(job.get("profile_iters", 3)) if job.get("profile", True) else 0
        seeds = [self.rng.randrange(2**31 - 1) for _ in range(total + profiled)]
        runs = {"ref": [], "new": []}
        for index, seed in enumerate(seeds):
            profile = index >= total
            if index == total:
                wk.stage("profiling")
            outcome = self.one_call(index, seed, {"profile": profile})
            if outcome is None:
                break
            if index in timed:
                runs["ref"].append(max(outcome[0] - rtt["ref"], 1) / 1e6)
                runs["new"].append(max(outcome[1] - rtt["sub"], 1) / 1e6)
        result["correct"] = (
            result["error"] is None
            and all(t["ok"] for t in result["trials"])
            and result.get("calls_checked") == len(seeds)
        )
        report = self.sub.call({"op": "finish"})
        self.lint(report)
        if profiled and result["correct"]:
            result.update(coverage(self.events, report, job))
            if result.get("forbidden_aten_ops"):
                self.hack("calls_reference_op")
        if runs["new"] and result["correct"]:
            for name, values in runs.items():
                result[f"{name}_stats"] = wk.summary(values)
                result[f"{name}_ms"] = result[f"{name}_stats"]["median"]
        if job.get("compile_baseline") and job.get("compile_ref_ms") is None and result["correct"] and perf > 0:
            wk.stage("torch.compile")
            self.ref.call({"op": "compile"})
            values = []
            for index in range(warmup + perf):
                self.ref.call({"op": "load"})
                start = wk._PERF()
                self.ref.call({"op": "go"})
                if index >= warmup:
                    values.append(max(wk._PERF() - start - rtt["ref"], 1) / 1e6)
            result["compile_ref_ms"] = wk.summary(values)["median"]
        result["hacks"] = sorted(set(result["hacks"]))
        result["stage"] = "done"
        wk.stage("done")
        return result

    def _ping(self, process: RunnerProcess) -> int:
        start = wk._PERF()
        process.call({"op": "ping"})
        return wk._PERF() - start

    def lint(self, report: dict) -> None:
        """Flags from what the submission's process reported about itself (it can only add flags)."""
        result, job = self.result, self.job
        forbidden = set(job.get("forbidden") or ())
        ops = set(report.get("ops_called") or [])
        result["ops_called"] = sorted(ops)
        if ops & forbidden:
            self.hack("calls_reference_op")
            result["forbidden_ops_called"] = sorted(ops & forbidden)
        if (
            (report.get("extensions") or result.get("backend") == "triton")
            and not report.get("kernel_calls")
            and result["trials"]
        ):
            self.hack("decoy_kernel")
        if result["backend"] == "torch" and "torch" not in job["allowed_backends"]:
            self.hack("no_custom_kernel")
        if report.get("side_stream"):
            self.hack("side_stream")
        if report.get("patched"):
            self.hack("timing_patched")
            result["patched"] = report["patched"]

    def close(self) -> None:
        self.sub.kill()
        self.ref.kill()


class TaskError(Exception):
    """The task file's own code failed (not the submission's fault)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def coverage(events: list, report: dict, job: dict) -> dict:
    """KernelGYM's coverage: the share of kernel time (and of kernels) that is the submission's own."""
    forbidden = set(job.get("forbidden") or ())
    aten = {str(e[0])[len("aten::") :].strip("_") for e in events if str(e[0]).startswith("aten::")}
    out = {"forbidden_aten_ops": sorted(aten & forbidden)}
    if job["device"] == "cuda":
        kernels = [e for e in events if e[3] == "cuda"]
        triton = [n.lower() for n in report.get("triton_names") or []]
        has_cuda_ext = any(c for _, c in report.get("extensions") or [])

        def own(name):
            low = name.lower()
            return any(t in low for t in triton) or (has_cuda_ext and not low.startswith(LIBRARY_KERNELS))
    else:
        kernels = [e for e in events if e[1] > 0 and not str(e[0]).startswith("ProfilerStep")]

        def own(name):
            return name.startswith(CUSTOM_PREFIX)

    total = sum(e[1] for e in kernels)
    count = sum(e[2] for e in kernels)
    out["time_coverage"] = (sum(e[1] for e in kernels if own(e[0])) / total) if total else None
    out["num_coverage"] = (sum(e[2] for e in kernels if own(e[0])) / count) if count else None
    out["profiled_kernels"] = [[str(e[0])[:80], e[1]] for e in sorted(kernels, key=lambda e: -e[1])][:20]
    return out


CUSTOM_PREFIX = "kernelgym::custom::"
#: Library kernel name prefixes on GPU (anything else in a ``cuda`` submission is its own kernel).
LIBRARY_KERNELS = (
    "void at::",
    "at::",
    "void cutlass",
    "cutlass",
    "cublas",
    "sm80_",
    "sm90_",
    "ampere_",
    "void (anonymous namespace)",
    "memcpy",
    "memset",
    "void splitkreduce",
    "nvjet",
    "elementwise",
)


def run(job: dict) -> dict:
    judge = Judge(job)
    try:
        return judge.run()
    except TaskError as exc:
        return {**judge.result, "task_error": {"field": exc.field, "message": str(exc)}}
    except Hack as exc:
        judge.hack(exc.name)
        return {**judge.result, "error": str(exc), "correct": False, "hacks": sorted(judge.result["hacks"])}
    except RunnerFailed as exc:
        return {**judge.result, "correct": False, "crashed": f"{exc} during {judge.result['stage']}"}
    finally:
        judge.close()
