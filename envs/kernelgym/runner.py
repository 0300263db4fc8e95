"""The KernelGym runners: one process runs the reference, another the submission; neither judges.

The judge (:mod:`.worker`) forks both after importing torch and drives them with the same few messages
(:func:`serve`), so a submission cannot tell a correctness call from a timed one: every call is
``prep`` (allocate input buffers, which the judge fills), ``load``, then ``go`` (the forward the judge
times from outside, whose outputs the judge then reads out of this process's memory and checks).

* The **reference runner** loads the task file, draws each call's inputs (``inputs``) and reports its
  outputs over its pipe (it is trusted and not dumpable, so the submission cannot read or patch it).
* The **submission runner** never has the reference module, the reference outputs, the judge's pipes or
  stdout: before any submission code runs it closes every descriptor it does not need, sends its output
  to a log file and makes itself dumpable so the judge (its parent) can read its memory. What it
  reports about itself (kernels launched, ops called, timers patched) only adds flags.

The ``load_inline`` wrapper loads libraries from the read-only build cache after checking their hash
(:mod:`.buildcache`); for sources the cache lacks it asks the judge for a trusted build and exits.
"""

from __future__ import annotations

import ctypes
import importlib.util
import inspect
import json
import os
import sys
import threading
import time
import traceback

import buildcache

CUSTOM_PREFIX = "kernelgym::custom::"
PR_SET_DUMPABLE = 4


def set_dumpable(value: int) -> None:
    """``prctl(PR_SET_DUMPABLE)``: 0 hides this process's memory and descriptors from its own uid."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, value, 0, 0, 0)


def trim(text: str, limit: int = 3000) -> str:
    return text if len(text) <= limit else text[: limit // 2] + "\n[... trimmed ...]\n" + text[-limit // 2 :]


def load_module(name: str, path: str, shapes: dict | None = None):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    for key, value in (shapes or {}).items():
        setattr(module, key, value)
    return module


def as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


class Recorder:
    """What the submission's process saw of its own kernels (self-reported: it only adds flags)."""

    def __init__(self):
        self.extensions = []  # (name, has_cuda)
        self.calls = 0
        self.triton_launches = 0
        self.triton_names = set()


REC = Recorder()


class Channel:
    """Newline-delimited JSON over two pipes."""

    def __init__(self, read_fd: int, write_fd: int):
        self.reader = os.fdopen(read_fd, "rb", buffering=0)
        self.write_fd = write_fd
        self.buffer = b""

    def send(self, message: dict) -> None:
        data = (json.dumps(message, default=str) + "\n").encode()
        while data:
            data = data[os.write(self.write_fd, data) :]

    def send_bytes(self, payload: bytes) -> None:
        view = memoryview(payload)
        while view:
            view = view[os.write(self.write_fd, view) :]

    def receive(self) -> dict:
        while b"\n" not in self.buffer:
            chunk = self.reader.read(1 << 16)
            if not chunk:
                os._exit(0)  # the judge is gone
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)


def tensor_bytes(torch, t) -> bytes:
    """A tensor's elements as raw bytes, any dtype (bfloat16 included)."""
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""


def tensor_meta(torch, t) -> dict:
    """Where a tensor's bytes are, for the judge to read them from this process's memory."""
    span = (sum((s - 1) * st for s, st in zip(t.shape, t.stride())) + 1) * t.element_size() if t.numel() else 0
    return {
        "ptr": t.data_ptr(),
        "shape": list(t.shape),
        "stride": list(t.stride()),
        "dtype": str(t.dtype)[6:],
        "device": str(t.device),
        "span": span,
    }


