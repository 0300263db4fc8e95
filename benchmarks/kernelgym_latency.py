"""KernelGym evaluation latency (cold vs warm compile cache) and timing noise, measured in one run.

    OMP_NUM_THREADS=1 python benchmarks/kernelgym_latency.py [--repeats 5] [--perf-trials 50]

1. **Latency per submission** (wall seconds of ``Evaluator.evaluate``: sandbox start, torch import,
   compile/load, correctness trials, timing, profiling) for
   a plain PyTorch rewrite (``level1/softmax`` expert), a ``load_inline`` C++ kernel with a *cold*
   compile cache (a fresh ``$AGENTGYM_CACHE``), the same kernel with the cache *warm*, and the static
   rejection of a planted hack (no worker started). Also the same rewrite without profiling and
   without timing, to show what each phase costs.
2. **Timing noise**: the same kernel (the C++ ReLU, warm cache) evaluated ``--repeats`` times; the spread
   of its median runtime and of the speedup across evaluations (min, median, max, coefficient of
   variation), and within one evaluation (the per-run spread behind one median).

Ratios are printed (warm/cold, rewrite/static); numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--perf-trials", type=int, default=50)
    args = parser.parse_args()
    from agentgym.envs.kernelgym import Evaluator, load_tasks
    from agentgym.sandbox import available

    tasks = {t.task_id: t for t in load_tasks()}
    relu, softmax = tasks["level1/relu"], tasks["level1/softmax"]
    ev = Evaluator(device="cpu", perf_trials=args.perf_trials)
    print(
        f"KernelGym latency on CPU ({os.cpu_count()} cores, isolation={ev.isolation}, bwrap={available()}); "
        f"protocol: {ev.protocol}"
    )

    def timed(label, evaluator, task, code):
        start = time.monotonic()
        result = evaluator.evaluate(task, code)
        seconds = time.monotonic() - start
        print(
            f"  {label:<44} {seconds:6.2f} s  valid={result.valid} backend={result.backend} "
            f"speedup={result.speedup if result.speedup is None else round(result.speedup, 3)} "
            f"coverage={result.time_coverage if result.time_coverage is None else round(result.time_coverage, 3)}"
        )
        return seconds, result

    print("1. latency per submission")
    hack = "import time\ntime.perf_counter = lambda: 0.0\nclass ModelNew: pass\n"
    static_s, _ = timed("static rejection (planted timing patch)", ev, relu, hack)
    rewrite_s, rewrite = timed("plain PyTorch rewrite (softmax expert)", ev, softmax, softmax.expert)
    print(f"    worker phases (seconds since start): {rewrite.details.get('stage_seconds')}")
    no_prof_s, _ = timed(
        "  same, profile=False",
        Evaluator(device="cpu", perf_trials=args.perf_trials, profile=False),
        softmax,
        softmax.expert,
    )
    no_time_s, _ = timed(
        "  same, profile=False, perf_trials=0",
        Evaluator(device="cpu", perf_trials=0, profile=False),
        softmax,
        softmax.expert,
    )
    saved = os.environ.get("AGENTGYM_CACHE")
    with tempfile.TemporaryDirectory(prefix="kernelgym-bench-cache-") as fresh:
        os.environ["AGENTGYM_CACHE"] = fresh
        try:
            cold_s, _ = timed("load_inline C++ ReLU, cold compile cache", ev, relu, relu.expert)
            warm_s, _ = timed("load_inline C++ ReLU, warm compile cache", ev, relu, relu.expert)
            print("2. timing noise: the C++ ReLU (warm cache) evaluated repeatedly")
            medians, speedups, inner = [], [], []
            for _ in range(args.repeats):
                result = ev.evaluate(relu, relu.expert)
                medians.append(result.runtime_ms)
                speedups.append(result.speedup)
                stats = result.details.get("new_stats") or {}
                if stats.get("median"):
                    inner.append(
                        (
                            (stats["p90"] - stats["p10"]) / stats["median"],
                            (stats["max"] - stats["min"]) / stats["median"],
                        )
                    )
        finally:
            if saved is None:
                os.environ.pop("AGENTGYM_CACHE", None)
            else:
                os.environ["AGENTGYM_CACHE"] = saved

    def spread(values):
        mean = statistics.mean(values)
        cv = statistics.pstdev(values) / mean if mean else float("nan")
        return (
            f"min {min(values):.4g}  median {statistics.median(values):.4g}  max {max(values):.4g}  CV {100 * cv:.1f}%"
        )

    print(f"  median runtime (ms) over {args.repeats} evaluations: {spread(medians)}")
    print(f"  speedup vs eager over {args.repeats} evaluations:   {spread(speedups)}")
    if inner:
        print(
            f"  within one evaluation ({args.perf_trials} runs), median over evaluations: (p90 - p10) / median "
            f"{statistics.median(i for i, _ in inner):.2f}, (max - min) / median {statistics.median(o for _, o in inner):.2f}"
        )
    print("ratios")
    print(f"  cold / warm compile cache: {cold_s / warm_s:.1f}x  ({cold_s:.1f} s vs {warm_s:.1f} s)")
    print(f"  rewrite / static rejection: {rewrite_s / max(static_s, 1e-6):.0f}x")
    print(
        f"  rewrite with / without profiling and timing: {rewrite_s / no_time_s:.2f}x "
        f"(profiling off only: {no_prof_s / no_time_s:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
