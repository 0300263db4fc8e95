"""Turn-level reward hooks: one implementation, used online (a wrapper) and offline (finished trajectories).

A :class:`TurnRewardHook` computes one reward per turn of a trajectory. Its single required method,
:meth:`TurnRewardHook.score`, takes a *batch* of :class:`~agentgym.trajectory.Trajectory` objects and returns
``[[reward per turn] per trajectory]`` — model-based hooks (IGPO, OPRL) score the whole batch in a few
forward passes. The same hook then runs two ways:

* **online**: :class:`TurnRewardWrapper` wraps an env with one or several hooks. After every step it adds
  ``info["turn_rewards"][hook.name]`` (a float, for the turn just played; the env's own ``reward`` is left
  untouched) on a copy of ``info``. It keeps the episode so far as a partial trajectory and asks each hook
  for the last turn's reward (:meth:`TurnRewardHook.score_last_turn`, which hooks may speed up with a
  per-episode cache). A turn's reward is computed from the episode *so far*; a hook whose reward for a turn
  depends on the outcome (RLVMR's planning credit, say) is rescored on the finished episode, and the
  step that ends the episode also carries ``info["episode_turn_rewards"][name]``: the rewards of every turn,
  equal to what the offline path gives.
* **offline**: :func:`annotate` scores saved trajectories (``agentgym.trajectory.load_jsonl``) and writes
  ``turn.turn_rewards[hook.name]`` (and the details, below); the trainer's
  :func:`agentgym.baselines.trainer_common.score_hooks` calls it on each rollout batch.

Hooks read what the agent *wrote*, :attr:`Turn.agent_text <agentgym.trajectory.Turn.agent_text>` (the raw
reply when recorded, else the action), and parse it with the one parser of the gym,
:func:`agentgym.actions.parse_reply`; the wrapper sends the parsed action to the env and records both.

A trajectory's last turn is its *final* turn only when it terminated or was truncated; an unfinished
(online, partial) trajectory has no final turn yet. Hooks that reward the final turn differently
(IGPO's outcome reward) use :func:`is_final_turn`.

Hooks may also report per-turn details (RLVMR's tag, PRS's stage flags) with :meth:`TurnRewardHook.details`;
online they go to ``info["turn_reward_details"][name]`` (so a rollout records them in ``turn.info``), and
:func:`annotate` writes them to the same place, ``turn.info["turn_reward_details"][name]``.

Training lifecycle (what :mod:`agentgym.baselines.train_pg` does, in this order, each step): roll out the
batch; :func:`annotate` it with every hook (a model-based hook scores with the policy as it generated the
batch); compute advantages and update the policy; then call :meth:`TurnRewardHook.on_update` on each hook
with that batch. That is where a hook learns or moves on (OPRL takes one DPO step of its PRM and syncs
its reference to the updated policy, PRS advances its curriculum); it returns metrics. Hooks with
:attr:`~TurnRewardHook.requires_policy` (IGPO, OPRL) are built by ``cls.from_policy(policy, tokenizer,
**kwargs)`` and may keep a reference to the policy: the trainer updates it in place.

Example:
    >>> import gymnasium as gym, agentgym
    >>> from agentgym.wrappers import TurnRewardWrapper, RLVMRHook, ProgressiveRewardHook
    >>> env = TurnRewardWrapper(gym.make("agentgym/TextWorld-v0", split="test"),
    ...                         [RLVMRHook(), ProgressiveRewardHook()])
    >>> obs, info = env.reset(seed=0)
    >>> obs, r, term, trunc, info = env.step("<planning>go</planning><action>look</action>")
    >>> info["turn_rewards"]
    {'rlvmr': 0.0, 'prs_progressive': 1.0}

Change logs:
    v0: initial hook interface.
    v1: hooks read ``Turn.agent_text`` and parse with :mod:`agentgym.actions`; the wrapper records the
        reply and the parsed action as two fields; ``on_update`` lifecycle method; ``annotate`` writes
        the details; ``action_for_env`` removed (the parser decides the action).
    v2: ``requires_policy`` and ``from_policy`` for model-based hooks (built by the trainer from YAML).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import gymnasium as gym

from agentgym.actions import parse_reply
from agentgym.error import InvalidArgumentError, ResetNeeded
from agentgym.trajectory import Trajectory, Turn, jsonable


def check_choice(label: str, value: Any, legal: Sequence[Any]) -> None:
    """Raise :class:`InvalidArgumentError` naming the legal values when ``value`` is not one of them."""
    if value not in legal:
        raise InvalidArgumentError(f"{label} must be one of {tuple(legal)}, got {value!r}")


def is_final_turn(trajectory: Trajectory, index: int) -> bool:
    """Whether turn ``index`` ends the trajectory (it is the last one and the episode ended)."""
    turns = trajectory.turns
    return index == len(turns) - 1 and (turns[index].terminated or turns[index].truncated)


def ground_truth(trajectory: Trajectory) -> str | None:
    """The task's answer text (``info["ground_truth"]``) from the trajectory's infos, or None."""
    for info in [trajectory.initial_info, *(turn.info for turn in trajectory.turns)]:
        value = (info or {}).get("ground_truth")
        if value:
            return str(value)
    return None


class TurnRewardHook:
    """Base class of turn-level reward hooks (see the module docstring).

    Subclasses set :attr:`name` (the key under ``info["turn_rewards"]``) and implement :meth:`score`.
    """

    #: Key under ``info["turn_rewards"]``; instances may override it to run two configurations side by side.
    name: str = "hook"
    #: True when a turn's reward can change once later turns are known (then rescored at the episode end).
    needs_finished_episode: bool = False
    #: True for hooks built from a model (IGPO, OPRL): a trainer builds them with
    #: ``cls.from_policy(policy, tokenizer, **kwargs)`` instead of ``cls(**kwargs)``. ``from_policy``'s and
    #: the constructor's keyword parameters are plain keywords, so a trainer can check a config's kwargs
    #: against :func:`inspect.signature` before it loads any model.
    requires_policy: bool = False

    def score(self, trajectories: Sequence[Trajectory]) -> list[list[float]]:
        """Per-turn rewards of each trajectory of the batch."""
        raise NotImplementedError

    def details(self, trajectories: Sequence[Trajectory]) -> list[list[dict[str, Any]]] | None:
        """Optional per-turn details (JSON-able dicts) that explain the rewards; None if the hook has none."""
        return None

    # ------------------------------------------------------------ training lifecycle
    def on_update(self, step: int, trajectories: Sequence[Trajectory], metrics: dict[str, float]) -> dict[str, float]:
        """Called by the trainer after each policy update with ``step`` = the number of updates done (the
        logged step: 1 after the first), the batch the update used (already scored by this hook) and the
        step's metrics so far. A hook that learns or has a schedule acts here; it
        returns its own metrics (the trainer logs them under ``hooks/<name>/``). Default: nothing, ``{}``."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """What a resumed training run needs to continue exactly where this hook stands (the trainer saves it
        in each checkpoint's ``hooks.pt``): OPRL's PRM, its optimizer and reference; PRS's stage. Default:
        nothing, ``{}`` (a hook without state that changes during training)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (the trainer calls it when it resumes a checkpoint)."""
        if state:
            raise InvalidArgumentError(f"hook {self.name!r} keeps no state, but a checkpoint holds some for it")

    # ------------------------------------------------------------ online use
    def begin_episode(self, trajectory: Trajectory) -> None:
        """Called by the wrapper at reset; hooks with a per-episode cache reset it here."""

    def score_last_turn(self, trajectory: Trajectory) -> float:
        """The reward of the last turn of an episode in progress (default: score the whole prefix)."""
        return self.score([trajectory])[0][-1]


def annotate(trajectories: Sequence[Trajectory], hooks: Iterable[TurnRewardHook]) -> Sequence[Trajectory]:
    """Score trajectories with each hook, in place: ``turn.turn_rewards[hook.name]`` gets the raw reward and,
    for hooks with details, ``turn.info["turn_reward_details"][hook.name]`` the turn's details. Nothing else
    changes (``turn.reward`` stays the env's reward)."""
    for hook in _check_hooks(hooks):
        for trajectory, rewards in zip(trajectories, hook.score(trajectories), strict=True):
            if len(rewards) != len(trajectory.turns):
                raise RuntimeError(
                    f"hook {hook.name!r} returned {len(rewards)} rewards for {len(trajectory.turns)} turns"
                )
            for turn, reward in zip(trajectory.turns, rewards):
                turn.turn_rewards[hook.name] = float(reward)
        details = hook.details(trajectories)
        for trajectory, rows in zip(trajectories, details, strict=True) if details is not None else ():
            for turn, row in zip(trajectory.turns, rows, strict=True):
                turn.info.setdefault("turn_reward_details", {})[hook.name] = jsonable(row)
    return trajectories


def _check_hooks(hooks: Iterable[TurnRewardHook]) -> list[TurnRewardHook]:
    hooks = list(hooks)
    names = [getattr(hook, "name", None) for hook in hooks]
    for hook in hooks:
        if not isinstance(hook, TurnRewardHook):
            raise InvalidArgumentError(f"expected TurnRewardHook instances, got {type(hook).__name__}")
    if len(set(names)) != len(names):
        raise InvalidArgumentError(f"hook names must be unique, got {names}; set hook.name to tell them apart")
    return hooks


#: The info keys hook wrappers add (not recorded as the env's own info of a turn).
_HOOK_KEYS = ("turn_rewards", "turn_reward_details", "episode_turn_rewards")


class TurnRewardWrapper(gym.Wrapper):
    """Adds ``info["turn_rewards"][name]`` for each hook after every step (the env reward is unchanged).

    Use it to get turn-level rewards online in an ``env.step`` loop or inside
    :func:`agentgym.rollout.rollout` (which copies ``info["turn_rewards"]`` into each recorded turn).
    Several hooks compose, each under its own name. Wrapping twice also works (the outer wrapper adds its
    names to the same dict), but the inner wrapper then records the command the outer one sent, so keep
    hooks that read the agent's raw output (RLVMR, PRS) in the outermost wrapper, or use one wrapper.

    Args:
        env: the env to wrap.
        hooks: one hook or a sequence of hooks with distinct names.
        action_parser: maps the agent's output to the command sent to the env. Default: the gym's parser,
            ``parse_reply(text, "auto").action`` (:mod:`agentgym.actions`; ``<action>`` blocks, ReAct
            ``Action:`` lines, JSON tool calls, plain commands), or the text itself when it finds none.
            The recorded turn keeps both: ``reply`` (the full output, what the hooks read) and
            ``action`` (the command sent).

    Change logs:
        v0: initial version.
        v1: the default parser is :func:`agentgym.actions.parse_reply`; turns record ``reply`` and the
            parsed ``action`` separately (the action used to be the full output).
    """

    def __init__(
        self,
        env: gym.Env,
        hooks: TurnRewardHook | Sequence[TurnRewardHook],
        *,
        action_parser: Callable[[str], str] | None = None,
    ):
        super().__init__(env)
        self.hooks = _check_hooks([hooks] if isinstance(hooks, TurnRewardHook) else hooks)
        self.action_parser = action_parser
        self.trajectory: Trajectory | None = None

    def _parse(self, text: str) -> str:
        if self.action_parser is not None:
            return self.action_parser(text)
        return parse_reply(text, "auto").action or text

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.trajectory = Trajectory(
            episode_id="online",
            env_id=getattr(self.env.spec, "id", "") if self.env.spec else "",
            task_id=str(info.get("task_id", "")),
            seed=seed,
            agent="online",
            initial_observation=obs,
            initial_info=jsonable(info),
        )
        for hook in self.hooks:
            hook.begin_episode(self.trajectory)
        return obs, info

    def step(self, action: str):
        if self.trajectory is None:
            raise ResetNeeded("step() needs an episode in progress: call reset() first")
        text = action if isinstance(action, str) else str(action)
        command = self._parse(text) if isinstance(action, str) else action
        obs, reward, terminated, truncated, info = self.env.step(command)
        info = copy.copy(info)
        turn = Turn(
            observation=obs,
            action=command if isinstance(command, str) else text,
            reply=text,
            reward=float(reward),
            terminated=bool(terminated),
            truncated=bool(truncated),
            info=jsonable({k: v for k, v in info.items() if k not in _HOOK_KEYS}),
        )
        self.trajectory.turns.append(turn)
        turn_rewards = dict(info.get("turn_rewards") or {})
        details_out = dict(info.get("turn_reward_details") or {})
        done = bool(terminated or truncated)
        episode_out = dict(info.get("episode_turn_rewards") or {}) if done else {}
        for hook in self.hooks:
            if done and hook.needs_finished_episode:
                rewards = hook.score([self.trajectory])[0]
                value = rewards[-1]
            else:
                value = hook.score_last_turn(self.trajectory)
                rewards = None
            turn_rewards[hook.name] = turn.turn_rewards[hook.name] = float(value)
            details = hook.details([self.trajectory])
            if details is not None:
                details_out[hook.name] = details[0][-1]
            if done:
                episode_out[hook.name] = (
                    [float(r) for r in rewards]
                    if rewards is not None
                    else [t.turn_rewards.get(hook.name, 0.0) for t in self.trajectory.turns]
                )
        info["turn_rewards"] = turn_rewards
        if details_out:
            info["turn_reward_details"] = details_out
        if done:
            info["episode_turn_rewards"] = episode_out
        return obs, reward, terminated, truncated, info
