"""agentgym/KernelGym-v0: task files, the sandboxed evaluation, rewards and every anti-hacking check.

Fast tests never start a worker (static checks, task files, invalid actions); tests marked ``slow`` run
real evaluations in the bubblewrap sandbox (a few seconds each, one C++ compile shared through the
compile cache).
"""

import functools
import textwrap

import gymnasium as gym
import numpy as np
import pytest

import agentgym  # noqa: F401 - registers the ids
from agentgym.baselines.estimators import profiling_rejection_filter, trloo_advantages
from agentgym.envs.kernelgym import KernelGymEnv, extract_code, load_tasks, prs_inputs, static_checks
from agentgym.envs.kernelgym.engine import EvalResult
from agentgym.envs.kernelgym.env import reward_speedup, reward_table
from agentgym.error import TaskFileError
from agentgym.sandbox import available

needs_sandbox = pytest.mark.skipif(not available(), reason="bubblewrap sandbox not available")

RELU_TASK = "level1/relu"
HEADER = "import torch\nimport torch.nn as nn\n\n"


def make_env(**kwargs):
    options = dict(split="test", device="cpu", correct_trials=2, perf_trials=3, warmup=1, eval_timeout=400.0)
    options.update(kwargs)
    return KernelGymEnv(**options)


def submit(env, code, task_id=RELU_TASK):
    env.reset(seed=0, options={"task_id": task_id})
    return env.step(code)


# ------------------------------------------------------------------ task files (fast)
def test_builtin_tasks_cover_three_levels_with_both_shape_sets_and_experts():
    tasks = load_tasks()
    assert len(tasks) >= 40
    by_level = {level: [t for t in tasks if t.level == level] for level in (1, 2, 3)}
    assert all(len(v) >= 10 for v in by_level.values())
    splits = {s: {t.task_id for t in tasks if t.split == s} for s in ("train", "valid", "test")}
    assert all(splits.values()) and not (splits["train"] & splits["test"])
    assert {t.level for t in tasks if t.split == "test"} == {1, 2, 3}
    for task in tasks:
        assert task.shapes("cpu") and task.shapes("cuda"), task.task_id
        assert task.forbidden and task.expert and "ModelNew" in task.expert, task.task_id
        assert set(task.backends) == {"torch", "cpp", "cuda", "triton"}
    assert sum("load_inline" in t.expert for t in tasks) >= 2


def test_env_lists_splits_and_records_the_protocol():
    env = KernelGymEnv(split="test", device="cpu")
    assert len(env.task_ids) == 9 and RELU_TASK in env.task_ids
    assert "device=cpu" in env.manifest.engine_version and "backends=" in env.manifest.engine_version
    obs, info = env.reset(seed=0, options={"task_id": RELU_TASK})
    assert "class Model" in obs and "ModelNew" in obs and "BATCH=16" in obs
    assert info["expert_action"] and "load_inline" in info["expert_action"]
    assert info["kernelgym"]["level"] == 1
    env.close()


@pytest.mark.parametrize(
    "content,needle",
    [
        ("import torch\n\ndef get_inputs():\n    return []\n", "must define"),
        (
            "class Model:\n    pass\ndef get_inputs(): pass\ndef get_init_inputs(): pass\nMETA = {'level': f()}\n",
            "literal",
        ),
        ("class Model(\n", "cannot read"),
        (
            "class Model: pass\ndef get_inputs(): pass\ndef get_init_inputs(): pass\nMETA = {'backends': ['opencl']}\n",
            "backends",
        ),
    ],
)
def test_malformed_task_file_names_the_file(tmp_path, content, needle):
    (tmp_path / "good.py").write_text(load_tasks()[0].source)
    (tmp_path / "broken.py").write_text(content)
    with pytest.raises(TaskFileError, match=needle) as err:
        KernelGymEnv(tasks_dir=tmp_path, split="test", device="cpu")
    assert "broken.py" in str(err.value)


