"""Environment families, one folder each (imported as ``agentgym.envs.<family>``)."""
