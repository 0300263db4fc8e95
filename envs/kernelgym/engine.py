"""KernelGym's engine adapter: one submission evaluated by the judge in a sandbox, seen from the host.

:class:`Evaluator` writes the reference, the submission and a job description into a fresh folder,
runs the judge (:mod:`.worker`, which forks the reference and submission runners, :mod:`.runner`) there
in :class:`agentgym.sandbox.Sandbox` (bubblewrap: no network, read-only system, CPU/memory/process
limits and a wall-clock timeout) and reads back the judge's JSON line. The build cache is mounted
read-only; sources it lacks are built by a trusted build step (:meth:`Evaluator._build`) and the
judge runs again. A task whose own code fails raises :class:`~agentgym.error.TaskFileError`. A submission
that crashes, hangs or runs out of memory kills only its worker: the result says what happened.
Where bubblewrap cannot run (a GPU machine without it), ``isolation="process"`` runs the worker as a
plain subprocess with the same rlimits and timeout (both in :mod:`.launch`). ``torch.compile`` baseline
timings are cached by :mod:`.compile_baselines`.

Anti-hacking checks (names as they appear in ``EvalResult.hacks``; any of them voids the turn):

* static, before anything runs (:func:`.static.static_checks`): ``try_except`` (a submission catching its own
  failure and falling back to PyTorch), ``timing_patch`` (assigning to timer functions),
  ``thread_injection`` (threads, processes, async), ``side_stream`` (CUDA streams), ``lazy_tensor``
  (tensor subclasses / ``__torch_function__``), ``reference_access`` (reaching the reference module);
* at run time, in the worker: ``calls_reference_op`` (the task's own high-level op, seen by a
  ``TorchFunctionMode`` during ``forward`` or as its ``aten::`` op in the profiler, so also from C++),
  ``calls_reference_model``, ``decoy_kernel`` (a kernel was built but never launched),
  ``no_custom_kernel`` (plain PyTorch where the task or env allows kernels only), ``mutates_inputs``,
  ``output_aliases_input``, ``reuses_output_buffer`` / ``overwrites_previous_output`` (caching or
  aliasing outputs across calls), ``thread_injection`` (threads left running), ``side_stream`` (the
  current CUDA stream changed), ``timing_patched`` (timer or comparison functions replaced),
  ``backend_not_allowed``; found by the judge from outside the submission's process:
  ``thread_injection`` (threads appeared during a call), ``spawned_process`` (a helper process),
  ``output_unreadable`` (outputs not in the submission's readable memory), ``protocol_violation``.
* ``review``: a speedup above ``speedup_bound`` (default 10x, KernelBench's) is flagged for review in
  the result, not penalised.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agentgym.cache import cache_root
from agentgym.envs.kernelgym import buildcache, compile_baselines, launch
from agentgym.envs.kernelgym.static import static_checks
from agentgym.error import InvalidArgumentError, TaskFileError
from agentgym.sandbox import Limits, available

WORKER = Path(__file__).with_name("worker.py")
#: The files of the judge and its runners, copied into every job folder (standard library and torch only).
JUDGE_FILES = ("worker.py", "judge.py", "runner.py", "buildcache.py")
#: Bump when the evaluation protocol changes (keys the torch.compile baseline cache too).
PROTOCOL_VERSION = 2
#: The runners' private build and Triton folders inside the sandbox (its own tmpfs).
PRIVATE_DIR = "/tmp/kernelgym-private"
#: The judge's result line (only the judge holds the sandbox's stdout).
RESULT_MARKER = "KERNELGYM-RESULT "
#: Trusted builds per evaluation (one per distinct ``load_inline`` call).
MAX_BUILDS = 4
#: What each part of a task file must do, for the error when it does not.
TASK_EXPECTATIONS = {
    "the module": "the task file to import without error",
    "get_init_inputs()": "a list of JSON values (numbers, strings, lists) for Model(*get_init_inputs())",
    "Model(*get_init_inputs())": "Model to be constructible from get_init_inputs()",
    "get_inputs()": "a list of tensors (and plain values) built without error",
    "Model.forward": "Model.forward(*get_inputs()) to run without error",
}
#: Worker result fields kept in ``EvalResult.details``.
DETAIL_KEYS = (
    "ops_called",
    "forbidden_ops_called",
    "forbidden_aten_ops",
    "patched",
    "profiled_kernels",
    "ref_stats",
    "new_stats",
    "compile_seconds",
    "stage_seconds",
)
#: Host variables the worker sees (CUDA toolchain settings).
PASS_THROUGH = ("TORCH_CUDA_ARCH_LIST", "CUDA_HOME", "CUDA_PATH", "CUDA_VISIBLE_DEVICES", "CXX", "CC")


def compile_cache_dir() -> Path:
    """The shared ``load_inline`` build cache (one folder per source hash)."""
    return cache_root() / "kernelgym" / "extensions"


@dataclasses.dataclass
class EvalResult:
    """What one evaluation found (the worker's JSON plus what the parent saw)."""

    compiled: bool
    correct: bool
    hacks: list[str]
    warnings: list[str]
    error: str | None
    backend: str
    runtime_ms: float | None = None
    ref_runtime_ms: float | None = None
    compile_ref_runtime_ms: float | None = None
    speedup: float | None = None
    speedup_vs_compile: float | None = None
    time_coverage: float | None = None
    num_coverage: float | None = None
    review: bool = False
    crashed: str | None = None
    stage: str | None = None
    trials: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    duration: float = 0.0
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def valid(self) -> bool:
        """Correct and free of anti-hacking flags."""
        return self.compiled and self.correct and not self.hacks


class Evaluator:
    """Evaluate submissions against reference modules (KernelBench's protocol, KernelGYM's checks).

    Args:
        device: ``"cpu"`` or ``"cuda"``.
        correct_trials: correctness trials on fresh random inputs (all must pass).
        perf_trials: timed runs per model (median reported); 0 skips timing.
        warmup: untimed runs before timing.
        compile_baseline: also time ``torch.compile(reference)`` (slow on CPU; the result is cached
            per task, shapes, device and torch version under the agentgym cache).
        profile: run the profiler for the coverage reward.
        timeout: wall-clock seconds of one evaluation (compile included).
        memory_bytes: address-space limit of the worker on CPU (not applied on GPU, where CUDA reserves
            huge virtual ranges).
        speedup_bound: speedups above this are flagged for review.
        isolation: ``"auto"`` (bubblewrap when it works here, else a plain process), ``"bwrap"`` or
            ``"process"``.
    """

    def __init__(
        self,
        *,
        device: str = "cpu",
        correct_trials: int = 5,
        perf_trials: int = 50,
        warmup: int = 3,
        compile_baseline: bool = False,
        profile: bool = True,
        timeout: float = 300.0,
        memory_bytes: int = 4 << 30,
        speedup_bound: float = 10.0,
        isolation: str = "auto",
    ):
        if device not in ("cpu", "cuda"):
            raise InvalidArgumentError(f"device must be 'cpu' or 'cuda', got {device!r}")
        if isolation not in ("auto", "bwrap", "process"):
            raise InvalidArgumentError(f"isolation must be 'auto', 'bwrap' or 'process', got {isolation!r}")
        for name, value, low in (
            ("correct_trials", correct_trials, 1),
            ("perf_trials", perf_trials, 0),
            ("warmup", warmup, 0),
        ):
            if not isinstance(value, int) or value < low:
                raise InvalidArgumentError(f"{name} must be an int >= {low}, got {value!r}")
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise InvalidArgumentError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.device, self.correct_trials = device, correct_trials
        self.perf_trials, self.warmup = perf_trials, warmup
        self.compile_baseline, self.profile, self.timeout = compile_baseline, profile, float(timeout)
        self.memory_bytes, self.speedup_bound = int(memory_bytes), float(speedup_bound)
        if isolation == "auto":
            isolation = "bwrap" if available() else "process"
        self.isolation = isolation
        self.limits = Limits(
            wall_seconds=self.timeout,
            cpu_seconds=int(self.timeout) + 5,
            memory_bytes=self.memory_bytes if device == "cpu" else 1 << 46,
            processes=256,
            file_bytes=512 << 20,
            tmpfs_bytes=1 << 30,
            output_bytes=1 << 20,
        )

    # ----------------------------------------------------------------- public
    def evaluate(self, task: Any, submission: str, *, seed: int = 42) -> EvalResult:
        """Evaluate ``submission`` (source defining ``ModelNew``) on ``task`` (a :class:`~.tasks.KernelTask`)."""
        start = time.monotonic()
        hacks, warnings = static_checks(submission)
        if hacks:
            return EvalResult(
                compiled=False,
                correct=False,
                hacks=hacks,
                warnings=warnings,
                stage="static",
                error="the submission was refused by the static checks: " + ", ".join(hacks),
                backend="unknown",
                duration=time.monotonic() - start,
            )
        baseline_key = compile_baselines.key(PROTOCOL_VERSION, task, self.device, self.perf_trials)
        compile_ms = compile_baselines.cached(baseline_key) if self.compile_baseline else None
        job = {
            "device": self.device,
            "shapes": task.shapes(self.device),
            "correct_trials": self.correct_trials,
            "perf_trials": self.perf_trials,
            "warmup": self.warmup,
            "seed": seed,
            "atol": task.atol,
            "rtol": task.rtol,
            "forbidden": list(task.forbidden),
            "allowed_backends": list(task.backends),
            "compile_baseline": self.compile_baseline,
            "compile_ref_ms": compile_ms,
            "profile": self.profile,
        }
        raw, crashed, proc = self._run(task, submission, job)
        if raw is not None and raw.get("task_error"):
            problem = raw["task_error"]
            raise TaskFileError(
                f"{task.path}: {problem.get('field')} of the task failed in the evaluation (expected "
                f"{TASK_EXPECTATIONS.get(problem.get('field'), 'to run without error')}): "
                f"{problem.get('message')}"
            )
        result = self._result(raw, crashed, proc, warnings)
        if raw is not None and raw.get("compile_ref_ms") is not None and compile_ms is None:
            compile_ms = float(raw["compile_ref_ms"])
            compile_baselines.store(baseline_key, compile_ms)
        result.compile_ref_runtime_ms = compile_ms
        if result.runtime_ms and compile_ms:
            result.speedup_vs_compile = compile_ms / result.runtime_ms
        result.duration = time.monotonic() - start
        return result

    @property
    def protocol(self) -> str:
        """The protocol key (device, isolation, trials, timing) recorded in the env's engine_version."""
        timing = "judge-clock device-sync+l2flush" if self.device == "cuda" else "judge-clock 1 thread"
        return (
            f"kernelgym-protocol-v{PROTOCOL_VERSION} device={self.device} isolation={self.isolation} "
            f"correct_trials={self.correct_trials} perf_trials={self.perf_trials} timing={timing} median"
        )

    # ----------------------------------------------------------------- worker
    def _run(self, task: Any, submission: str, job: dict) -> tuple[dict | None, str | None, Any]:
        """The judge in the sandbox; when it asks for a build of sources the cache lacks, the trusted
        build step runs and the judge runs again (at most :data:`MAX_BUILDS` builds)."""
        built: set[str] = set()
        while True:
            raw, crashed, proc = self._run_once(task.source, submission, job)
            request = (raw or {}).get("need_build")
            if not request:
                return raw, crashed, proc
            spec = request.get("spec") if isinstance(request, dict) else None
            try:
                spec = (
                    buildcache.make_spec(spec) if isinstance(spec, dict) and isinstance(spec.get("name"), str) else None
                )
            except buildcache.CacheError as exc:
                return {"compiled": False, "error": str(exc), "stage": "compile"}, None, proc
            if spec is None:
                return (
                    {"compiled": False, "error": "load_inline needs a name and sources", "stage": "compile"},
                    None,
                    proc,
                )
            key = buildcache.extension_key(spec, _torch_version(), self.device)
            if key in built or len(built) >= MAX_BUILDS:
                why = (
                    "the load_inline sources change from run to run"
                    if key in built
                    else f"more than {MAX_BUILDS} load_inline builds"
                )
                return (
                    {"compiled": False, "error": f"cannot cache the extension: {why}", "stage": "compile"},
                    None,
                    proc,
                )
            built.add(key)
            self._build(spec, key)

    def _job_folder(self, tmp: str) -> Path:
        folder = Path(tmp)
        for name in JUDGE_FILES:
            shutil.copy(WORKER.with_name(name), folder / name)
        return folder

    def _env(self, private: str) -> dict:
        env = {
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "MAX_JOBS": "2",
            "PYTHONDONTWRITEBYTECODE": "1",
            "TORCH_EXTENSIONS_DIR": private + "/torch_extensions",
            "TRITON_CACHE_DIR": private + "/triton",
            "PATH": f"{os.path.dirname(sys.executable)}:/usr/local/cuda/bin:/usr/local/bin:/usr/bin:/bin",
        }
        env.update({k: os.environ[k] for k in PASS_THROUGH if k in os.environ})
        return env

    def _launch(self, folder: Path, argv_tail: list[str], env: dict, cache: Path) -> Any:
        """``python worker.py JOB_DIR ...`` in the sandbox (the build cache mounted read-only)."""
        return launch.launch_worker(
            folder, argv_tail, env, limits=self.limits, isolation=self.isolation, cache=cache, gpu=self.device == "cuda"
        )

    def _run_once(self, reference: str, submission: str, job: dict) -> tuple[dict | None, str | None, Any]:
        cache = compile_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="kernelgym-job-") as tmp:
            folder = self._job_folder(tmp)
            (folder / "reference.py").write_text(reference, encoding="utf-8")
            (folder / "submission.py").write_text(submission, encoding="utf-8", errors="surrogateescape")
            private = PRIVATE_DIR if self.isolation == "bwrap" else str(folder / "private")
            (folder / "job.json").write_text(
                json.dumps(
                    {
                        **job,
                        "cache_dir": str(cache),
                        "private_dir": private,
                        "isolation": self.isolation,
                        "timeout": self.timeout,
                    }
                )
            )
            proc = self._launch(folder, [], self._env(private), cache)
        lines = [line for line in proc.output.splitlines() if line.startswith(RESULT_MARKER)]
        if lines:
            try:
                return json.loads(lines[-1][len(RESULT_MARKER) :]), None, proc
            except json.JSONDecodeError:
                pass
        stages = [line.split(" ", 1)[1] for line in proc.output.splitlines() if line.startswith("KERNELGYM-STAGE ")]
        where = stages[-1] if stages else "startup"
        if proc.timed_out:
            why = f"timed out after {self.timeout:g} s during {where}"
        elif proc.killed:
            why = f"{proc.killed} during {where}"
        else:
            why = f"the judge exited with code {proc.returncode} during {where} without a result"
        tail = "\n".join(line for line in proc.output.splitlines()[-30:] if not line.startswith("KERNELGYM-"))
        return {"stage": where, "output_tail": tail[-2000:]}, why, proc

    def _build(self, spec: dict, key: str) -> None:
        """The trusted build step: our code only (no submission) compiles ``spec`` in its own sandbox;
        the host hashes the library and stores it in the cache (:func:`buildcache.store`)."""
        cache = compile_cache_dir()
        with tempfile.TemporaryDirectory(prefix="kernelgym-build-") as tmp:
            folder = self._job_folder(tmp)
            (folder / "build.json").write_text(json.dumps(spec))
            private = PRIVATE_DIR if self.isolation == "bwrap" else str(folder / "private")
            proc = self._launch(folder, ["build"], self._env(private), cache)
            log = proc.output if not proc.killed else f"the build was stopped: {proc.killed}\n{proc.output}"
            buildcache.store(str(cache), key, spec, str(folder / "build"), log)

    def _result(self, raw: dict | None, crashed: str | None, proc: Any, warnings: list[str]) -> EvalResult:
        raw = raw or {}
        if crashed is None and raw.get("crashed"):
            crashed = str(raw["crashed"])
            raw = {**raw, "output_tail": raw.get("error") or ""}
        if crashed is not None:
            tail = raw.get("output_tail") or ""
            return EvalResult(
                compiled=raw.get("stage") not in ("startup", "setup", "reference", "compile"),
                correct=False,
                hacks=[],
                warnings=warnings,
                backend="unknown",
                crashed=crashed,
                error=f"{crashed}" + (f"\n{tail}" if tail.strip() else ""),
                stage=raw.get("stage"),
            )
        speedup = None
        if raw.get("new_ms") and raw.get("ref_ms"):
            speedup = raw["ref_ms"] / max(raw["new_ms"], 1e-9)
        result = EvalResult(
            compiled=bool(raw.get("compiled")),
            correct=bool(raw.get("correct")),
            hacks=list(raw.get("hacks", [])),
            warnings=sorted(set(warnings) | set(raw.get("warnings", []))),
            error=raw.get("error"),
            backend=str(raw.get("backend", "unknown")),
            runtime_ms=raw.get("new_ms"),
            ref_runtime_ms=raw.get("ref_ms"),
            speedup=speedup,
            time_coverage=raw.get("time_coverage"),
            num_coverage=raw.get("num_coverage"),
            stage=raw.get("stage"),
            trials=list(raw.get("trials", [])),
            details={k: raw[k] for k in DETAIL_KEYS if k in raw},
        )
        result.review = speedup is not None and speedup > self.speedup_bound
        return result


def _torch_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("torch")
