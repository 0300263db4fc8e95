"""Every registered env id passes the public conformance test (new families are picked up automatically)."""

import pytest

import agentgym
from agentgym.testing import check_env


@pytest.mark.parametrize("env_id", agentgym.registered_ids())
def test_registered_env_conforms(env_id):
    check_env(env_id, split="test")


def test_copy_check_catches_a_family_whose_copies_share_their_engine():
    """``check_copy_and_clone`` fails a family that says it is copyable but shares an engine handle (the
    SWEGym bug: the copy's close() deleted the original's sandbox)."""
    import pytest

    from agentgym.core import TextEnv, Transition
    from agentgym.tasks import Task, TaskSplit
    from agentgym.testing import check_copy_and_clone

    class Handle:  # an external resource: copies are the same resource
        def __init__(self):
            self.open = True

        def __deepcopy__(self, memo):
            return self

    class SharingEnv(TextEnv):
        family = "Sharing"
        copyable = True

        def __init__(self):
            super().__init__(TaskSplit("test", [Task("t/0", {})], "sharing 1"), max_turns=5)
            self.engine_version = "sharing 1"
            self.handle = Handle()

        def _start(self, task):
            return Transition("start"), "goal"

        def _advance(self, action):
            assert self.handle.open, "the engine was closed under this env"
            return Transition(f"did {action}")

        def _close_engine(self):
            self.handle.open = False

    with pytest.raises(AssertionError, match="closed under this env"):
        check_copy_and_clone(SharingEnv)
