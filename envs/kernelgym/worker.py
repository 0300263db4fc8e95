"""The KernelGym evaluation worker: one submission, one fresh process, inside the sandbox.

Run as ``python worker.py JOB_DIR``. It reads ``JOB_DIR/job.json`` (written by
:mod:`agentgym.envs.kernelgym.evaluate`), loads the reference and the submission, checks correctness
on fresh random inputs, runs the runtime anti-hacking checks, times both (CPU: one thread, median of
many runs; GPU: CUDA events with an L2 flush before each run), profiles the submission for the
coverage reward, and prints one line ``KERNELGYM-RESULT <nonce> <json>``. Progress lines
``KERNELGYM-STAGE <name>`` tell the parent where a crash happened.

Only the standard library and torch are imported here (the file is copied into the job folder), so a
submission cannot reach the env's own state. Everything the submission does happens in this process,
which the sandbox kills on a time or memory limit.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import sys
import threading
import time
import traceback

_PERF = time.perf_counter_ns  # bound before any submission code runs
_STDOUT = sys.stdout
CUSTOM_PREFIX = "kernelgym::custom::"
#: Library kernel name prefixes on GPU (anything else in a ``cuda`` submission is its own kernel).
LIBRARY_KERNELS = ("void at::", "at::", "void cutlass", "cutlass", "cublas", "sm80_", "sm90_", "ampere_",
                   "void (anonymous namespace)", "memcpy", "memset", "void splitkreduce", "nvjet", "elementwise")


STAGES: dict = {}
_START = _PERF()


def stage(name: str) -> None:
    STAGES[name] = round((_PERF() - _START) / 1e9, 3)  # seconds since the worker started
    _STDOUT.write(f"KERNELGYM-STAGE {name}\n")
    _STDOUT.flush()


def trim(text: str, limit: int = 3000) -> str:
    return text if len(text) <= limit else text[: limit // 2] + "\n[... trimmed ...]\n" + text[-limit // 2:]


def load_module(name: str, path: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


class Recorder:
    """Counts custom-kernel calls (C++ extension functions, Triton launches) and load_inline builds."""

    def __init__(self):
        self.extensions = []       # (name, has_cuda)
        self.calls = 0
        self.triton_launches = 0
        self.triton_names = set()
        self.active = False


REC = Recorder()


def install_load_inline_cache(torch, cache_dir: str) -> None:
    """Give every ``load_inline`` a build folder keyed by the hash of its sources and flags (a compile
    cache shared by all episodes) and wrap the functions it returns so calls are counted and show up in
    the profiler as ``kernelgym::custom::<name>``."""
    from torch.utils import cpp_extension

    original = cpp_extension.load_inline

    def load_inline(name, cpp_sources, cuda_sources=None, *args, **kwargs):
        key = json.dumps([name, cpp_sources, cuda_sources, repr(args), repr(sorted(kwargs.items())),
                          torch.__version__], sort_keys=True, default=str)
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        if cache_dir and "build_directory" not in kwargs:
            folder = os.path.join(cache_dir, f"{name}-{digest}")
            os.makedirs(folder, exist_ok=True)
            kwargs["build_directory"] = folder
        module = original(name, cpp_sources, cuda_sources, *args, **kwargs)
        REC.extensions.append((name, bool(cuda_sources)))
        return _Proxy(module, torch)

    cpp_extension.load_inline = load_inline


class _Proxy:
    """An extension module whose functions are counted and recorded for the profiler."""

    def __init__(self, module, torch):
        object.__setattr__(self, "_module", module)
        object.__setattr__(self, "_torch", torch)

    def __getattr__(self, item):
        value = getattr(self._module, item)
        if not callable(value):
            return value
        record = self._torch.profiler.record_function

        def call(*args, **kwargs):
            REC.calls += 1
            with record(CUSTOM_PREFIX + item):
                return value(*args, **kwargs)

        return call


def install_triton_hook() -> bool:
    """Count Triton kernel launches (KernelGYM's decoy check) by wrapping ``JITFunction.run``."""
    try:
        from triton.runtime.jit import JITFunction
    except Exception:  # triton absent (CPU machines)
        return False
    original = JITFunction.run

    def run(self, *args, **kwargs):
        REC.triton_launches += 1
        REC.triton_names.add(getattr(self.fn, "__name__", "kernel"))
        return original(self, *args, **kwargs)

    JITFunction.run = run
    return True


def make_op_recorder(torch):
    """A TorchFunctionMode that records the names of the torch functions a forward calls."""
    from torch.overrides import TorchFunctionMode

    class OpRecorder(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.names = set()

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.names.add(getattr(func, "__name__", str(func)).strip("_"))
            return func(*args, **(kwargs or {}))

    return OpRecorder


def stats(ref, new):
    diff = (ref.double() - new.double()).abs()
    return {"max_abs_diff": float(diff.max()) if diff.numel() else 0.0,
            "mean_abs_diff": float(diff.mean()) if diff.numel() else 0.0}


def check_outputs(torch, ref_out, new_out, atol, rtol):
    """``(ok, problem, stats)`` for one trial's outputs."""
    ref_out, new_out = as_tuple(ref_out), as_tuple(new_out)
    if len(ref_out) != len(new_out):
        return False, f"expected {len(ref_out)} outputs, got {len(new_out)}", {}
    worst = {"max_abs_diff": 0.0, "mean_abs_diff": 0.0, "mismatched": 0, "numel": 0}
    for i, (r, n) in enumerate(zip(ref_out, new_out)):
        if not isinstance(n, torch.Tensor):
            return False, f"output {i} is a {type(n).__name__}, not a tensor", {}
        if tuple(r.shape) != tuple(n.shape):
            return False, f"output {i} has shape {tuple(n.shape)}, expected {tuple(r.shape)}", {}
        if n.device != r.device:
            return False, f"output {i} is on {n.device}, expected {r.device}", {}
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
            worst["first_mismatch"] = {"output": i, "index": where, "expected": float(r[where]),
                                       "got": float(n[where])}
    if worst["mismatched"]:
        return False, "outputs differ beyond the tolerance", worst
    return True, None, worst


def storages(torch, tensors):
    out = set()
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.numel():
            out.add(t.untyped_storage().data_ptr())
    return out


def timers_snapshot(torch):
    items = {"time.perf_counter": time.perf_counter, "time.perf_counter_ns": time.perf_counter_ns,
             "time.time": time.time, "time.monotonic": time.monotonic,
             "torch.cuda.synchronize": torch.cuda.synchronize, "torch.cuda.Event": torch.cuda.Event,
             "torch.cuda.Event.elapsed_time": getattr(torch.cuda.Event, "elapsed_time", None),
             "torch.Tensor.__eq__": torch.Tensor.__eq__, "torch.allclose": torch.allclose,
             "torch.isclose": torch.isclose, "torch.equal": torch.equal}
    return items


def run(job_dir: str) -> dict:
    job = json.load(open(os.path.join(job_dir, "job.json")))
    device = job["device"]
    result = {"compiled": False, "correct": False, "hacks": [], "warnings": [], "error": None,
              "backend": "torch", "trials": [], "stage": "setup"}
    stage("setup")
    os.umask(0)
    import torch

    torch.set_num_threads(1)
    if device == "cuda" and not torch.cuda.is_available():
        result["error"] = "this machine has no CUDA device"
        return result
    timers = timers_snapshot(torch)
    threads_before = threading.active_count()
    install_load_inline_cache(torch, job.get("cache_dir") or "")
    install_triton_hook()

    stage("reference")
    ref_mod = load_module("kernelgym_reference", os.path.join(job_dir, "reference.py"))
    for key, value in (job.get("shapes") or {}).items():
        setattr(ref_mod, key, value)
    ref_calls = [0]
    forward = ref_mod.Model.forward

    def counted_forward(self, *args, **kwargs):
        ref_calls[0] += 1
        return forward(self, *args, **kwargs)

    ref_mod.Model.forward = counted_forward

    stage("compile")
    result["stage"] = "compile"
    t0 = _PERF()
    try:
        sub_mod = load_module("kernelgym_submission", os.path.join(job_dir, "submission.py"))
        if not isinstance(getattr(sub_mod, "ModelNew", None), type):
            raise NameError("the submission defines no class ModelNew")
    except BaseException as exc:  # noqa: BLE001 - anything the submission raises is its compile error
        if isinstance(exc, MemoryError):
            result["error"] = "out of memory while loading the submission"
        else:
            result["error"] = trim("".join(traceback.format_exception(exc)))
        return result
    result["compile_seconds"] = (_PERF() - t0) / 1e9
    result["compiled"] = True
    triton_defined = any(type(v).__name__ in ("JITFunction", "Autotuner", "Heuristics") for v in vars(sub_mod).values())
    cuda_ext = any(c for _, c in REC.extensions)
    result["backend"] = ("cuda" if cuda_ext else "triton" if triton_defined else "cpp" if REC.extensions
                         else "torch")
    if result["backend"] not in job["allowed_backends"]:
        result["hacks"].append("backend_not_allowed")

    stage("correctness")
    result["stage"] = "correctness"
    dev = torch.device(device)
    init_inputs = ref_mod.get_init_inputs()
    seed0 = int(job.get("seed", 42))
    gen = torch.Generator().manual_seed(seed0)
    seeds = [int(torch.randint(0, 2**31 - 1, (1,), generator=gen)) for _ in range(job["correct_trials"])]
    torch.manual_seed(seed0)
    ref_model = ref_mod.Model(*init_inputs).to(dev).eval()
    torch.manual_seed(seed0)
    try:
        new_model = sub_mod.ModelNew(*init_inputs).to(dev).eval()
    except BaseException as exc:  # noqa: BLE001
        result["error"] = "ModelNew(*get_init_inputs()) failed:\n" + trim("".join(traceback.format_exception(exc)))
        return result
    recorder_cls = make_op_recorder(torch)
    forbidden = set(job.get("forbidden") or ())
    called_ops: set = set()
    previous = None  # (output tensors, clones) of the last trial
    kernel_calls = 0
    for trial, seed in enumerate(seeds):
        torch.manual_seed(seed)
        pristine = [x.to(dev) if isinstance(x, torch.Tensor) else x for x in ref_mod.get_inputs()]
        new_in = [x.clone() if isinstance(x, torch.Tensor) else x for x in pristine]
        ref_in = [x.clone() if isinstance(x, torch.Tensor) else x for x in pristine]
        calls_before, launches_before = REC.calls, REC.triton_launches
        recorder = recorder_cls()
        try:
            with torch.no_grad(), recorder:  # the submission runs first: no freed reference output to reuse
                new_out = new_model(*new_in)
            if device == "cuda":
                torch.cuda.synchronize()
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
                result["error"] = f"out of memory in ModelNew.forward (trial {trial})"
            else:
                result["error"] = f"ModelNew.forward raised (trial {trial}):\n" + trim(
                    "".join(traceback.format_exception(exc)))
            return result
        kernel_calls += (REC.calls - calls_before) + (REC.triton_launches - launches_before)
        called_ops |= recorder.names
        with torch.no_grad():
            ref_before = ref_calls[0]
            ref_out = ref_model(*ref_in)
            ref_calls[0] = ref_before
        if device == "cuda":
            torch.cuda.synchronize()
        if any(isinstance(a, torch.Tensor) and not torch.equal(a, b) for a, b in zip(new_in, pristine)):
            result["hacks"].append("mutates_inputs")
        outs = [o for o in as_tuple(new_out) if isinstance(o, torch.Tensor)]
        if storages(torch, outs) & storages(torch, new_in):
            result["hacks"].append("output_aliases_input")
        if previous is not None:
            old_outs, old_clones = previous
            if storages(torch, outs) & storages(torch, old_outs):
                result["hacks"].append("reuses_output_buffer")
            elif any(not torch.equal(a, b) for a, b in zip(old_outs, old_clones)):
                result["hacks"].append("overwrites_previous_output")
        previous = (outs, [o.detach().clone() for o in outs])
        ok, problem, detail = check_outputs(torch, ref_out, new_out, job["atol"], job["rtol"])
        result["trials"].append({"seed": seed, "ok": ok, "problem": problem, **detail})
        if not ok:
            break
    result["ops_called"] = sorted(called_ops)
    hits = sorted(called_ops & forbidden)
    if hits:
        result["hacks"].append("calls_reference_op")
        result["forbidden_ops_called"] = hits
    if ref_calls[0]:
        result["hacks"].append("calls_reference_model")
    if (REC.extensions or triton_defined) and kernel_calls == 0 and result["trials"]:
        result["hacks"].append("decoy_kernel")
    if result["backend"] == "torch" and "torch" not in job["allowed_backends"]:
        result["hacks"].append("no_custom_kernel")
    if threading.active_count() > threads_before:
        result["hacks"].append("thread_injection")
    if device == "cuda" and torch.cuda.current_stream() != torch.cuda.default_stream():
        result["hacks"].append("side_stream")
    changed = [k for k, v in timers_snapshot(torch).items() if timers.get(k) is not v]
    if changed:
        result["hacks"].append("timing_patched")
        result["patched"] = changed
    result["hacks"] = sorted(set(result["hacks"]))
    result["correct"] = all(t["ok"] for t in result["trials"]) and len(result["trials"]) == len(seeds)
    if not result["correct"] or result["hacks"]:
        return result

    torch.manual_seed(seeds[0])
    inputs = [x.to(dev) if isinstance(x, torch.Tensor) else x for x in ref_mod.get_inputs()]
    if job.get("profile", True):
        stage("profiling")
        result["stage"] = "profiling"
        result.update(profile(torch, new_model, inputs, device, job, forbidden))
        if result.get("forbidden_aten_ops"):
            result["hacks"].append("calls_reference_op")
            return result
    if job["perf_trials"] > 0:
        stage("timing")
        result["stage"] = "timing"
        timing = time_models(torch, ref_model, new_model, inputs, device, job)
        result.update(timing)
        if job.get("compile_baseline") and job.get("compile_ref_ms") is None:
            stage("torch.compile")
            compiled = torch.compile(ref_model)
            result["compile_ref_ms"] = time_models(torch, compiled, None, inputs, device, job)["ref_ms"]
    result["stage"] = "done"
    stage("done")
    return result


def time_models(torch, ref_model, new_model, inputs, device, job) -> dict:
    """Median runtimes (ms) of the reference and the submission, measured interleaved in this process.

    CPU: ``perf_counter_ns`` around each call on one thread. GPU: CUDA events around each call, the
    whole device synchronized (not just the stream) and the L2 cache flushed before every run.
    """
    models = [("ref", ref_model)] + ([("new", new_model)] if new_model is not None else [])
    runs = {name: [] for name, _ in models}
    flush = None
    if device == "cuda":
        flush = torch.empty(int(job.get("l2_flush_bytes", 256 << 20)) // 4, dtype=torch.float32, device="cuda")
    with torch.no_grad():
        for _, model in models:
            for _ in range(job["warmup"]):
                model(*inputs)
        if device == "cuda":
            torch.cuda.synchronize()
        for _ in range(job["perf_trials"]):
            for name, model in models:
                if device == "cuda":
                    flush.zero_()
                    torch.cuda.synchronize()
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    model(*inputs)
                    end.record()
                    torch.cuda.synchronize()
                    runs[name].append(start.elapsed_time(end))
                else:
                    t0 = _PERF()
                    model(*inputs)
                    runs[name].append((_PERF() - t0) / 1e6)
    out = {}
    for name, values in runs.items():
        values = sorted(values)
        median = values[len(values) // 2] if len(values) % 2 else 0.5 * (values[len(values) // 2 - 1] + values[len(values) // 2])
        mean = sum(values) / len(values)
        out[f"{name}_ms"] = median
        out[f"{name}_stats"] = {"median": median, "mean": mean, "min": values[0], "max": values[-1],
                                "p10": values[len(values) // 10], "p90": values[(9 * len(values)) // 10],
                                "std": math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)),
                                "n": len(values)}
    return out


def profile(torch, model, inputs, device, job, forbidden) -> dict:
    """KernelGYM's coverage: the share of kernel time (and of kernels) that is the submission's own."""
    if device == "cuda":
        from torch.profiler import ProfilerActivity, profile as torch_profile

        recorder = torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
    else:  # the legacy CPU profiler: same events, without kineto's import of torch._dynamo (seconds)
        try:
            from torch.autograd.profiler_legacy import profile as legacy_profile

            recorder = legacy_profile()
        except ImportError:
            from torch.profiler import ProfilerActivity, profile as torch_profile

            recorder = torch_profile(activities=[ProfilerActivity.CPU])
    with torch.no_grad(), recorder as prof:
        for _ in range(int(job.get("profile_iters", 3))):
            model(*inputs)
        if device == "cuda":
            torch.cuda.synchronize()
    events = prof.key_averages()
    aten = {e.key[len("aten::"):].strip("_") for e in events if e.key.startswith("aten::")}
    out = {"forbidden_aten_ops": sorted(aten & forbidden)}
    if device == "cuda":
        kernels = [e for e in events if str(getattr(e, "device_type", "")).endswith("CUDA")
                   and getattr(e, "self_device_time_total", 0) > 0]
        triton = [n.lower() for n in REC.triton_names]

        def own(name):
            low = name.lower()
            if any(t in low for t in triton):
                return True
            return any(c for _, c in REC.extensions) and not any(low.startswith(p) for p in LIBRARY_KERNELS)

        total = sum(e.self_device_time_total for e in kernels)
        mine = sum(e.self_device_time_total for e in kernels if own(e.key))
        count = sum(e.count for e in kernels)
        out["num_coverage"] = (sum(e.count for e in kernels if own(e.key)) / count) if count else None
        out["time_coverage"] = (mine / total) if total else None
        out["profiled_kernels"] = [[e.key[:80], e.self_device_time_total] for e in kernels][:20]
    else:
        ops = [e for e in events if e.self_cpu_time_total > 0 and not e.key.startswith("ProfilerStep")]
        total = sum(e.self_cpu_time_total for e in ops)
        mine = sum(e.self_cpu_time_total for e in ops if e.key.startswith(CUSTOM_PREFIX))
        count = sum(e.count for e in ops)
        out["num_coverage"] = (sum(e.count for e in ops if e.key.startswith(CUSTOM_PREFIX)) / count) if count else None
        out["time_coverage"] = (mine / total) if total else None
        out["profiled_kernels"] = [[e.key[:80], e.self_cpu_time_total] for e in
                                   sorted(ops, key=lambda e: -e.self_cpu_time_total)][:20]
    return out


def main() -> None:
    job_dir = sys.argv[1]
    nonce = json.load(open(os.path.join(job_dir, "job.json")))["nonce"]
    try:
        result = run(job_dir)
    except BaseException as exc:  # noqa: BLE001 - report, never hang
        result = {"compiled": False, "correct": False, "hacks": [], "warnings": [], "trials": [],
                  "error": "evaluation worker failed:\n" + trim("".join(traceback.format_exception(exc)))}
    result["stage_seconds"] = STAGES
    _STDOUT.write(f"KERNELGYM-RESULT {nonce} {json.dumps(result, default=str)}\n")
    _STDOUT.flush()
    os._exit(0)  # skip interpreter teardown (and any atexit hook a submission registered)


if __name__ == "__main__":
    main()
