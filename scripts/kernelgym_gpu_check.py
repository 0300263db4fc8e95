"""One short GPU check of agentgym/KernelGym-v0's Triton and CUDA paths (run it on a machine with a GPU).

    python scripts/kernelgym_gpu_check.py [--task level1/relu] [--perf-trials 20] [--json out.json]

It evaluates, on ``level1/relu`` with its GPU shapes (4096 x 65536 fp32), through the same
:class:`~agentgym.envs.kernelgym.engine.Evaluator` the env uses (sandboxed worker, CUDA events, the
device synchronized and a 256 MB L2 flush before every call, each call timed by the judge from
outside the submission's process and its outputs checked there, eager and ``torch.compile`` baselines,
profiler coverage; a ``load_inline`` CUDA source is built by the trusted build step, then loaded from
the read-only cache):

1. the task's expert (a plain PyTorch rewrite): correct, backend ``torch``;
2. a Triton kernel: correct, backend ``triton``, its kernel found in the profiler (time coverage > 0);
3. a CUDA kernel through ``load_inline(cuda_sources=...)``: correct, backend ``cuda`` (compiles once,
   ~30 s; set ``TORCH_CUDA_ARCH_LIST`` to the card's capability, e.g. ``9.0``, to compile for it only);
4. a Triton decoy (a kernel defined, never launched): flagged ``decoy_kernel``;
5. a submission on a side stream: refused by the static check ``side_stream``.

It prints one line per case and a verdict, and exits 1 if a case does not behave as expected. Without
CUDA it prints why and exits 0, so it is safe to run anywhere. Expected wall time on an H100: about a
minute (the CUDA compile dominates), well inside one 10-minute call.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

TRITON_RELU = """
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    x = tl.load(x_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, tl.maximum(x, 0.0), mask=mask)


class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        out = torch.empty_like(x)
        n = x.numel()
        relu_kernel[(triton.cdiv(n, 4096),)](x, out, n, BLOCK=4096)
        return out
"""

CUDA_RELU = r'''
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CUDA_SOURCE = """
#include <torch/extension.h>
#include <cuda_runtime.h>

__global__ void kernelgym_relu_kernel(const float* x, float* out, long n) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = x[i] > 0.f ? x[i] : 0.f;
}

torch::Tensor relu_cuda(torch::Tensor x) {
    auto input = x.contiguous();
    auto out = torch::empty_like(input);
    long n = input.numel();
    int threads = 256;
    long blocks = (n + threads - 1) / threads;
    kernelgym_relu_kernel<<<blocks, threads>>>(input.data_ptr<float>(), out.data_ptr<float>(), n);
    return out;
}
"""
CPP_SOURCE = "torch::Tensor relu_cuda(torch::Tensor x);"

_ext = load_inline(name="kernelgym_relu_cuda", cpp_sources=CPP_SOURCE, cuda_sources=CUDA_SOURCE,
                   functions=["relu_cuda"], verbose=False)


class ModelNew(nn.Module):
    def forward(self, x):
        return _ext.relu_cuda(x)
'''

TRITON_DECOY = TRITON_RELU.replace(
    "        relu_kernel[(triton.cdiv(n, 4096),)](x, out, n, BLOCK=4096)\n        return out",
    "        return x.clamp_min(0.0)",
)

SIDE_STREAM = """
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        with torch.cuda.stream(torch.cuda.Stream()):
            return x.clamp_min(0.0)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="level1/relu")
    # every call's inputs and outputs cross process boundaries through host memory (1 GB each at the
    # GPU shapes of level1/relu), so keep the call count small enough for one 10-minute run
    parser.add_argument("--perf-trials", type=int, default=20)
    parser.add_argument("--correct-trials", type=int, default=5)
    parser.add_argument("--no-compile-baseline", action="store_true")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()

    try:
        import torch
    except ImportError:
        print("KernelGym GPU check: torch is not installed: skipped")
        return 0
    if not torch.cuda.is_available():
        print(f"KernelGym GPU check: no CUDA device (torch {torch.__version__}): skipped")
        return 0
    from agentgym.envs.kernelgym import Evaluator, load_tasks

    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    print(
        f"KernelGym GPU check on {torch.cuda.get_device_name(0)}: torch {torch.__version__}, "
        f"triton {triton_version}, CUDA {torch.version.cuda}"
    )
    task = next(t for t in load_tasks() if t.task_id == args.task)
    evaluator = Evaluator(
        device="cuda",
        correct_trials=args.correct_trials,
        perf_trials=args.perf_trials,
        compile_baseline=not args.no_compile_baseline,
        timeout=400.0,
    )
    print(f"protocol: {evaluator.protocol}; shapes {task.shapes('cuda')}")
    cases = [("expert (torch rewrite)", task.expert, lambda r: r.valid and r.backend == "torch")]
    if triton_version:
        cases += [
            ("triton kernel", TRITON_RELU, lambda r: r.valid and r.backend == "triton" and (r.time_coverage or 0) > 0),
            ("triton decoy", TRITON_DECOY, lambda r: "decoy_kernel" in r.hacks),
        ]
    cases += [
        ("cuda load_inline kernel", CUDA_RELU, lambda r: r.valid and r.backend == "cuda"),
        ("side stream", SIDE_STREAM, lambda r: "side_stream" in r.hacks),
    ]
    rows, failed = [], 0
    for name, code, expect in cases:
        start = time.monotonic()
        result = evaluator.evaluate(task, code)
        ok = bool(expect(result))
        failed += not ok
        row = {
            "case": name,
            "as_expected": ok,
            "valid": result.valid,
            "backend": result.backend,
            "hacks": result.hacks,
            "runtime_ms": result.runtime_ms,
            "eager_ms": result.ref_runtime_ms,
            "compile_ms": result.compile_ref_runtime_ms,
            "speedup": result.speedup,
            "speedup_vs_compile": result.speedup_vs_compile,
            "time_coverage": result.time_coverage,
            "seconds": round(time.monotonic() - start, 1),
            "error": (result.error or "")[-400:] or None,
            "kernels": result.details.get("profiled_kernels", [])[:4],
        }
        rows.append(row)
        print(json.dumps(row, default=str))
    print(f"KernelGym GPU check: {len(cases) - failed}/{len(cases)} cases as expected")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1, default=str)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