def install_load_inline(torch, job: dict, channel: Channel) -> None:
    """``load_inline`` from the read-only build cache (hash-checked), or a request for a trusted build."""
    from torch.utils import cpp_extension

    signature = inspect.signature(cpp_extension.load_inline)
    cache_dir, private = job["cache_dir"], os.path.join(job["private_dir"], "extensions")

    def load_inline(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        spec = buildcache.make_spec(dict(bound.arguments))
        key = buildcache.extension_key(spec, torch.__version__, job["device"])
        entry = buildcache.manifest(cache_dir, key)
        if entry is None:
            channel.send({"need_build": spec, "key": key})
            os._exit(0)
        if not entry.get("ok"):
            raise RuntimeError(f"building extension {spec['name']!r} failed:\n{entry.get('log', '')}")
        path = buildcache.verified_copy(cache_dir, key, os.path.join(private, key))
        module_spec = importlib.util.spec_from_file_location(spec["name"], path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        REC.extensions.append((spec["name"], bool(spec.get("cuda_sources"))))
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


def install_triton_hook() -> None:
    """Count Triton kernel launches (KernelGYM's decoy check) by wrapping ``JITFunction.run``."""
    try:
        from triton.runtime.jit import JITFunction
    except Exception:  # triton absent (CPU machines)
        return
    original = JITFunction.run

    def run(self, *args, **kwargs):
        REC.triton_launches += 1
        REC.triton_names.add(getattr(self.fn, "__name__", "kernel"))
        return original(self, *args, **kwargs)

    JITFunction.run = run


def make_op_recorder(torch):
    """A TorchFunctionMode that records the names of the torch functions a forward calls."""
    from torch.overrides import TorchFunctionMode

    class OpRecorder(TorchFunctionMode):
        names: set = set()

        def __torch_function__(self, func, types, args=(), kwargs=None):
            OpRecorder.names.add(getattr(func, "__name__", str(func)).strip("_"))
            return func(*args, **(kwargs or {}))

    return OpRecorder


def timers_snapshot(torch) -> dict:
    return {
        "time.perf_counter": time.perf_counter,
        "time.perf_counter_ns": time.perf_counter_ns,
        "time.time": time.time,
        "time.monotonic": time.monotonic,
        "torch.cuda.synchronize": torch.cuda.synchronize,
        "torch.cuda.Event": torch.cuda.Event,
        "torch.Tensor.__eq__": torch.Tensor.__eq__,
        "torch.allclose": torch.allclose,
        "torch.isclose": torch.isclose,
        "torch.equal": torch.equal,
    }


def error_text(exc: BaseException, what: str) -> str:
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return f"out of memory in {what}"
    return f"{what} raised:\n" + trim("".join(traceback.format_exception(exc)))


def serve(role: str, job: dict, channel: Channel) -> None:
    """Answer the judge's messages until it closes the pipe (see the module docstring)."""
    import torch

    device = torch.device(job["device"])
    timers = timers_snapshot(torch)
    recorder_cls = make_op_recorder(torch)
    model, module, drawn, inputs, outputs, previous = None, None, [], [], [], []
    flush = None
    while True:
        message = channel.receive()
        op = message["op"]
        if op == "ping":
            channel.send({})
        elif op == "setup" and role == "reference":
            try:
                module = load_module(
                    "kernelgym_reference", os.path.join(job["job_dir"], "reference.py"), job.get("shapes")
                )
            except BaseException as exc:  # noqa: BLE001 - a broken task file, reported as such
                channel.send({"task_error": "the module", "message": error_text(exc, "loading the task file")})
                continue
            try:
                init_inputs = list(module.get_init_inputs())
                json.dumps(init_inputs)
            except BaseException as exc:  # noqa: BLE001
                channel.send(
                    {
                        "task_error": "get_init_inputs()",
                        "message": error_text(exc, "get_init_inputs()")
                        if not isinstance(exc, TypeError)
                        else f"must return a list of JSON values (numbers, strings, lists): {exc}",
                    }
                )
                continue
            torch.manual_seed(int(job["seed"]))
            try:
                model = module.Model(*init_inputs).to(device).eval()
            except BaseException as exc:  # noqa: BLE001
                channel.send({"task_error": "Model(*get_init_inputs())", "message": error_text(exc, "Model()")})
                continue
            channel.send({"init_inputs": init_inputs})
        elif op == "setup":
            install_load_inline(torch, job, channel)
            install_triton_hook()
            threads = threading.active_count()
            start = time.perf_counter()
            try:
                sub = load_module("kernelgym_submission", os.path.join(job["job_dir"], "submission.py"))
                if not isinstance(getattr(sub, "ModelNew", None), type):
                    raise NameError("the submission defines no class ModelNew")
            except BaseException as exc:  # noqa: BLE001 - anything the submission raises is its compile error
                channel.send(
                    {
                        "error": "out of memory while loading the submission"
                        if isinstance(exc, MemoryError)
                        else trim("".join(traceback.format_exception(exc))),
                        "stage": "compile",
                    }
                )
                continue
            seconds = time.perf_counter() - start
            triton_defined = any(
                type(v).__name__ in ("JITFunction", "Autotuner", "Heuristics") for v in vars(sub).values()
            )
            torch.manual_seed(int(job["seed"]))
            try:
                model = sub.ModelNew(*message["init_inputs"]).to(device).eval()
            except BaseException as exc:  # noqa: BLE001
                channel.send({"error": error_text(exc, "ModelNew(*get_init_inputs())"), "stage": "init"})
                continue
            cuda_ext = any(c for _, c in REC.extensions)
            backend = "cuda" if cuda_ext else "triton" if triton_defined else "cpp" if REC.extensions else "torch"
            channel.send(
                {"backend": backend, "compile_seconds": seconds, "triton_defined": triton_defined, "threads": threads}
            )
        elif op == "inputs":  # reference only: this call's inputs, drawn from its seed
            torch.manual_seed(int(message["seed"]))
            try:
                drawn = module.get_inputs()
                if not isinstance(drawn, (list, tuple)):
                    raise TypeError(f"get_inputs() returned a {type(drawn).__name__}, not a list")
                items = []
                for x in drawn:
                    if isinstance(x, torch.Tensor):
                        items.append({"tensor": {**tensor_meta(torch, x.contiguous()), "ptr": None}})
                    else:
                        json.dumps(x)
                        items.append({"value": x})
            except BaseException as exc:  # noqa: BLE001
                channel.send({"task_error": "get_inputs()", "message": error_text(exc, "get_inputs()")})
                continue
            channel.send({"items": items})
            for x in drawn:
                if isinstance(x, torch.Tensor):
                    channel.send_bytes(tensor_bytes(torch, x))
        elif op == "prep" and role == "reference":  # the inputs it drew itself
            inputs = [x.clone() if isinstance(x, torch.Tensor) else x for x in drawn]
            channel.send({})
        elif op == "prep":  # allocate this call's input buffers on the CPU; the judge fills them
            inputs = []
            for item in message["items"]:
                if "tensor" in item:
                    meta = item["tensor"]
                    inputs.append(torch.empty(meta["shape"], dtype=getattr(torch, meta["dtype"])))
                else:
                    inputs.append(item["value"])
            channel.send({"inputs": [tensor_meta(torch, x) if isinstance(x, torch.Tensor) else None for x in inputs]})
        elif op == "load":  # the judge has filled the buffers: move them to the device
            inputs = [x.to(device) if isinstance(x, torch.Tensor) else x for x in inputs]
            if device.type == "cuda":
                if flush is None:
                    flush = torch.empty(
                        int(job.get("l2_flush_bytes", 256 << 20)) // 4, dtype=torch.float32, device=device
                    )
                flush.zero_()
                torch.cuda.synchronize()
            channel.send({})
        elif op == "go":
            previous = outputs  # kept alive through this call: a reused buffer shows as an overlap
            try:
                with torch.no_grad(), recorder_cls():
                    if message.get("profile") and role == "submission":
                        outputs, profiled = profile_call(torch, model, inputs, device)
                    else:
                        outputs, profiled = as_tuple(model(*inputs)), None
                if device.type == "cuda":
                    torch.cuda.synchronize()
            except BaseException as exc:  # noqa: BLE001
                outputs = []
                channel.send({"error": error_text(exc, f"{'Model' if role == 'reference' else 'ModelNew'}.forward")})
                continue
            channel.send(
                {
                    "outputs": [
                        tensor_meta(torch, o) if isinstance(o, torch.Tensor) else {"not_tensor": type(o).__name__}
                        for o in outputs
                    ],
                    "profile": profiled,
                    "previous": len(previous),
                }
            )
        elif op == "fetch":  # reference (always) and GPU outputs: the bytes, over the pipe or copied to CPU
            host = [o.detach().cpu().contiguous() for o in outputs if isinstance(o, torch.Tensor)]
            if role == "reference":
                channel.send({"outputs": [tensor_meta(torch, o) for o in host]})
                for o in host:
                    channel.send_bytes(tensor_bytes(torch, o))
            else:
                outputs = (*outputs, *host)  # keep the copies alive while the judge reads them
                channel.send({"outputs": [tensor_meta(torch, o) for o in host]})
        elif op == "compile" and role == "reference":  # the torch.compile baseline
            model = torch.compile(model)
            channel.send({})
        elif op == "finish":
            changed = [k for k, v in timers_snapshot(torch).items() if timers.get(k) is not v]
            stream = None
            if device.type == "cuda":
                stream = torch.cuda.current_stream() != torch.cuda.default_stream()
            channel.send(
                {
                    "kernel_calls": REC.calls + REC.triton_launches,
                    "extensions": REC.extensions,
                    "ops_called": sorted(recorder_cls.names),
                    "patched": changed,
                    "side_stream": stream,
                    "triton_names": sorted(REC.triton_names),
                }
            )


def profile_call(torch, model, inputs, device):
    """One forward under the profiler: the outputs and the kernel events the coverage is computed from."""
    if device.type == "cuda":
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        recorder = torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
    else:  # the legacy CPU profiler: same events, without kineto's import of torch._dynamo (seconds)
        from torch.autograd.profiler_legacy import profile as recorder_cls

        recorder = recorder_cls()
    with recorder as prof:
        outputs = as_tuple(model(*inputs))
        if device.type == "cuda":
            torch.cuda.synchronize()
    events = []
    for e in prof.key_averages():
        if device.type == "cuda":
            if str(getattr(e, "device_type", "")).endswith("CUDA") and getattr(e, "self_device_time_total", 0) > 0:
                events.append([e.key, float(e.self_device_time_total), int(e.count), "cuda"])
            elif e.key.startswith("aten::"):
                events.append([e.key, 0.0, int(e.count), "cpu"])
        elif e.self_cpu_time_total > 0 or e.key.startswith("aten::"):
            events.append([e.key, float(e.self_cpu_time_total), int(e.count), "cpu"])
    return outputs, events


def build_main(job_dir: str) -> int:
    """The trusted build step: ``load_inline`` of ``build.json``'s spec into ``job_dir/build``; no
    submission code runs here."""
    spec = json.load(open(os.path.join(job_dir, "build.json"), encoding="utf-8"))
    from torch.utils import cpp_extension

    folder = os.path.join(job_dir, "build")
    os.makedirs(folder, exist_ok=True)
    try:
        cpp_extension.load_inline(**spec, build_directory=folder, verbose=True)
    except BaseException as exc:  # noqa: BLE001 - a compile error is the result of this step
        print(trim("".join(traceback.format_exception_only(exc)), 6000), flush=True)
        return 1
    return 0
