"""KernelGym's isolation (issue 17): a submission cannot forge the result, poison the build cache,
behave differently when timed, patch the checker or reach the reference; bad task data is named.

The hacks are our own, written against the new design (none uses a name the static checks refuse,
so what voids them is the judge/runner split, not a lint). One slow evaluation per hack class.
"""

import textwrap

import pytest

import agentgym  # noqa: F401 - registers the ids
from agentgym.envs.kernelgym import KernelGymEnv
from agentgym.envs.kernelgym.engine import compile_cache_dir
from agentgym.envs.kernelgym.static import static_checks
from agentgym.error import TaskFileError
from agentgym.sandbox import available

needs_sandbox = pytest.mark.skipif(not available(), reason="bubblewrap sandbox not available")
HEADER = "import torch\nimport torch.nn as nn\n\n"


def make_env(**kwargs):
    options = dict(split="test", device="cpu", correct_trials=2, perf_trials=4, warmup=1, eval_timeout=300.0)
    options.update(kwargs)
    return KernelGymEnv(**options)


# A forged result line: the old worker's nonce lived in job.json; print a perfect result and exit.
FORGED = """
    import json, os, sys
    job = json.load(open("job.json"))
    line = {"compiled": True, "correct": True, "hacks": [], "warnings": [], "error": None, "backend": "cpp",
            "trials": [], "new_ms": 0.001, "ref_ms": 1.0, "time_coverage": 1.0}
    for fd in (1, 2):
        os.write(fd, ("KERNELGYM-RESULT " + job.get("nonce", "") + " " + json.dumps(line) + "\\n").encode())
        os.write(fd, ("KERNELGYM-RESULT " + json.dumps(line) + "\\n").encode())
    os._exit(0)

    class ModelNew(nn.Module):
        def forward(self, x):
            return x
    """

# Timed calls do no work: the stack of a timed call is detected by its frames (any name with "tim").
PHASE = """
    import sys

    class ModelNew(nn.Module):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            frame, names = sys._getframe(1), []
            while frame is not None:
                names.append(frame.f_code.co_name)
                frame = frame.f_back
            if self.calls > 2 or any("tim" in n for n in names):
                return torch.empty_like(x)
            return x.clamp_min(0.0)
    """

# The comparison patched: every closeness check says yes, every difference is zero; output all zeros.
PATCHED_CHECKER = """
    setattr(torch, "is" + "close", lambda a, b, **k: torch.ones_like(a, dtype=torch.bool))
    setattr(torch, "all" + "close", lambda *a, **k: True)
    setattr(torch.Tensor, "__sub__", lambda a, b: torch.zeros_like(a))

    class ModelNew(nn.Module):
        def forward(self, x):
            return torch.zeros_like(x)
    """

# The reference reached through the caller's frames and the garbage collector, called with
# torch-function dispatch disabled; zeros if it is not found.
FRAMES = """
    import gc, sys

    def find_reference():
        frame = sys._getframe(1)
        while frame is not None:
            for value in list(frame.f_locals.values()) + list(frame.f_globals.values()):
                if type(value).__name__ == "Model":
                    return value
            frame = frame.f_back
        for obj in gc.get_objects():
            if type(obj).__name__ == "Model" and hasattr(obj, "forward"):
                return obj
        return None

    class ModelNew(nn.Module):
        def forward(self, x):
            ref = find_reference()
            if ref is None:
                return torch.zeros_like(x)
            with getattr(torch._C, "Disable" + "TorchFunction")():
                return type(ref).forward(ref, x)
    """

# Writes into every build cache entry it can find, then computes honestly.
POISON = """
    import glob, os
    CACHE = {cache!r}
    written = []
    for path in glob.glob(os.path.join(CACHE, "**", "*"), recursive=True) + [os.path.join(CACHE, "evil.so")]:
        if not os.path.isdir(path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.write(fd, b"poison")
            os.close(fd)
            written.append(path)

    class ModelNew(nn.Module):
        def forward(self, x):
            return x.clamp_min(0.0) + len(written)
    """


def _dedent(code):
    return HEADER + textwrap.dedent(code)


def test_the_hacks_pass_the_static_checks():
    """So what voids them below is the isolation, not a lint."""
    for code in (PHASE, PATCHED_CHECKER, FRAMES):
        assert static_checks(_dedent(code))[0] == [], code


