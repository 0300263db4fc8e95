"""WebShop family: ``agentgym/WebShop-v0`` (see :mod:`agentgym.envs.webshop.env` for the env card)."""

from agentgym.extras import needs

with needs("webshop"):  # one line naming the extra when it is missing
    from agentgym.envs.webshop.env import WebShopEnv

__all__ = ["WebShopEnv"]
