"""Static anti-hacking checks of a KernelGym submission: what its source shows before anything runs.

:func:`static_checks` parses the submission (never imports it) and names the hacks the engine refuses
without starting the judge (:mod:`.engine`): ``try_except`` (a submission catching its own failure and
falling back to PyTorch), ``timing_patch`` (assigning to timer functions), ``thread_injection``
(threads, processes, async), ``side_stream`` (CUDA streams), ``lazy_tensor`` (tensor subclasses /
``__torch_function__``), ``reference_access`` (reaching the reference module); and one warning,
``precision_downgrade`` (half precision in the source). Threads, streams and timer patches that the
source hides are looked for again at run time by the judge (see :mod:`.engine`).
"""

from __future__ import annotations

import ast
import re

#: Timer and comparison names a submission must not assign to.
TIMING_NAMES = {
    "perf_counter",
    "perf_counter_ns",
    "time",
    "monotonic",
    "Event",
    "elapsed_time",
    "synchronize",
    "allclose",
    "isclose",
    "equal",
    "__eq__",
}
#: Modules that start threads, processes or event loops.
THREAD_MODULES = {"threading", "multiprocessing", "concurrent", "asyncio", "_thread", "subprocess"}
#: CUDA stream use (timed work moved off the measured stream).
STREAM_PATTERN = re.compile(r"\b(cuda\.Stream|cuda\.stream|ExternalStream|set_stream|Stream\s*\()")


def static_checks(source: str) -> tuple[list[str], list[str]]:
    """``(hacks, warnings)`` found in the submission's source without running it."""
    hacks, warnings = set(), set()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return [], []  # the worker reports the syntax error as a compile failure
    for node in ast.walk(tree):
        if isinstance(node, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            hacks.add("try_except")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names]
            if isinstance(node, ast.ImportFrom) and node.module:
                names.append(node.module)
            if any(n.split(".")[0] in THREAD_MODULES for n in names):
                hacks.add("thread_injection")
            if any("kernelgym_reference" in n or n.split(".")[0] == "reference" for n in names):
                hacks.add("reference_access")
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and target.attr in TIMING_NAMES:
                    hacks.add("timing_patch")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if (
                name == "setattr"
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and node.args[1].value in TIMING_NAMES
            ):
                hacks.add("timing_patch")
            if name in ("fork", "Thread", "Process", "start_new_thread"):
                hacks.add("thread_injection")
            if (
                name in ("__import__", "import_module")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and str(node.args[0].value).split(".")[0] in THREAD_MODULES
            ):
                hacks.add("thread_injection")
        elif isinstance(node, ast.ClassDef):
            for base in node.bases:
                if isinstance(base, ast.Attribute) and base.attr in (
                    "Tensor",
                    "TorchFunctionMode",
                    "TorchDispatchMode",
                ):
                    hacks.add("lazy_tensor")
        elif isinstance(node, ast.FunctionDef) and node.name in ("__torch_function__", "__torch_dispatch__"):
            hacks.add("lazy_tensor")
        elif isinstance(node, ast.Name) and node.id == "kernelgym_reference":
            hacks.add("reference_access")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "kernelgym_reference" in node.value:
            hacks.add("reference_access")
    if STREAM_PATTERN.search(source):
        hacks.add("side_stream")
    if re.search(r"\.(half|bfloat16)\s*\(|float16|bfloat16", source):
        warnings.add("precision_downgrade")
    return sorted(hacks), sorted(warnings)
