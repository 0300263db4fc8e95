"""KernelGym's step observation: one evaluation (:class:`~.engine.EvalResult`) as text for the agent.

What a kernel writer needs to fix the next attempt, in a fixed order: anti-hacking rejections (with the
forbidden ops seen), a crash, the compile error, correctness (the first failing trial's mismatch
statistics and first wrong element), runtimes and speedups, profiling coverage, warnings, and the reward.
"""

from __future__ import annotations

from agentgym.envs.kernelgym.engine import EvalResult


def feedback(result: EvalResult, reward: float, device: str) -> str:
    """The evaluation as text for the agent."""
    lines = [f"Evaluation on {device} (backend detected: {result.backend}):"]
    if result.hacks:
        lines.append(f"- REJECTED by the anti-hacking checks: {', '.join(result.hacks)}.")
        if result.details.get("forbidden_ops_called") or result.details.get("forbidden_aten_ops"):
            ops = result.details.get("forbidden_ops_called") or result.details.get("forbidden_aten_ops")
            lines.append(f"  forbidden ops called: {', '.join(ops)}")
    if result.crashed:
        lines.append(f"- the evaluation crashed: {result.crashed}.")
    if not result.compiled:
        lines.append("- compiled: NO")
        if result.error and not result.crashed:
            lines.append(result.error.strip())
    else:
        lines.append("- compiled: yes")
        done = [t for t in result.trials]
        passed = sum(1 for t in done if t.get("ok"))
        if result.correct:
            worst = max((t.get("max_abs_diff", 0.0) for t in done), default=0.0)
            lines.append(f"- correctness: PASS ({passed}/{len(done)} trials, max |diff| {worst:.3g})")
        elif done and not done[-1].get("ok"):
            bad = done[-1]
            text = f"- correctness: FAIL at trial {len(done)} ({passed} passed before): {bad.get('problem')}"
            if bad.get("numel"):
                text += (
                    f"; {bad['mismatched']}/{bad['numel']} elements mismatched, max |diff| "
                    f"{bad['max_abs_diff']:.3g}, mean |diff| {bad['mean_abs_diff']:.3g}"
                )
                if bad.get("first_mismatch"):
                    first = bad["first_mismatch"]
                    text += (
                        f"; first at index {tuple(first['index'])}: expected {first['expected']:.6g}, "
                        f"got {first['got']:.6g}"
                    )
            lines.append(text)
        elif result.error and not result.crashed:
            lines.append("- correctness: FAIL (the submission raised)\n" + result.error.strip())
    if result.speedup is not None:
        text = (
            f"- runtime: {result.runtime_ms:.4g} ms vs eager PyTorch {result.ref_runtime_ms:.4g} ms -> "
            f"speedup {result.speedup:.3g}x"
        )
        if result.speedup_vs_compile is not None:
            text += f" (torch.compile {result.compile_ref_runtime_ms:.4g} ms -> {result.speedup_vs_compile:.3g}x)"
        lines.append(text)
    if result.review:
        lines.append("- the speedup is beyond the sanity bound: flagged for review.")
    if result.time_coverage is not None and result.valid:
        lines.append(f"- profiling: {100 * result.time_coverage:.0f}% of the time is in your own kernels")
    if result.warnings:
        lines.append(f"- warnings: {', '.join(result.warnings)}")
    lines.append(f"Reward: {reward:.3g}")
    return "\n".join(lines)
