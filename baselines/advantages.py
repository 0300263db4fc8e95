"""The estimator registry: one table of advantage estimators, their typed inputs and how they use hooks.

The trainer builds an :class:`EstimatorInputs` once per step from the batch and calls
:func:`compute_advantages`; :func:`check_estimator` validates a config's ``estimator`` and
``estimator_kwargs`` (against the pure function's signature) before any model loads. Every estimator is an
adapter around a pure function of :mod:`agentgym.baselines.estimators`: it only builds that function's
arguments from the inputs, so the registry's advantages equal the pure function's on the same numbers.
:class:`EstimatorInputs` lives in :mod:`agentgym.baselines.estimator_inputs` and is re-exported here.

How task and hook rewards combine (``Estimator.rule``; the table is in the README):

* the **task reward** of a turn is ``env_reward_weight * reward + info_reward_weight * info_reward``
  (``EstimatorInputs.env_rewards``, built by the trainer); hook rewards never enter it;
* estimators that consume **no hook** (grpo, rloo, trloo, gigpo, empg, vspo) see every configured hook as
  reward shaping: per turn ``task reward + sum over hooks of weight * hook reward``
  (:meth:`EstimatorInputs.shaped_rewards`);
* estimators that **consume a hook** (rlvmr, oprl, igpo) keep its rewards apart, as the papers do, and use
  its ``weight`` as the mixing weight; the other hooks are shaping of the task reward:
  rlvmr ``A = A^traj + w A^MR`` (code mode ``weight = w``; paper mode ``alpha = 1 / (1 + w)``, so
  ``alpha (A^traj + format) + (1 - alpha) A^MR`` is proportional to the same mix and ``w = 1`` gives the
  paper's ``alpha = 0.5``); oprl ``A = A^E + w A^S`` (``alpha = w``); igpo has no mixing weight (separate
  normalisation would cancel one), its hook weight is unused;
* gdpo normalises the task return and each hook's return as separate components (weights 1 and the hook
  weights) instead of adding them.

``gamma`` (the trainer's discount) reaches the estimators with turn-level returns: trloo, gigpo, igpo. The
others use undiscounted trajectory returns, as their papers do.

Example:
    >>> from agentgym.baselines.advantages import check_estimator, ESTIMATORS
    >>> check_estimator("gigpo", {"invalid_penalty": 0.1}, hook_names=[])
    >>> ESTIMATORS["oprl"].consumes_hook
    'oprl'

Change logs:
    v0: initial version (issue 16).
    v1: EstimatorInputs moved to :mod:`agentgym.baselines.estimator_inputs` (issue 18), re-exported; no
        behaviour change.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from agentgym.baselines import estimators as est
from agentgym.baselines.checks import annotation, did_you_mean, literal_values
from agentgym.baselines.estimator_inputs import EstimatorInputs
from agentgym.baselines.vspo import VSPOState
from agentgym.error import InvalidArgumentError
from agentgym.wrappers.hooks import check_choice

__all__ = [
    "ESTIMATORS",
    "Estimator",
    "EstimatorInputs",
    "VSPOState",
    "accepted_kwargs",
    "check_estimator",
    "compute_advantages",
    "make_state",
]


@dataclasses.dataclass(frozen=True)
class Estimator:
    """One registry entry. ``fn(inputs, *, gamma, state, **kwargs)`` returns one per-turn array per
    trajectory; ``pure``'s signature, minus ``fills`` (what ``fn`` passes itself), gives the accepted
    ``estimator_kwargs``, plus ``options`` (the adapter's own kwargs: name -> legal values) and, for a
    stateful estimator, the keyword arguments of ``new_state``."""

    name: str
    fn: Callable[..., list[np.ndarray]]
    pure: Callable[..., Any]
    consumes_hook: str | None
    rule: str
    new_state: Callable[..., Any] | None = None
    fills: frozenset[str] = frozenset()
    options: Mapping[str, tuple] = dataclasses.field(default_factory=dict)


# --------------------------------------------------------------------------- adapters
def _grpo(inputs: EstimatorInputs, *, gamma: float, state: Any, **kw: Any) -> list[np.ndarray]:
    return est.grpo_advantages(inputs.shaped_returns(), inputs.groups, num_turns=inputs.num_turns, **kw)


def _rloo(inputs: EstimatorInputs, *, gamma: float, state: Any, **kw: Any) -> list[np.ndarray]:
    return est.rloo_advantages(inputs.shaped_returns(), inputs.groups, num_turns=inputs.num_turns, **kw)


def _trloo(inputs: EstimatorInputs, *, gamma: float, state: Any, **kw: Any) -> list[np.ndarray]:
    return est.trloo_advantages(inputs.shaped_rewards(), inputs.groups, gamma=gamma, **kw)


def _gigpo(inputs: EstimatorInputs, *, gamma: float, state: Any, **kw: Any) -> list[np.ndarray]:
    return est.gigpo_advantages(
        inputs.shaped_rewards(), inputs.groups, inputs.anchors, gamma=gamma, invalid=inputs.invalid, **kw
    )


def _empg(inputs: EstimatorInputs, *, gamma: float, state: Any, **kw: Any) -> list[np.ndarray]:
    base = est.grpo_advantages(inputs.shaped_returns(), inputs.groups, num_turns=inputs.num_turns)
    return est.empg_advantages(base, inputs.entropies, **kw)


def _gdpo(inputs: EstimatorInputs, *, gamma: float, state: Any, **kw: Any) -> list[np.ndarray]:
    hooks = list(inputs.hook_weights)
    components = [
        [outcome, *(float(sum(inputs.hook_rewards[name][i])) for name in hooks)]
        for i, outcome in enumerate(inputs.outcomes)
    ]
    weights = [1.0, *(inputs.hook_weights[name] for name in hooks)]
    return est.gdpo_advantages(components, inputs.groups, weights=weights, num_turns=inputs.num_turns, **kw)


def _details(inputs: EstimatorInputs, hook: str, keys: Sequence[str]) -> list[list[dict]]:
    for i, rows in enumerate(inputs.hook_details[hook]):
        for k, row in enumerate(rows):
            missing = [key for key in keys if key not in row]
            if missing:
                raise InvalidArgumentError(
                    f"trajectory {i} turn {k}: turn_reward_details[{hook!r}] lacks {missing} (has "
                    f"{sorted(row)}); score the batch with the {hook!r} hook (its details) first"
                )
    return [list(rows) for rows in inputs.hook_details[hook]]


def _rlvmr(inputs: EstimatorInputs, *, gamma: float, state: Any, **kw: Any) -> list[np.ndarray]:
    details = _details(inputs, "rlvmr", ("tag", "mr_reward", "format_reward"))
    weight = inputs.hook_weights["rlvmr"]
    return est.rlvmr_advantages(
        inputs.shaped_returns(exclude="rlvmr"),
        [[row["tag"] for row in rows] for rows in details],
        [[float(row["mr_reward"]) for row in rows] for rows in details],
        inputs.groups,
        format_rewards=[[float(row["format_reward"]) for row in rows] for rows in details],
        alpha=1.0 / (1.0 + weight),
        weight=weight,
        **kw,
    )


def _oprl(inputs: EstimatorInputs, *, gamma: float, state: Any, **kw: Any) -> list[np.ndarray]:
    return est.oprl_advantages(
        inputs.shaped_returns(exclude="oprl"),
        inputs.hook_rewards["oprl"],
        inputs.groups,
        alpha=inputs.hook_weights["oprl"],
        **kw,
    )


def _igpo(inputs: EstimatorInputs, *, gamma: float, state: Any, outcome: str = "task", **kw: Any) -> list[np.ndarray]:
    check_choice("igpo outcome", outcome, ("task", "hook"))
    rewards = [list(row) for row in inputs.hook_rewards["igpo"]]
    if outcome == "task":
        for row, value, final in zip(rewards, inputs.shaped_returns(exclude="igpo"), inputs.finals):
            if final and row:
                row[-1] = float(value)
    return est.igpo_advantages(rewards, inputs.groups, gamma=gamma, finals=inputs.finals, **kw)


def _vspo(inputs: EstimatorInputs, *, gamma: float, state: Any, **kw: Any) -> list[np.ndarray]:
    if not isinstance(state, VSPOState):
        raise InvalidArgumentError(
            "estimator 'vspo' needs state=ESTIMATORS['vspo'].new_state() (or make_state), kept across steps; "
            f"got {type(state).__name__}"
        )
    kw = {key: value for key, value in kw.items() if key not in _state_params("vspo")}
    returns = inputs.shaped_returns()
    raw = est.vspo_advantages(returns, inputs.groups, num_turns=inputs.num_turns, rms=None, **kw)
    state.observe_advantages([float(a[0]) if len(a) else 0.0 for a in raw], inputs.groups)
    return est.vspo_advantages(returns, inputs.groups, num_turns=inputs.num_turns, rms=state.rms, **kw)


_SHAPING = "per turn r = task reward + sum of weight * hook reward (hooks are reward shaping)"


def _entry(
    name: str,
    fn: Callable,
    pure: Callable,
    rule: str,
    fills: str,
    consumes_hook: str | None = None,
    **more: Any,
) -> Estimator:
    return Estimator(name, fn, pure, consumes_hook, rule, fills=frozenset(fills.split()), **more)


ESTIMATORS: dict[str, Estimator] = {
    e.name: e
    for e in (
        _entry(
            "grpo",
            _grpo,
            est.grpo_advantages,
            f"{_SHAPING}; A = (R - group mean) / (group std + eps) of R = sum of r, on every turn",
            "outcomes groups num_turns",
        ),
        _entry(
            "rloo",
            _rloo,
            est.rloo_advantages,
            f"{_SHAPING}; A = R - the mean R of the group's other rollouts, on every turn",
            "outcomes groups num_turns",
        ),
        _entry(
            "trloo",
            _trloo,
            est.trloo_advantages,
            f"{_SHAPING}; A_t = the discounted return from t - the mean of the group's other returns at t",
            "turn_rewards groups gamma loss_mask",
        ),
        _entry(
            "gigpo",
            _gigpo,
            est.gigpo_advantages,
            f"{_SHAPING}; A = episode GRPO of sum r + step_weight * the anchor-state group advantage "
            "of the discounted return, minus invalid_penalty on turns whose action was invalid",
            "step_rewards groups anchors gamma invalid outcomes",
        ),
        _entry(
            "empg",
            _empg,
            est.empg_advantages,
            f"{_SHAPING}; GRPO advantages of sum r rescaled per turn by its entropy (mean -logp) "
            "plus the future-clarity bonus",
            "advantages step_entropies",
        ),
        _entry(
            "gdpo",
            _gdpo,
            est.gdpo_advantages,
            "components = the task return and each hook's raw return (not added together), each "
            "normalised in its group, summed with weights 1 and the hook weights, then over the batch",
            "rewards groups weights num_turns",
        ),
        _entry(
            "rlvmr",
            _rlvmr,
            est.rlvmr_advantages,
            "GRPO-MR: A = A^traj(task return + other hooks as shaping; format penalty unnormalised) "
            "+ w * A^MR(rlvmr tag rewards normalised per tag), w = the rlvmr hook's weight "
            "(paper mode: alpha = 1 / (1 + w))",
            "outcomes tags tag_rewards groups format_rewards alpha weight",
            consumes_hook="rlvmr",
        ),
        _entry(
            "oprl",
            _oprl,
            est.oprl_advantages,
            "A = A^E(task return + other hooks as shaping) + w * A^S(the oprl hook's PRM step "
            "rewards), w = the oprl hook's weight",
            "outcomes step_rewards groups alpha",
            consumes_hook="oprl",
        ),
        _entry(
            "igpo",
            _igpo,
            est.igpo_advantages,
            "turn rewards = the igpo hook's information gains on non-final turns and, on the final "
            "turn, the task return + other hooks as shaping (outcome: hook = the hook's own outcome "
            "reward), normalised per group and discounted; the igpo hook's weight is unused",
            "turn_rewards groups gamma finals",
            consumes_hook="igpo",
            options={"outcome": ("task", "hook")},
        ),
        _entry(
            "vspo",
            _vspo,
            est.vspo_advantages,
            f"{_SHAPING}; GRPO advantages of sum r clipped to +-clip * the running RMS of advantages; "
            "the trainer re-rolls zero-variance groups with tasks drawn by task value",
            "outcomes groups num_turns rms",
            new_state=VSPOState,
        ),
    )
}


# --------------------------------------------------------------------------- validation and entry points
def _lookup(name: str) -> Estimator:
    if name not in ESTIMATORS:
        hint = did_you_mean(name, ESTIMATORS)
        raise InvalidArgumentError(f"unknown estimator {name!r}{hint} (valid: {', '.join(ESTIMATORS)})")
    return ESTIMATORS[name]


def _state_params(name: str) -> tuple[str, ...]:
    factory = ESTIMATORS[name].new_state
    if factory is None:
        return ()
    return tuple(p.name for p in inspect.signature(factory).parameters.values() if p.kind is p.KEYWORD_ONLY)


def accepted_kwargs(name: str) -> tuple[str, ...]:
    """The ``estimator_kwargs`` names estimator ``name`` accepts (in signature order)."""
    entry = _lookup(name)
    own = [p for p in inspect.signature(entry.pure).parameters if p not in entry.fills]
    return (*own, *entry.options, *_state_params(name))


def _literal_choices(entry: Estimator, key: str) -> tuple | None:
    if key in entry.options:
        return tuple(entry.options[key])
    return literal_values(annotation(entry.pure, key))


def check_estimator(name: str, kwargs: Mapping[str, Any], hook_names: Sequence[str]) -> None:
    """Raise :class:`InvalidArgumentError` for an unknown estimator (listing the valid ones, with a
    did-you-mean), a kwarg the estimator does not accept (listing the accepted ones; the arguments the
    registry fills from the batch or a hook weight are named as such), a value outside a ``Literal``
    choice, or a consumed hook that is not configured."""
    entry = _lookup(name)
    accepted = accepted_kwargs(name)
    for key, value in dict(kwargs or {}).items():
        if key in entry.fills:
            source = "the batch or the hook weight" if entry.consumes_hook else "the batch"
            raise InvalidArgumentError(
                f"estimator_kwargs {key!r} of estimator {name!r} is filled by the registry from {source}; "
                f"accepted kwargs: {', '.join(accepted)}"
            )
        if key not in accepted:
            raise InvalidArgumentError(
                f"unknown estimator_kwargs {key!r} for estimator {name!r}{did_you_mean(key, accepted)} "
                f"(accepted: {', '.join(accepted) or 'none'})"
            )
        choices = _literal_choices(entry, key)
        if choices is not None:
            check_choice(f"estimator_kwargs {key!r} of estimator {name!r}", value, choices)
    if entry.consumes_hook and entry.consumes_hook not in hook_names:
        raise InvalidArgumentError(
            f"estimator {name!r} consumes the {entry.consumes_hook!r} hook; add "
            f"{{name: {entry.consumes_hook}}} to hooks (configured: {list(hook_names) or 'none'})"
        )


def make_state(name: str, kwargs: Mapping[str, Any] | None = None) -> Any:
    """A fresh state for a stateful estimator (``new_state`` with its own kwargs out of ``kwargs``), else
    None. Keep it across steps (and in checkpoints: ``VSPOState.to_dict``)."""
    entry = _lookup(name)
    if entry.new_state is None:
        return None
    own = set(_state_params(name))
    return entry.new_state(**{k: v for k, v in dict(kwargs or {}).items() if k in own})


def compute_advantages(
    name: str,
    inputs: EstimatorInputs,
    *,
    gamma: float,
    kwargs: Mapping[str, Any] | None = None,
    state: Any = None,
) -> list[np.ndarray]:
    """Per-turn advantages of estimator ``name`` on ``inputs``: one float array per trajectory."""
    entry = _lookup(name)
    check_estimator(name, kwargs or {}, list(inputs.hook_weights))
    if not inputs.groups:
        return []
    out = entry.fn(inputs, gamma=gamma, state=state, **dict(kwargs or {}))
    result = [np.asarray(a, dtype=np.float64) for a in out]
    if [len(a) for a in result] != list(inputs.num_turns):
        got = [len(a) for a in result]
        raise RuntimeError(f"estimator {name!r} returned {got} turns for {list(inputs.num_turns)}")
    return result
