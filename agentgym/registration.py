"""Registration of the ``agentgym/<Family>-v<N>`` ids with Gymnasium.

Entry points are strings, so ``import agentgym`` stays free of engine imports: an engine package is
imported only when its env is made. Bump a family's version whenever its reward, observation text or
termination changes, so leaderboard rows stay comparable.
"""

from __future__ import annotations

import gymnasium as gym

NAMESPACE = "agentgym"

#: Family name -> (version, entry point). Add a family here when its folder under ``envs/`` lands.
FAMILIES: dict[str, tuple[int, str]] = {
    "TextWorld": (0, "agentgym.envs.textworld:TextWorldEnv"),
    "ScienceWorld": (0, "agentgym.envs.scienceworld:ScienceWorldEnv"),
    "ALFWorld": (0, "agentgym.envs.alfworld:ALFWorldEnv"),
    "Negotiation": (0, "agentgym.envs.multiagent:NegotiationEnv"),
    "InstructorExecutor": (0, "agentgym.envs.multiagent:InstructorExecutorEnv"),
    "WebShop": (0, "agentgym.envs.webshop:WebShopEnv"),
    "SWEGym": (0, "agentgym.envs.swegym:SWEGymEnv"),
    "KernelGym": (0, "agentgym.envs.kernelgym:KernelGymEnv"),
}


def env_id(family: str) -> str:
    version, _ = FAMILIES[family]
    return f"{NAMESPACE}/{family}-v{version}"


def register_envs() -> None:
    """Register every family once (idempotent).

    Gymnasium's passive env checker is off: it reads every ``info`` value of the first steps, which
    would compute the values families defer until read (ScienceWorld's admissible actions), and
    :func:`agentgym.testing.check_env` checks the same and more.
    """
    for family, (_, entry_point) in FAMILIES.items():
        if env_id(family) not in gym.registry:
            gym.register(id=env_id(family), entry_point=entry_point, disable_env_checker=True)


def registered_ids() -> list[str]:
    """All agentgym env ids, sorted."""
    return sorted(key for key in gym.registry if key.startswith(f"{NAMESPACE}/"))
