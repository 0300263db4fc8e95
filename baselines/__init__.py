"""Agents, advantage estimators and training scripts (imported as ``agentgym.baselines``)."""
