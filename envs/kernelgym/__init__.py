"""agentgym/KernelGym-v0: KernelGYM-style kernel writing against PyTorch references (see :mod:`.env`)."""

from agentgym.extras import needs

with needs("kernelgym"):  # one line naming the extra when it is missing
    from agentgym.envs.kernelgym.engine import EvalResult, Evaluator
    from agentgym.envs.kernelgym.env import KernelGymEnv, extract_code, prs_inputs
    from agentgym.envs.kernelgym.static import static_checks
    from agentgym.envs.kernelgym.tasks import KernelTask, load_task, load_tasks

__all__ = [
    "EvalResult",
    "Evaluator",
    "KernelGymEnv",
    "KernelTask",
    "extract_code",
    "load_task",
    "load_tasks",
    "prs_inputs",
    "static_checks",
]
