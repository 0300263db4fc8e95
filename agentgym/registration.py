"""Registration of the ``agentgym/<Family>-v<N>`` ids with Gymnasium.

Entry points are strings, so ``import agentgym`` stays free of engine imports: an engine package is
imported only when its env is made. Bump a family's version whenever its reward, observation text or
termination changes, so leaderboard rows stay comparable.
"""

from __future__ import annotations

import difflib

import gymnasium as gym

from agentgym.error import InvalidArgumentError

NAMESPACE = "agentgym"

#: Family name -> (version, entry point). Add a family here when its folder under ``envs/`` lands.
FAMILIES: dict[str, tuple[int, str]] = {
    "TextWorld": (0, "agentgym.envs.textworld:TextWorldEnv"),
    "ScienceWorld": (0, "agentgym.envs.scienceworld:ScienceWorldEnv"),
    "ALFWorld": (0, "agentgym.envs.alfworld:ALFWorldEnv"),
    "Negotiation": (0, "agentgym.envs.negotiation:NegotiationEnv"),
    "InstructorExecutor": (0, "agentgym.envs.instructor_executor:InstructorExecutorEnv"),
    "WebShop": (0, "agentgym.envs.webshop:WebShopEnv"),
    "SWEGym": (0, "agentgym.envs.swegym:SWEGymEnv"),
    "KernelGym": (0, "agentgym.envs.kernelgym:KernelGymEnv"),
}


def env_id(family: str) -> str:
    version, _ = FAMILIES[family]
    return f"{NAMESPACE}/{family}-v{version}"


def register_envs() -> None:
    """Register every family once (idempotent).

    Gymnasium's passive env checker stays on in ``gym.make`` (``disable_env_checker=True`` turns it off, as
    for any Gymnasium env): ``info`` is a plain dict, and what it holds is chosen with ``info_keys=``.
    """
    for family, (_, entry_point) in FAMILIES.items():
        if env_id(family) not in gym.registry:
            gym.register(id=env_id(family), entry_point=entry_point)


def registered_ids() -> list[str]:
    """All agentgym env ids, sorted."""
    return sorted(key for key in gym.registry if key.startswith(f"{NAMESPACE}/"))


def check_env_id(text: str) -> str:
    """``text`` if it is a registered agentgym id; otherwise one clear error naming the closest ids."""
    known = registered_ids()
    if text in known:
        return text
    by_lower = {key.lower(): key for key in known}
    close = difflib.get_close_matches(str(text).lower(), list(by_lower), n=3, cutoff=0.5)
    close += [key for key in by_lower if str(text).lower() in key and key not in close][: 3 - len(close)]
    hint = f" Did you mean {', '.join(repr(by_lower[key]) for key in close)}?" if close else ""
    raise InvalidArgumentError(f"unknown env id {text!r} ({len(known)} ids; `agentgym list` shows them).{hint}")
