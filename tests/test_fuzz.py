"""The fuzzing conformance pass over every registered id: hostile actions never raise (issue 17).

Counts per id (actions tried, answered as invalid, engine faults, raised) are recorded as the test's
``fuzz`` property and printed in the terminal summary by ``tests/conftest.py``.
"""

import pytest

import agentgym
from agentgym.testing import fuzz_env

#: Ids whose steps are slow (a sandboxed process or a JVM per step) get fewer examples.
EXAMPLES = {"agentgym/SWEGym-v0": 40, "agentgym/KernelGym-v0": 40, "agentgym/ScienceWorld-v0": 60}
DEFAULT_EXAMPLES = 150


@pytest.mark.parametrize("env_id", agentgym.registered_ids())
def test_registered_env_survives_fuzzed_actions(env_id, record_property):
    counts = fuzz_env(env_id, examples=EXAMPLES.get(env_id, DEFAULT_EXAMPLES), split="test")
    record_property("fuzz", str(counts))
    assert counts.raised == 0 and counts.tried == EXAMPLES.get(env_id, DEFAULT_EXAMPLES)


@pytest.mark.filterwarnings("ignore::UserWarning")  # jericho warns as it truncates
def test_fuzzing_finds_the_engine_bug_the_guard_prevents():
    """Without TextWorld's declared limits, the fuzzer reproduces jericho's mid-character truncation."""
    from agentgym.envs.textworld import TextWorldEnv

    class Unguarded(TextWorldEnv):
        max_action_bytes = None
        action_charset = "unicode"

    with pytest.raises(UnicodeDecodeError):
        fuzz_env(lambda: Unguarded(split="test"), examples=150)