def test_users_tasks_dir_and_hash_split(tmp_path):
    for task in load_tasks()[:5]:
        (tmp_path / f"{task.task_id.replace('/', '_')}.py").write_text(task.source)
    ids = []
    for split in ("train", "valid", "test"):
        try:
            ids += KernelGymEnv(tasks_dir=tmp_path, split=split, device="cpu").task_ids
        except Exception:  # a split may be empty for five files
            pass
    assert len(ids) == 5


# ------------------------------------------------------------------ actions, static anti-hacking checks (fast)
def test_extract_code_and_invalid_actions():
    assert extract_code("text\n```python\nclass ModelNew: pass\n```\nmore") == "class ModelNew: pass\n"
    env = make_env()
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step("I think ReLU is already fast.")
    assert info["action_valid"] is False and reward == 0.0 and not terminated
    _, reward, _, _, info = env.step("class ModelNew(nn.Module):\n    def forward(self, x)\n")
    assert info["action_valid"] and info["kernelgym"]["compiled"] is False
    assert "SyntaxError" in info["kernelgym"]["error"] and reward == 0.0
    env.close()


STATIC_HACKS = {
    "try_except": """
        from torch.utils.cpp_extension import load_inline
        try:
            ext = load_inline(name="x", cpp_sources="bad", functions=["f"])
        except Exception:
            ext = None

        class ModelNew(nn.Module):
            def forward(self, x):
                return ext.f(x) if ext else torch.clamp_min(x, 0)
        """,
    "timing_patch": """
        import time
        time.perf_counter = lambda: 0.0

        class ModelNew(nn.Module):
            def forward(self, x):
                return x.clamp_min(0)
        """,
    "side_stream": """
        class ModelNew(nn.Module):
            def forward(self, x):
                with torch.cuda.stream(torch.cuda.Stream()):
                    return x.clamp_min(0)
        """,
    "thread_injection": """
        import threading

        class ModelNew(nn.Module):
            def forward(self, x):
                out = torch.empty_like(x)
                threading.Thread(target=lambda: torch.clamp_min(x, 0, out=out)).start()
                return out
        """,
    "lazy_tensor": """
        class Lazy(torch.Tensor):
            pass

        class ModelNew(nn.Module):
            def forward(self, x):
                return x.clamp_min(0).as_subclass(Lazy)
        """,
    "reference_access": """
        import sys

        class ModelNew(nn.Module):
            def forward(self, x):
                return sys.modules["kernelgym_reference"].Model()(x)
        """,
}


@pytest.mark.parametrize("hack", sorted(STATIC_HACKS))
def test_static_hacks_are_caught_before_running(hack):
    code = HEADER + textwrap.dedent(STATIC_HACKS[hack])
    assert hack in static_checks(code)[0]
    env = make_env(reward="table")
    obs, reward, _, _, info = submit(env, code)
    family = info["kernelgym"]
    assert hack in family["hacks"] and not family["valid"] and reward == -1.0 and not info["won"]
    assert "REJECTED" in obs and "outcome=hacked" in info["anchor_obs"]
    env.close()


def test_rewards_follow_kernelgym():
    def result(**kw):
        base = dict(compiled=True, correct=True, hacks=[], warnings=[], error=None, backend="cpp")
        base.update(kw)
        return EvalResult(**base)

    assert reward_table(result(compiled=False, correct=False)) == -0.5
    assert reward_table(result(correct=False)) == -0.3
    assert reward_table(result(hacks=["decoy_kernel"])) == -1.0
    assert [reward_table(result(speedup=s)) for s in (3.5, 2.1, 1.6, 1.3, 1.05, 0.5)] == [1.0, 0.8, 0.6, 0.4, 0.2, -0.1]
    assert reward_speedup(result(speedup=5.0)) == pytest.approx(2.0)
    assert reward_speedup(result(speedup=0.4, time_coverage=0.8), coverage_weight=0.5) == pytest.approx(0.5 + 0.2 + 0.4)
    assert reward_speedup(result(correct=False, speedup=2.0)) == 0.0


