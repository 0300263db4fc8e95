"""Wrappers, among them the turn-level reward hooks (imported as ``agentgym.wrappers``)."""
