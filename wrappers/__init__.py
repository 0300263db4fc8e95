"""Wrappers, among them the turn-level reward hooks (imported as ``agentgym.wrappers``).

Every hook is a :class:`TurnRewardHook`: online through :class:`TurnRewardWrapper` (adds
``info["turn_rewards"][name]``), offline through :func:`annotate` on saved trajectories. Hooks:

* :class:`IGPOHook` (``"igpo"``): information gain about the answer, from the policy LM;
* :class:`OPRLHook` (``"oprl"``): implicit step rewards from a PRM trained online with trajectory DPO;
* :class:`ProgressiveRewardHook` (``"prs_progressive"``): staged format / validity / task rewards,
  with a curriculum;
* :class:`RLVMRHook` (``"rlvmr"``): meta-reasoning tag rewards and the format penalty.

IGPO and OPRL need a model (``requires_policy``): ``cls.from_policy(policy, tokenizer, **kwargs)`` builds
them from the policy being trained. A trainer calls ``hook.on_update(step, batch, metrics)`` after each
policy update (OPRL trains its PRM and syncs its reference, PRS advances its curriculum).

torch and transformers are imported only when a model-based hook is used.
"""

from agentgym.wrappers.hooks import TurnRewardHook, TurnRewardWrapper, annotate, ground_truth, is_final_turn
from agentgym.wrappers.igpo import IGPOHook
from agentgym.wrappers.oprl import OPRLHook
from agentgym.wrappers.progressive import ProgressiveRewardHook
from agentgym.wrappers.rlvmr import RLVMRHook

__all__ = [
    "IGPOHook",
    "OPRLHook",
    "ProgressiveRewardHook",
    "RLVMRHook",
    "TurnRewardHook",
    "TurnRewardWrapper",
    "annotate",
    "ground_truth",
    "is_final_turn",
]