# ------------------------------------------------------------------ real evaluations (slow)
@needs_sandbox
@pytest.mark.slow
def test_expert_is_correct_on_every_test_task():
    env = make_env(split="test")
    failures = {}
    for task_id in env.task_ids:
        _, info = env.reset(seed=0, options={"task_id": task_id})
        _, reward, _, _, info = env.step(info["expert_action"])
        family = info["kernelgym"]
        if not (family["valid"] and info["won"] and reward >= 0.5):
            failures[task_id] = (family["hacks"], family["error"], family["trials"][-1:] if family["trials"] else None)
        assert family["speedup"] is not None and family["runtime_ms"] > 0
        if task_id == RELU_TASK:
            assert family["backend"] == "cpp" and family["time_coverage"] > 0.5
    env.close()
    assert not failures, failures


RUNTIME_HACKS = {
    "calls_reference_op": """
        class ModelNew(nn.Module):
            def forward(self, x):
                return torch.nn.functional.relu(x)
        """,
    "reuses_output_buffer": """
        class ModelNew(nn.Module):
            def __init__(self):
                super().__init__()
                self.cache = None

            def forward(self, x):
                if self.cache is None:
                    self.cache = x.clamp_min(0)
                return self.cache
        """,
    "mutates_inputs": """
        class ModelNew(nn.Module):
            def forward(self, x):
                return x.clamp_min_(0)
        """,
    "timing_patched": """
        import time
        time.__dict__["perf_counter_ns"] = lambda: 0

        class ModelNew(nn.Module):
            def forward(self, x):
                return x.clamp_min(0)
        """,
}


@needs_sandbox
@pytest.mark.slow
@pytest.mark.parametrize("hack", sorted(RUNTIME_HACKS))
def test_runtime_hacks_are_caught(hack):
    env = make_env(reward="table")
    _, reward, _, _, info = submit(env, HEADER + textwrap.dedent(RUNTIME_HACKS[hack]))
    family = info["kernelgym"]
    assert hack in family["hacks"], family
    assert reward == -1.0 and not family["valid"] and not info["won"]
    env.close()


@needs_sandbox
@pytest.mark.slow
def test_decoy_kernel_is_caught():
    """The expert's C++ kernel is built (a compile-cache hit) but forward never calls it."""
    env = make_env()
    env.reset(seed=0, options={"task_id": RELU_TASK})
    expert = env.unwrapped._task_def.expert
    decoy = expert.replace("return _ext.relu_forward(x)", "return x.clamp_min(0.0)")
    _, reward, _, _, info = env.step(decoy)
    assert info["kernelgym"]["hacks"] == ["decoy_kernel"] and info["kernelgym"]["decoy"] and reward == 0.0
    # a kernel is demanded: a plain PyTorch rewrite is refused where backends exclude "torch"
    strict = make_env(backends=["cpp"])
    _, _, _, _, info = submit(
        strict,
        HEADER
        + textwrap.dedent(RUNTIME_HACKS["calls_reference_op"]).replace(
            "torch.nn.functional.relu(x)", "x.clamp_min(0.0)"
        ),
    )
    assert "no_custom_kernel" in info["kernelgym"]["hacks"]
    env.close()
    strict.close()


