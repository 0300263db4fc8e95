"""Every registered env id passes the public conformance test (new families are picked up automatically)."""

import pytest

import agentgym
from agentgym.testing import check_env


@pytest.mark.parametrize("env_id", agentgym.registered_ids())
def test_registered_env_conforms(env_id):
    check_env(env_id, split="test")


def test_every_family_is_registered():
    assert "agentgym/TextWorld-v0" in agentgym.registered_ids()
