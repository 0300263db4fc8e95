"""RLVMR and progressive reward shaping on hand-made trajectories (hand-computed values); the hook API."""

from __future__ import annotations

import pytest
from hook_helpers import make_trajectory

from agentgym.error import InvalidArgumentError
from agentgym.wrappers import ProgressiveRewardHook, RLVMRHook, TurnRewardHook, annotate
from agentgym.wrappers.progressive import token_f1, well_formed
from agentgym.wrappers.rlvmr import parse_rlvmr


def tagged(tag, action):
    return f"<{tag}>thinking</{tag}><action>{action}</action>"


# ------------------------------------------------------------------ RLVMR
def test_parse_formats():
    assert parse_rlvmr(tagged("explore", "go east")) == ("explore", "go east", True)
    two_tags = "<planning>a</planning><monitor>b</monitor><action>look</action>"
    assert parse_rlvmr(two_tags).format_ok and not parse_rlvmr(two_tags, "code").format_ok
    after = "<action>look</action><planning>a</planning>"
    assert parse_rlvmr(after).format_ok and not parse_rlvmr(after, "code").format_ok
    assert not parse_rlvmr("<planning></planning><action>look</action>", "code").format_ok
    assert not parse_rlvmr("<planning>计划</planning><action>look</action>", "code").format_ok
    assert parse_rlvmr("just look") == ("none", "", False)


def test_rlvmr_rewards_hand_computed():
    actions = [
        tagged("planning", "go east"),  # planning, success -> 1
        tagged("explore", "open chest"),  # new -> 1
        "open chest",  # no tags: format penalty -0.1
        tagged("reflection", "take key"),  # previous step failed, changed course -> 1
        tagged("explore", "open chest"),  # repeated -> 0
        tagged("monitor", "take coin"),  # never rewarded
    ]
    traj = make_trajectory(actions, won=True, valid=[True, True, False, True, True, True], rewards=[0] * 5 + [1])
    hook = RLVMRHook(explore="code", reflection="code")
    assert hook.score([traj]) == [[1.0, 1.0, -0.1, 1.0, 0.0, 0.0]]
    assert [d["tag"] for d in hook.details([traj])[0]] == [
        "planning",
        "explore",
        "none",
        "reflection",
        "explore",
        "monitor",
    ]
    lost = make_trajectory(actions, won=False)
    assert hook.score([lost])[0][0] == 0.0  # planning credited on success only


def test_rlvmr_paper_and_code_variants_differ():
    # explore: the same object with another verb is not new for the paper rule, but is for the code rule
    traj = make_trajectory([tagged("explore", "examine chest"), tagged("explore", "open chest")])
    assert RLVMRHook(explore="code").score([traj])[0] == [1.0, 1.0]
    assert RLVMRHook(explore="paper").score([traj])[0] == [1.0, 0.0]
    # state novelty: the observation after the step
    same = make_trajectory([tagged("explore", "look"), tagged("explore", "look again")], ["room A", "room A"])
    assert RLVMRHook(explore="state").score([same])[0] == [1.0, 0.0]
    # reflection after two failures: the code compares with the last failed action only
    fails = make_trajectory(
        [tagged("explore", "go north"), tagged("explore", "go south"), tagged("reflection", "go north")],
        valid=[False, False, True],
    )
    assert RLVMRHook(reflection="code").score([fails])[0][2] == 1.0
    assert RLVMRHook(reflection="paper").score([fails])[0][2] == 0.0
    with pytest.raises(InvalidArgumentError, match="explore"):
        RLVMRHook(explore="novel")


def test_progressive_two_line_react_is_well_formed():
    assert well_formed("The chest is locked.\nAction: take key")
    assert not well_formed("Action: take key\nObservation: you take it")
    traj = make_trajectory(["thought\nAction: x"], valid=[True])
    assert ProgressiveRewardHook().score([traj]) == [[1.0]]


# ------------------------------------------------------------------ progressive reward shaping
def test_well_formed_and_f1():
    assert well_formed("go east") and well_formed('{"name": "search"}') and well_formed(tagged("planning", "x"))
    assert not well_formed("") and not well_formed("{oops") and not well_formed("a\nb")
    assert not well_formed("<action>a</action><action>b</action>")
    assert token_f1("the Coin!", "coin") == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert token_f1("", "") == 1.0


def test_progressive_stages_and_curriculum():
    traj = make_trajectory(["go east", "a\nb", "take coin"], valid=[False, False, True], scores=[0, 0, 1.0], won=True)
    hook = ProgressiveRewardHook(keep_weight=0.25)
    assert hook.weights() == (1.0, 0.0, 0.0)
    assert hook.score([traj]) == [[1.0, 0.0, 1.0]]  # format only
    hook.stage = 1
    assert hook.score([traj]) == [[0.25, 0.0, 1.25]]
    hook.stage = 2
    assert hook.score([traj]) == [[0.25, 0.0, 0.25 + 0.25 + 1.0]]
    ungated = ProgressiveRewardHook(gated=False, stage=2, keep_weight=0.0)
    broken = make_trajectory(["a\nb"], valid=[True], scores=[0.5])
    assert ungated.score([broken]) == [[0.5]] and ProgressiveRewardHook(stage=2).score([broken]) == [[0.0]]
    steps = ProgressiveRewardHook(schedule="steps", boundaries=(10, 20))
    steps.set_step(9)
    assert steps.stage == 0
    steps.set_step(15)
    assert steps.stage == 1
    steps.set_step(25)
    assert steps.weights() == (0.25, 0.25, 1.0)


def test_progressive_mastery_and_answer_score():
    hook = ProgressiveRewardHook(schedule="mastery", threshold=0.6)
    good = make_trajectory(["go east", "take coin"], valid=[True, False])
    rates = hook.observe([good])
    assert rates == {"format": 1.0, "valid": 0.5, "task": 0.0} and hook.stage == 1
    hook.observe([good])
    assert hook.stage == 1  # validity 0.5 < 0.6: stays
    qa = make_trajectory(["search coin", "<answer>the gold coin</answer>"], truth="gold coin", scores=[0, 0])
    assert ProgressiveRewardHook(stage=2, keep_weight=0).score([qa])[0] == [0.0, pytest.approx(0.8)]


# ------------------------------------------------------------------ hook API
def test_annotate_and_unique_names():
    traj = make_trajectory([tagged("explore", "go east")])
    annotate([traj], [RLVMRHook(), ProgressiveRewardHook()])
    assert traj.turns[0].turn_rewards == {"rlvmr": 1.0, "prs_progressive": 1.0}
    second = RLVMRHook(explore="code")
    with pytest.raises(InvalidArgumentError, match="unique"):
        annotate([traj], [RLVMRHook(), second])
    second.name = "rlvmr_code"
    annotate([traj], [RLVMRHook(), second])
    assert traj.turns[0].turn_rewards["rlvmr_code"] == 1.0

    class Short(TurnRewardHook):
        name = "short"

        def score(self, trajectories):
            return [[] for _ in trajectories]

    with pytest.raises(RuntimeError, match="returned 0 rewards for 1 turns"):
        annotate([traj], [Short()])