@needs_sandbox
@pytest.mark.slow
def test_wrong_result_gets_mismatch_statistics_and_excessive_speedup_is_flagged(tmp_path):
    env = make_env(perf_trials=0)
    obs, reward, _, _, info = submit(
        env, HEADER + "class ModelNew(nn.Module):\n    def forward(self, x):\n        return x.clamp_min(0.001)\n"
    )
    family = info["kernelgym"]
    assert family["compiled"] and not family["correct"] and reward == 0.0
    assert "elements mismatched" in obs and family["trials"][0]["mismatched"] > 0
    env.close()
    slow = load_tasks()[0].source  # any source; replace the forward with a sleeping one
    (tmp_path / "slow_relu.py").write_text(
        textwrap.dedent("""
        import time
        import torch
        import torch.nn as nn
        META = {"split": "test", "forbidden": ["relu"]}
        SHAPES = {"cpu": {"N": 64}, "cuda": {"N": 1024}}
        N = 64
        class Model(nn.Module):
            def forward(self, x):
                time.sleep(0.02)
                return torch.relu(x)
        def get_inputs():
            return [torch.randn(N, N)]
        def get_init_inputs():
            return []
        """)
    )
    assert slow
    env = make_env(tasks_dir=tmp_path, perf_trials=5)
    obs, _, _, _, info = submit(
        env,
        HEADER + "class ModelNew(nn.Module):\n    def forward(self, x):\n        return x.clamp_min(0.0)\n",
        task_id="slow_relu",
    )
    family = info["kernelgym"]
    assert family["valid"] and family["speedup"] > 10 and family["review"]
    assert "sanity bound" in obs
    env.close()


@needs_sandbox
@pytest.mark.slow
def test_crash_hang_and_oom_never_take_the_env_down():
    env = make_env(eval_timeout=25.0, memory_limit=3 << 30)
    crash = (
        HEADER + "import ctypes\n\nclass ModelNew(nn.Module):\n    def forward(self, x):\n"
        "        return ctypes.string_at(0)\n"
    )
    hang = HEADER + "class ModelNew(nn.Module):\n    def forward(self, x):\n        while True:\n            pass\n"
    oom = (
        HEADER + "class ModelNew(nn.Module):\n    def forward(self, x):\n"
        "        hog = [bytearray(1 << 28) for _ in range(64)]\n        return x.clamp_min(0) + len(hog)\n"
    )
    _, reward, _, _, info = submit(env, crash)
    assert info["kernelgym"]["crashed"] and "segmentation" in info["kernelgym"]["crashed"] and reward == 0.0
    _, reward, _, truncated, info = env.step(hang)
    assert "timed out" in info["kernelgym"]["crashed"] and reward == 0.0
    _, reward, _, truncated, info = env.step(oom)
    assert "out of memory" in (info["kernelgym"]["error"] or "") and reward == 0.0 and truncated
    _, info = env.reset(seed=0, options={"task_id": "level1/softmax"})
    _, reward, _, _, info = env.step(info["expert_action"])
    assert info["won"] and reward >= 0.5
    env.close()


@needs_sandbox
@pytest.mark.slow
def test_untimed_episodes_are_deterministic_and_feed_trloo_and_prs():
    from agentgym.agents import ExpertAgent
    from agentgym.rollout import EpisodeSpec, rollout

    make = functools.partial(
        gym.make,
        "agentgym/KernelGym-v0",
        split="test",
        device="cpu",
        max_turns=2,
        correct_trials=2,
        perf_trials=0,
        profile=False,
    )
    specs = [EpisodeSpec(episode_id=f"e{i}", task_id=None, seed=3, group_id="g") for i in range(2)]
    trajectories = rollout(make, ExpertAgent(), specs, num_workers=1)
    first, second = ([(t.observation, t.reward) for t in tr.turns] for tr in trajectories)
    assert trajectories[0].task_id == trajectories[1].task_id and first == second  # same seed, same episode
    inputs = prs_inputs(trajectories)
    assert inputs["correct"] == [[True, True], [True, True]]
    keep = profiling_rejection_filter(inputs["coverage"], inputs["correct"], speedup=inputs["speedup"])
    assert all(k.shape == (2,) for k in keep)
    advantages = trloo_advantages([[t.reward for t in tr.turns] for tr in trajectories], ["g", "g"])
    assert np.allclose(advantages[0], 0.0)
