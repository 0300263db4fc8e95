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
(0.1). The hook's per-turn reward is tag reward + format reward (the paper's "total step reward");
:meth:`RLVMRHook.details` gives the parts (``tag``, ``mr_reward``, ``format_ok``, ``action_available``)
that :func:`agentgym.baselines.estimators.rlvmr_advantages` needs. Planning credit depends on the
outcome, so online the planning turns read 0 until the episode ends; ``info["episode_turn_rewards"]``
at the last step carries the final values.

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
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

from agentgym.trajectory import Trajectory
from agentgym.wrappers.hooks import TurnRewardHook, check_choice

TAGS = ("planning", "explore", "reflection", "monitor")
_TAG_RE = re.compile(r"<(planning|explore|reflection|monitor)>(.*?)</\1>", re.DOTALL)
ACTION_RE = re.compile(r"<action>(.*?)</action>", re.DOTALL)
_CJK_RE = re.compile(r"[\u4e00-\u9fff]")


class ParsedStep(NamedTuple):
    tag: str  # one of TAGS, or "none" when the format is invalid
    action: str
    format_ok: bool


def parse_rlvmr(text: str, format: Literal["paper", "code"] = "paper") -> ParsedStep:
    """Parse one agent output into (tag, action, format_ok)."""
    tags = list(_TAG_RE.finditer(text))
    actions = list(ACTION_RE.finditer(text))
    action = actions[0].group(1).strip() if actions else ""
    if format == "code":
        ok = (
            len(actions) == 1
            and len(tags) == 1
            and bool(tags[0].group(2).strip())
            and tags[0].end() <= actions[0].start()
            and bool(action)
            and not _CJK_RE.search(text)
        )
    else:
        ok = bool(tags) and bool(actions) and bool(action)
    return ParsedStep(tags[0].group(1) if ok else "none", action, ok)


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

    def action_for_env(self, text: str) -> str:
        """The ``<action>`` content, or the text itself when it has no action block."""
        match = ACTION_RE.search(text)
        return match.group(1).strip() if match else text

    def _details(self, trajectory: Trajectory) -> list[dict[str, Any]]:
        success = trajectory.won or trajectory.total_reward > 0
        finished = bool(trajectory.turns) and (
            trajectory.turns[-1].terminated or trajectory.turns[-1].truncated
        )
        rows: list[dict[str, Any]] = []
        seen_actions: set[str] = set()
        seen_targets: set[str] = set()
        seen_states = {trajectory.initial_info.get("anchor_obs") or trajectory.initial_observation}
        failed_run: list[str] = []  # actions of the failed steps just before this one
        for turn in trajectory.turns:
            step = parse_rlvmr(turn.action, self.format)
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
        return [
            [row["mr_reward"] + row["format_reward"] for row in rows] for rows in self.details(trajectories)
        ]
