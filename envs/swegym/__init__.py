"""agentgym/SWEGym-v0: SWE-Gym-style repository bug fixing in a bubblewrap sandbox (see :mod:`.env`)."""

from agentgym.extras import needs

with needs("swegym"):  # one line naming the extra when it is missing
    from agentgym.envs.swegym.env import SWEGymEnv

__all__ = ["SWEGymEnv"]
