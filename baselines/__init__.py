"""Agents, advantage estimators and training scripts (imported as ``agentgym.baselines``).

:mod:`agentgym.baselines.estimators` holds the advantage estimators (GRPO, RLOO, TRLOO, GiGPO, EMPG, GDPO,
RLVMR, OPRL, IGPO, KernelGYM's profiling-based rejection filter); :mod:`agentgym.baselines.tokens` broadcasts
per-turn advantages to tokens.
"""