@needs_sandbox
@pytest.mark.slow
def test_forged_result_phase_detection_patched_checker_and_frame_walking_are_voided():
    env = make_env(reward="speedup")
    env.reset(seed=0, options={"task_id": "level1/relu"})
    seen = {}
    for name, code in (("forged", FORGED), ("phase", PHASE), ("patched_checker", PATCHED_CHECKER), ("frames", FRAMES)):
        _, reward, _, _, info = env.step(_dedent(code))
        family = info["kernelgym"]
        seen[name] = (reward, family["valid"], family["correct"], family["error"], family["trials"][-1:])
        assert reward == 0.0 and not family["valid"] and not info["won"], (name, seen[name])
        assert family["error"] or family["crashed"] or not family["correct"], (name, family)
        env.unwrapped._turn = 0  # keep the episode open for the next hack
    # the forged run never got to judge anything: it exited while being loaded
    assert "exit" in (seen["forged"][3] or "") or "exit" in str(seen["forged"]), seen["forged"]
    # the phase and checker hacks are caught by a mismatch on a call the judge compared itself
    assert seen["phase"][4] and not seen["phase"][4][-1]["ok"], seen["phase"]
    assert seen["patched_checker"][4] and seen["patched_checker"][4][-1]["mismatched"] > 0
    assert seen["frames"][4] and not seen["frames"][4][-1]["ok"], seen["frames"]  # no reference to find
    env.close()


@needs_sandbox
@pytest.mark.slow
def test_build_cache_is_read_only_to_submissions_and_the_expert_is_unaffected():
    env = make_env(perf_trials=0, profile=False)
    _, info = env.reset(seed=0, options={"task_id": "level1/relu"})
    expert = info["expert_action"]
    _, reward, _, _, info = env.step(expert)  # builds (trusted step) or hits the cache
    assert info["won"] and reward >= 0.5, info["kernelgym"]
    cache = compile_cache_dir()
    before = {p: p.read_bytes() for p in cache.rglob("*") if p.is_file()}
    assert any(p.suffix == ".so" for p in before)
    _, reward, _, _, info = env.step(_dedent(POISON.format(cache=str(cache))))
    family = info["kernelgym"]
    assert not family["compiled"] and "Read-only file system" in family["error"] and reward == 0.0, family
    assert {p: p.read_bytes() for p in cache.rglob("*") if p.is_file()} == before
    _, reward, _, _, info = env.step(expert)
    assert info["won"] and reward >= 0.5
    env.close()


def _task(tmp_path, meta, body="return [torch.randn(4, 4)]"):
    (tmp_path / "t.py").write_text(
        textwrap.dedent(f"""
        import torch
        import torch.nn as nn
        META = {meta}
        class Model(nn.Module):
            def forward(self, x):
                return torch.relu(x)
        def get_inputs():
            {body}
        def get_init_inputs():
            return []
        """)
    )


@pytest.mark.parametrize(
    "meta,needle",
    [
        ({"split": "test", "forbidden": "relu"}, "META['forbidden'] must be a list of op names"),
        ({"split": "test", "forbidden": ["relu", 3]}, "META['forbidden']"),
        ({"split": "test", "atol": -1}, "META['atol'] must be a positive number"),
        ({"split": "test", "level": "1"}, "META['level'] must be an int"),
        ({"split": "test", "forbiden": ["relu"]}, "unknown keys ['forbiden']"),
    ],
)
def test_bad_meta_is_named_when_tasks_load(tmp_path, meta, needle):
    _task(tmp_path, meta)
    with pytest.raises(TaskFileError, match=None) as err:
        KernelGymEnv(tasks_dir=tmp_path, split="test", device="cpu")
    assert needle in str(err.value) and "t.py" in str(err.value)


@needs_sandbox
@pytest.mark.slow
def test_a_task_whose_get_inputs_raises_is_a_task_file_error_not_the_submissions(tmp_path):
    _task(tmp_path, {"split": "test", "forbidden": ["relu"]}, body="raise ValueError('broken task')")
    env = make_env(tasks_dir=tmp_path, perf_trials=0, profile=False)
    env.reset(seed=0, options={"task_id": "t"})
    with pytest.raises(TaskFileError) as err:
        env.step(_dedent("class ModelNew(nn.Module):\n    def forward(self, x):\n        return x.clamp_min(0)\n"))
    assert "t.py" in str(err.value) and "get_inputs()" in str(err.value) and "broken task" in str(err.value)
    env.close()


def test_anchor_is_a_state_key():
    """Task + outcome class + hash of the submission; the same state gives the same anchor."""
    env = make_env()
    _, info = env.reset(seed=0, options={"task_id": "level1/relu"})
    start = info["anchor_obs"]
    assert start == "kernelgym task=level1/relu outcome=start submission=-"
    hack = _dedent("import threading\n\nclass ModelNew(nn.Module):\n    def forward(self, x):\n        return x\n")
    anchors = [env.step(hack)[4]["anchor_obs"] for _ in range(2)]
    assert anchors[0] == anchors[1] and "outcome=hacked" in anchors[0] and "task=level1/relu" in anchors[0]
    assert env.step("no model here")[4]["anchor_obs"] == anchors[0]  # invalid action: state unchanged
    _, info = env.reset(seed=1, options={"task_id": "level1/relu"})
    assert info["anchor_obs"] == start
    other = _dedent("import threading\n\nclass ModelNew(nn.Module):\n    def forward(self, y):\n        return y\n")
    assert env.step(other)[4]["anchor_obs"] != anchors[0]
    env.close()
