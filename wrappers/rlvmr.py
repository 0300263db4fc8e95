"""RLVMR meta-reasoning rewards (spec ``reward-hooks.md`` §11): tags, format penalty, rule-based tag rewards.

The agent writes one meta-reasoning block — ``<planning>``, ``<explore>``, ``<reflection>`` or
``<monitor>`` — then ``<action>command</action>``. Per turn the hook finds the tag, checks the format and
rewards the tag by rule:

=============  ======================================================================  =====
tag            rewarded when                                                            value
=============  ======================================================================  =====
planning       the trajectory succeeds (won, or total env reward > 0)                  1.0
explore        the step explores something new (see ``explore``)                        1.0
reflection     it follows a failed step (format-invalid or not accepted by the env)
               and changes course (see ``reflection``)                                 1.0
monitor        never                                                                    0
=============  ======================================================================  =====

A format-invalid step gets the tag ``"none"``, tag reward 0 and the format penalty ``-format_penalty``
(0.1). The hook reads what the agent wrote (``Turn.agent_text``: the raw reply) and finds the tags and the
action with the gym's one parser (:mod:`agentgym.actions`; the first ``<action>`` block is the action).

**What the trainer gets** (GRPO-MR needs the tag reward and the format penalty apart, so they are never
summed away):

* ``turn.turn_rewards["rlvmr"]``: the per-turn total, tag reward + format reward (the paper's "total step
  reward"; what :meth:`RLVMRHook.score` returns);
* ``turn.info["turn_reward_details"]["rlvmr"]``: the parts, a dict ``{"tag", "mr_reward",
  "format_reward", "format_ok", "action_available"}`` (:meth:`RLVMRHook.details`; written by
  :func:`~agentgym.wrappers.annotate`, i.e. by the trainer's ``score_hooks``, and online by the wrapper);
* :func:`rlvmr_inputs` reads them back as the ``tags``, ``tag_rewards`` and ``format_rewards`` arguments of
  :func:`agentgym.baselines.estimators.rlvmr_advantages`.

Planning credit depends on the outcome, so online the planning turns read 0 until the episode ends;
``info["episode_turn_rewards"]`` at the last step carries the final values.

Paper/code disagreements (spec §14.4), each an option, paper behaviour by default:

* ``format``: ``"paper"`` at least one meta tag and one action block; ``"code"`` exactly one action
  block and exactly one non-empty meta block before it, and no Chinese characters.
* ``explore``: ``"paper"`` the action targets a new object or location (its words after the verb were not
  the target of an earlier format-valid step); ``"code"`` the action string differs from every earlier
  format-valid step's action; ``"state"`` the observation the step led to was not seen before.
* ``reflection``: ``"paper"`` after a run of failed steps, the action differs from every action in that
  run; ``"code"`` the previous step failed and the action differs from the previous action.

Example:
    >>> from agentgym.wrappers.rlvmr import parse_rlvmr
    >>> parse_rlvmr("<planning>find the key</planning><action>open chest</action>")
    ParsedStep(tag='planning', action='open chest', format_ok=True)

Change logs:
    v0: initial version.
    v1: parsing by :mod:`agentgym.actions` (one rule set with the agent and PRS); reads ``Turn.agent_text``;
        :func:`rlvmr_inputs`; ``action_for_env`` removed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

from agentgym.actions import META_TAGS, action_blocks, meta_blocks, parse_reply
from agentgym.trajectory import Trajectory
from agentgym.wrappers.hooks import TurnRewardHook, check_choice

TAGS = META_TAGS
_CJK_RE = re.compile(r"[\u4e00-\u9fff]")


class ParsedStep(NamedTuple):
    tag: str  # one of TAGS, or "none" when the format is invalid
    action: str
    format_ok: bool


def parse_rlvmr(text: str, format: Literal["paper", "code"] = "paper") -> ParsedStep:
    """Parse one agent output into (tag, action, format_ok).

    The action is the first ``<action>`` block (:func:`agentgym.actions.parse_reply`, the gym's rule; ''
    when there is none). ``format="paper"``: at least one meta tag and one non-empty action block;
    ``"code"``: exactly one action block and exactly one non-empty meta block, before it, and no Chinese
    characters (the reference projection).
    """
    parsed = parse_reply(text, "rlvmr")
    tags, actions = meta_blocks(text), action_blocks(text)
    action = parsed.action if parsed.rule == "tag" and actions else ""
    if format == "code":
        ok = (
            len(actions) == 1
            and len(tags) == 1
            and bool(tags[0].content.strip())
            and tags[0].end <= actions[0].start()
            and bool(action)
            and not _CJK_RE.search(text)
        )
    else:
        ok = bool(tags) and bool(action)
    return ParsedStep(tags[0].tag if ok else "none", action, ok)


def rlvmr_inputs(trajectories: Sequence[Trajectory], name: str = "rlvmr") -> dict[str, list[list[Any]]]:
    """``{"tags", "tag_rewards", "format_rewards"}`` per turn of each trajectory, read from the details the
    hook ``name`` wrote (``turn.info["turn_reward_details"][name]``), for
    :func:`agentgym.baselines.estimators.rlvmr_advantages`. A turn without them raises KeyError naming it."""
    out: dict[str, list[list[Any]]] = {"tags": [], "tag_rewards": [], "format_rewards": []}
    for trajectory in trajectories:
        rows = []
        for k, turn in enumerate(trajectory.turns):
            row = (turn.info.get("turn_reward_details") or {}).get(name)
            if row is None:
                raise KeyError(
                    f"trajectory {trajectory.episode_id!r} turn {k}: no turn_reward_details[{name!r}]; "
                    "score the batch with the hook first (annotate / score_hooks)"
                )
            rows.append(row)
        out["tags"].append([row["tag"] for row in rows])
        out["tag_rewards"].append([float(row["mr_reward"]) for row in rows])
        out["format_rewards"].append([float(row["format_reward"]) for row in rows])
    return out


def _target(action: str) -> str:
    words = action.lower().split()
    return " ".join(words[1:]) if len(words) > 1 else " ".join(words)


class RLVMRHook(TurnRewardHook):
    """Rule-based meta-reasoning rewards (module docstring). Name: ``"rlvmr"``.

    Args:
        planning_reward, exploration_reward, reflection_reward: tag reward values (1.0 each).
        format_penalty: subtracted on format-invalid steps (0.1).
        format, explore, reflection: paper or reference-code variants (module docstring).
    """

    name = "rlvmr"
    needs_finished_episode = True

    def __init__(
        self,
        *,
        planning_reward: float = 1.0,
        exploration_reward: float = 1.0,
        reflection_reward: float = 1.0,
        format_penalty: float = 0.1,
        format: Literal["paper", "code"] = "paper",
        explore: Literal["paper", "code", "state"] = "paper",
        reflection: Literal["paper", "code"] = "paper",
    ):
        check_choice("format", format, ("paper", "code"))
        check_choice("explore", explore, ("paper", "code", "state"))
        check_choice("reflection", reflection, ("paper", "code"))
        self.planning_reward, self.exploration_reward = planning_reward, exploration_reward
        self.reflection_reward, self.format_penalty = reflection_reward, format_penalty
        self.format, self.explore, self.reflection = format, explore, reflection

    def _details(self, trajectory: Trajectory) -> list[dict[str, Any]]:
        success = trajectory.won or trajectory.total_reward > 0
        finished = bool(trajectory.turns) and (trajectory.turns[-1].terminated or trajectory.turns[-1].truncated)
        rows: list[dict[str, Any]] = []
        seen_actions: set[str] = set()
        seen_targets: set[str] = set()
        seen_states = {trajectory.initial_info.get("anchor_obs") or trajectory.initial_observation}
        failed_run: list[str] = []  # actions of the failed steps just before this one
        for turn in trajectory.turns:
            step = parse_rlvmr(turn.agent_text, self.format)
            available = bool(turn.info.get("action_valid", True))
            state = turn.info.get("anchor_obs") or turn.observation
            reward = 0.0
            if step.tag == "planning":
                reward = self.planning_reward if (success and finished) else 0.0
            elif step.tag == "explore":
                if self.explore == "code":
                    new = step.action not in seen_actions
                elif self.explore == "state":
                    new = state not in seen_states
                else:
                    new = _target(step.action) not in seen_targets
                reward = self.exploration_reward if new else 0.0
            elif step.tag == "reflection" and failed_run:
                if self.reflection == "code":
                    changed = step.action != failed_run[-1]
                else:
                    changed = step.action not in failed_run
                reward = self.reflection_reward if changed else 0.0
            rows.append(
                {
                    "tag": step.tag,
                    "mr_reward": reward,
                    "format_ok": step.format_ok,
                    "action_available": available,
                    "format_reward": 0.0 if step.format_ok else -self.format_penalty,
                }
            )
            if step.format_ok:
                seen_actions.add(step.action)
                seen_targets.add(_target(step.action))
            seen_states.add(state)
            if step.format_ok and available:
                failed_run = []
            else:
                failed_run.append(step.action)
        return rows

    def details(self, trajectories: Sequence[Trajectory]) -> list[list[dict[str, Any]]]:
        return [self._details(trajectory) for trajectory in trajectories]

    def score(self, trajectories: Sequence[Trajectory]) -> list[list[float]]:
        return [[row["mr_reward"] + row["format_reward"] for row in rows] for rows in self.details(trajectories)]
