"""Small pieces the LLM trainers share: envs, hooks from the config, task rewards, batch metrics, the policy,
VSPO's sampler, evaluation (checkpoints: :mod:`agentgym.baselines.trainer_io`; the run folder and metric
names: :mod:`agentgym.baselines.runs`).

A trainer's ``Args`` provides the attributes these functions read (``env_id``, ``env_kwargs``, ``max_turns``,
``env_reward_weight``, ``info_reward``, ``info_reward_weight``, ``num_workers``, ``in_process``,
``token_budget``, ``eval_split``, ``eval_episodes``, ``model``, ``lora``, ...); see
:class:`agentgym.baselines.train_pg.Args`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import inspect
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agentgym.baselines.checks import annotation, did_you_mean, literal_values
from agentgym.error import AgentGymError, InvalidArgumentError
from agentgym.rollout import EnvPool, group_specs, rollout
from agentgym.trajectory import Trajectory


# --------------------------------------------------------------------------- envs, hooks, rewards
def make_env(env_id: str, **kwargs: Any) -> Any:
    """``gym.make(env_id, ...)``, or the class named by ``module:Class`` (an env that is not registered)."""
    if ":" in env_id and "/" not in env_id:
        module, _, name = env_id.partition(":")
        return getattr(importlib.import_module(module), name)(**kwargs)
    import gymnasium as gym

    import agentgym  # noqa: F401  (registers the ids)

    return gym.make(env_id, **kwargs)


def env_factory(args: Any, split: str) -> Callable[[], Any]:
    """A picklable factory of the training env on ``split`` (for worker processes)."""
    return functools.partial(make_env, args.env_id, split=split, max_turns=args.max_turns, **args.env_kwargs)


def open_pool(args: Any, split: str, agent: Any, episodes: int) -> EnvPool:
    """Worker processes for ``split`` that a trainer keeps for all its updates (engines start once): at most
    ``num_workers`` processes of at most ``envs_per_worker`` envs each, no more envs than ``episodes``, so up
    to ``num_workers * envs_per_worker`` episodes are in flight and join one generation batch.

    They carry the lazily computed info values the agent reads (``agent.info_keys``) and the field
    ``info_reward`` names; no other lazy value (an expert plan, a valid-action listing) is computed.
    """
    info_keys = set(agent.info_keys)
    if args.info_reward:
        info_keys.add(args.info_reward.split(".")[0])
    per_worker = getattr(args, "envs_per_worker", 1)
    workers = max(1, min(args.num_workers, -(-episodes // per_worker)))
    return EnvPool(
        env_factory(args, split),
        workers,
        envs_per_worker=max(1, min(per_worker, -(-episodes // workers))),
        in_process=args.in_process,
        info_keys=info_keys,
    )


def split_task_ids(args: Any, split: str) -> list[str]:
    env = env_factory(args, split)()
    try:
        return list(env.unwrapped.task_ids)
    finally:
        env.close()


#: Hook names a config may use; any other name is read as ``module:Class``.
HOOKS = {
    "rlvmr": "agentgym.wrappers:RLVMRHook",
    "prs_progressive": "agentgym.wrappers:ProgressiveRewardHook",
    "oprl": "agentgym.wrappers:OPRLHook",
    "igpo": "agentgym.wrappers:IGPOHook",
}
#: The keys of one ``hooks:`` entry: the hook, its weight, its constructor kwargs, a local model for a hook
#: that needs one (default: the policy being trained).
HOOK_SPEC_KEYS = ("name", "weight", "kwargs", "model")


@dataclasses.dataclass(frozen=True)
class HookSpec:
    """A built hook and the weight the config gives it (the estimator decides how the weight is used)."""

    hook: Any
    weight: float


def _hook_class(name: Any, where: str) -> type:
    """The hook class a spec's ``name`` refers to (a :data:`HOOKS` name or ``module:Class``)."""
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(
            f"{where}: 'name' must be a hook name ({', '.join(HOOKS)}) or 'module:Class', got {name!r}"
        )
    if name not in HOOKS and ":" not in name:
        raise InvalidArgumentError(
            f"{where}: unknown hook {name!r}{did_you_mean(name, HOOKS)} Valid hooks: {', '.join(HOOKS)}, or 'module:Class'"
        )
    module, _, attr = HOOKS.get(name, name).partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise InvalidArgumentError(f"{where}: cannot import hook {name!r} ({exc})") from exc
    from agentgym.wrappers import TurnRewardHook

    if not (isinstance(cls, type) and issubclass(cls, TurnRewardHook)):
        raise InvalidArgumentError(f"{where}: {name!r} is not a TurnRewardHook subclass")
    return cls


def needs_policy(cls: type) -> bool:
    """Whether a hook class is built from a model (``requires_policy``: IGPO, OPRL) by ``from_policy``."""
    return bool(getattr(cls, "requires_policy", False))


def _accepted_kwargs(cls: type) -> tuple[set[str] | None, set[str]]:
    """``(accepted keyword names or None for any, required names)`` of the call that builds the hook:
    ``from_policy(policy, tokenizer, **kwargs)`` (its own keywords and, if it forwards ``**kwargs``, the
    constructor's keyword-only ones) for a model-based hook, else the constructor."""
    if needs_policy(cls):
        params = list(inspect.signature(cls.from_policy).parameters.values())[2:]  # after policy, tokenizer
        accepted = {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        required = {p.name for p in params if p.default is p.empty and p.name in accepted}
        if any(p.kind is p.VAR_KEYWORD for p in params):
            init = inspect.signature(cls.__init__).parameters.values()
            if any(p.kind is p.VAR_KEYWORD for p in init):
                return None, required
            accepted |= {p.name for p in init if p.kind is p.KEYWORD_ONLY}
        return accepted, required
    params = [
        p for p in list(inspect.signature(cls.__init__).parameters.values())[1:] if p.kind not in (p.VAR_POSITIONAL,)
    ]
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None, set()
    return {p.name for p in params}, {p.name for p in params if p.default is p.empty}


def _literal_choices(cls: type, key: str) -> tuple | None:
    """The legal values of keyword ``key`` of the call that builds ``cls`` when it is annotated ``Literal``
    (``from_policy``'s own annotation first: it may allow fewer values than the constructor)."""
    builders = [cls.from_policy, cls.__init__] if needs_policy(cls) else [cls.__init__]
    for builder in builders:
        hint = annotation(builder, key)
        if hint is not None:
            return literal_values(hint)
    return None


def hook_names(specs: list[dict[str, Any]]) -> list[str]:
    """The ``hook.name`` each (valid) spec will have: what ``turn.turn_rewards`` and the estimators key on."""
    return [getattr(_hook_class(spec["name"], "hooks"), "name", spec["name"]) for spec in specs]


def validate_hook_specs(specs: Any) -> None:
    """Check ``hooks:`` without building anything (no model is loaded): each entry is a mapping with the keys
    of :data:`HOOK_SPEC_KEYS`, a known hook, a numeric weight, kwargs its constructor (or ``from_policy``)
    accepts with the required ones present, ``model`` only for a model-based hook, distinct hook names.
    Raises :class:`~agentgym.error.InvalidArgumentError` naming the entry and the key."""
    if not isinstance(specs, (list, tuple)):
        raise InvalidArgumentError(f"hooks must be a list of {{name, weight, kwargs, model}}, got {specs!r}")
    for k, spec in enumerate(specs):
        where = f"hooks[{k}]"
        if not isinstance(spec, dict) or "name" not in spec:
            raise InvalidArgumentError(f"{where} must be a mapping with a 'name' key, got {spec!r}")
        for key in spec:
            if key not in HOOK_SPEC_KEYS:
                raise InvalidArgumentError(
                    f"{where}: unknown key {key!r}{did_you_mean(key, HOOK_SPEC_KEYS)} A hook entry has keys {', '.join(HOOK_SPEC_KEYS)}"
                )
        cls = _hook_class(spec["name"], where)
        where = f"{where} ({spec['name']})"
        if not isinstance(spec.get("weight", 1.0), (int, float)) or isinstance(spec.get("weight"), bool):
            raise InvalidArgumentError(f"{where}: weight must be a number, got {spec['weight']!r}")
        kwargs = spec.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            raise InvalidArgumentError(f"{where}: kwargs must be a mapping, got {kwargs!r}")
        accepted, required = _accepted_kwargs(cls)
        if accepted is not None:
            for key in kwargs:
                if key not in accepted:
                    raise InvalidArgumentError(
                        f"{where}: unknown kwarg {key!r}{did_you_mean(key, sorted(accepted))} "
                        f"{cls.__name__} accepts: {', '.join(sorted(accepted))}"
                    )
        for key, value in kwargs.items():
            choices = _literal_choices(cls, key)
            if choices is not None and value not in choices:
                raise InvalidArgumentError(f"{where}: kwarg {key!r} must be one of {list(choices)}, got {value!r}")
        missing = sorted(required - set(kwargs))
        if missing:
            raise InvalidArgumentError(f"{where}: {cls.__name__} needs the kwargs {missing}")
        model = spec.get("model")
        if model is not None and not needs_policy(cls):
            raise InvalidArgumentError(f"{where}: 'model' is only for model-based hooks; {cls.__name__} uses none")
        if model is not None and not (model == "smollm2" or Path(str(model)).is_dir()):
            raise InvalidArgumentError(f"{where}: 'model' must be a local model folder or 'smollm2', got {model!r}")
    names = hook_names(list(specs))
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InvalidArgumentError(f"hooks: each hook may appear once, got {duplicates} twice")


def build_hooks(specs: list[dict[str, Any]], *, policy: Any, tokenizer: Any) -> list[HookSpec]:
    """The configured hooks. A model-based hook comes from ``cls.from_policy(policy, tokenizer, **kwargs)``:
    the policy being trained (updated in place, so the hook sees every update), or the local model folder
    the spec's ``model`` names (loaded with :func:`agentgym.wrappers.lm.load_causal_lm`, put on the policy's
    device). Any other hook is ``cls(**kwargs)``."""
    validate_hook_specs(specs)
    out = []
    for spec in specs:
        cls, kwargs = _hook_class(spec["name"], "hooks"), dict(spec.get("kwargs") or {})
        if needs_policy(cls):
            model, tok = policy, tokenizer
            if spec.get("model") is not None:
                from agentgym.wrappers.lm import load_causal_lm

                model, tok = load_causal_lm(spec["model"])
                model.to(next(policy.parameters()).device)
            hook = cls.from_policy(model, tok, **kwargs)
        else:
            hook = cls(**kwargs)
        out.append(HookSpec(hook, float(spec.get("weight", 1.0))))
    return out


def score_hooks(trajectories: list[Trajectory], hook_specs: list[HookSpec]) -> None:
    """Score the batch with every hook, in place (:func:`agentgym.wrappers.annotate`): each turn gets
    ``turn.turn_rewards[name]`` (the raw hook reward) and, for hooks with details (RLVMR's tags, PRS's
    stages), ``turn.info["turn_reward_details"][name]``. Hooks read what the agent wrote
    (``turn.agent_text``); the env rewards are left untouched."""
    if hook_specs:
        from agentgym.wrappers import annotate

        annotate(trajectories, [spec.hook for spec in hook_specs])


def info_value(info: dict[str, Any], key: str | None) -> float:
    """The number at a dotted ``key`` of ``info`` (0 when absent or ``key`` is None)."""
    if not key:
        return 0.0
    value: Any = info
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return float(value or 0.0)


def task_rewards(trajectories: list[Trajectory], args: Any) -> list[list[float]]:
    """Per-turn task rewards: ``env_reward_weight * reward + info_reward_weight * info[info_reward]``.

    Hook rewards are not part of them: each estimator combines them with the hooks' rewards its own way
    (:mod:`agentgym.baselines.advantages`)."""
    return [
        [
            args.env_reward_weight * turn.reward + args.info_reward_weight * info_value(turn.info, args.info_reward)
            for turn in t.turns
        ]
        for t in trajectories
    ]


def rollout_metrics(trajectories: list[Trajectory], inputs: Any, gen_batches: Sequence[int] = ()) -> dict[str, float]:
    """``rollout/`` and ``hooks/<name>/mean`` metrics of a batch (and ``perf/generated_tokens``); the names
    are those of :mod:`agentgym.baselines.runs`.

    ``inputs`` is the batch's :class:`~agentgym.baselines.advantages.EstimatorInputs`; ``gen_batches`` the
    generation batch sizes of the rollout (each ``on_turn(n)`` of :func:`agentgym.rollout.rollout`):
    ``rollout/gen_batch_mean`` and ``rollout/gen_batch_max`` show whether every waiting episode joined one
    batch (0 when none was reported).
    ``rollout/task_return`` is the mean task return (the sum of :func:`task_rewards`: weighted env reward
    plus ``info_reward``, no hook reward); ``rollout/episode_return`` the mean sum of the env's own rewards;
    ``hooks/<name>/mean`` the mean raw per-turn reward of each hook."""
    from agentgym.baselines.estimators import zero_variance_fraction

    infos = [turn.agent_info or {} for t in trajectories for turn in t.turns] or [{}]
    returns = list(inputs.outcomes)
    metrics = {
        "rollout/task_return": float(np.mean(returns)),
        "rollout/episode_return": float(np.mean([t.total_reward for t in trajectories])),
        "rollout/success_rate": float(np.mean([t.won for t in trajectories])),
        "rollout/episode_turns": float(np.mean([len(t.turns) for t in trajectories])),
        "rollout/zero_variance_groups": float(zero_variance_fraction(returns, list(inputs.groups))),
        "rollout/near_miss_rate": float(np.mean([bool(i.get("near_miss")) for i in infos])),
        "rollout/format_fallback_rate": float(np.mean([i.get("parse") == "fallback" for i in infos])),
        "rollout/response_truncated_rate": float(np.mean([bool(i.get("response_truncated")) for i in infos])),
        "rollout/token_budget_exceeded": float(np.mean([t.token_budget_exceeded for t in trajectories])),
        "rollout/gen_batch_mean": float(np.mean(gen_batches)) if len(gen_batches) else 0.0,
        "rollout/gen_batch_max": float(max(gen_batches, default=0)),
        "perf/generated_tokens": float(
            sum(len(turn.response_token_ids or ()) for t in trajectories for turn in t.turns)
        ),
    }
    for name, rows in inputs.hook_rewards.items():
        values = [value for row in rows for value in row]
        metrics[f"hooks/{name}/mean"] = float(np.mean(values)) if values else 0.0
    return metrics


class TokenDriftError(AgentGymError, RuntimeError):
    """A rollout turn whose prompt ids do not start with the previous turn's prompt and response ids, with
    ``token_drift: raise`` (:func:`check_token_drift`)."""


def check_token_drift(trajectories: list[Trajectory], mode: str) -> tuple[list[bool], dict[str, float]]:
    """The re-tokenization drift of a rollout (:func:`agentgym.baselines.token_chat.drift_report`) and which
    trajectories the update may use.

    ``mode``: ``log`` keeps every trajectory; ``skip`` leaves out those with a drifted turn (counted as
    ``rollout/token_drift_skipped``); ``raise`` stops with :class:`TokenDriftError` naming the first drifted
    episode and turn. A drifted history is a prompt the model is trained on as if it had produced it, which
    it did not token for token (the field's reported cause of multi-turn KL spikes); with the append prompt
    builder there is none. Returns ``(keep flags, metrics)``."""
    from agentgym.baselines.token_chat import drift_report, drifting_turns, token_drift

    metrics = drift_report(trajectories)
    drifted = [token_drift(t)[1] > 0 for t in trajectories]
    if mode == "raise" and any(drifted):
        found = drifting_turns(trajectories)
        episode, turn = found[0]
        raise TokenDriftError(
            f"token_drift=raise: episode {episode!r} turn {turn}: its prompt ids do not start with turn "
            f"{turn - 1}'s prompt + response ids ({len(found)} drifted turns in this rollout); the prompt was "
            "re-tokenized from text. Use prompt_mode: append (token-in/token-out), or token_drift: skip | log"
        )
    skip = mode == "skip"
    metrics["rollout/token_drift_skipped"] = float(sum(drifted)) if skip else 0.0
    return [not (skip and bad) for bad in drifted], metrics


# --------------------------------------------------------------------------- the policy, VSPO's sampler
def build_agent(args: Any, checkpoint: Path | None) -> Any:
    """The policy: base model (+ LoRA adapters, new or from a checkpoint) inside an :class:`LLMAgent` that
    samples with the generation backend ``args.backend`` (:mod:`agentgym.baselines.generation`) and builds
    its prompts in ``args.prompt_mode``."""
    import torch

    from agentgym.baselines.llm_agent import LLMAgent
    from agentgym.wrappers.lm import load_causal_lm

    torch.manual_seed(args.seed)
    meta = json.loads((checkpoint / "agent.json").read_text()) if checkpoint else None
    source = checkpoint / meta["model"] if meta and meta.get("model") else args.model
    model, tokenizer = load_causal_lm(source)
    if args.lora:
        from peft import LoraConfig, PeftModel, get_peft_model

        if meta and meta.get("adapter"):
            model = PeftModel.from_pretrained(model, str(checkpoint / meta["adapter"]), is_trainable=True)
        else:
            config = LoraConfig(
                r=args.lora_r,
                lora_alpha=args.lora_alpha,
                lora_dropout=args.lora_dropout,
                target_modules=list(args.lora_target_modules),
                task_type="CAUSAL_LM",
            )
            model = get_peft_model(model, config)
    return LLMAgent(
        model,
        tokenizer,
        output_format=args.output_format,
        history=args.history,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        near_miss=args.near_miss,
        near_miss_cutoff=args.near_miss_cutoff,
        max_prompt_tokens=args.max_prompt_tokens,
        system_prompt=args.system_prompt,
        seed=args.seed,
        device=args.device,
        bf16=args.bf16,
        backend=args.backend,
        backend_kwargs=dict(args.backend_kwargs),
        prompt_mode=args.prompt_mode,
    )


def resample_zero_variance(
    state: Any,
    trajectories: list[Trajectory],
    *,
    play: Callable[[list], list[Trajectory]],
    inputs_of: Callable[[list[Trajectory]], Any],
    candidates: list[str],
    group_size: int,
    rng: np.random.Generator,
) -> tuple[list[Trajectory], dict[str, float]]:
    """VSPO's sampler (:class:`agentgym.baselines.vspo.VSPOState`) between the rollout and the advantages.

    The groups of the (scored) batch whose returns have no spread carry no GRPO signal: they are dropped and
    as many groups of tasks drawn from ``candidates`` by task value (``state.pick``, new reset seeds from
    ``rng``) are played in their place (``play``: roll out and score with the hooks), **once**: the
    replacements are kept as they come, even without spread, so a step costs at most two rollouts. Every
    group played is recorded in the pass-rate buffer (``state.record``), the dropped ones too. Returns the
    batch and ``vspo/`` metrics: groups replaced, the share of replacements with spread, the state's own."""
    inputs = inputs_of(trajectories)
    state.record(inputs.task_ids, inputs.groups, inputs.outcomes)
    zero = set(state.zero_variance_groups(inputs))
    metrics = {"vspo/replaced_groups": float(len(zero))}
    picked = state.pick(candidates, len(zero), rng) if zero else []
    if picked:
        seeds = [int(s) for s in rng.integers(0, 2**31 - 1, size=len(picked))]
        fresh = play(group_specs(picked, seeds, group_size))
        fresh_inputs = inputs_of(fresh)
        state.record(fresh_inputs.task_ids, fresh_inputs.groups, fresh_inputs.outcomes)
        still = state.zero_variance_groups(fresh_inputs)
        metrics["vspo/replacements_with_spread"] = 1.0 - len(still) / len(picked)
        trajectories = [t for t, group in zip(trajectories, inputs.groups) if group not in zero] + fresh
    return trajectories, {**metrics, **state.metrics()}


# --------------------------------------------------------------------------- evaluation
def evaluate_greedy(agent: Any, args: Any, pool: EnvPool | None = None, *, progress: bool = False) -> dict[str, float]:
    """Greedy ``eval/<eval_split>/...`` metrics (:func:`agentgym.baselines.runs.eval_metrics`) of the first
    ``eval_episodes`` tasks of ``eval_split`` (seed = index), on ``pool`` (from :func:`open_pool` on
    ``eval_split``) or on workers started for this call; ``progress``: a bar over the episodes."""
    from agentgym.baselines.runs import RolloutProgress, eval_metrics

    task_ids = split_task_ids(args, args.eval_split)
    n = args.eval_episodes
    specs = group_specs([task_ids[i % len(task_ids)] for i in range(n)], range(n), 1)
    greedy, agent.greedy = agent.greedy, True
    try:
        with (
            contextlib.nullcontext(pool) if pool else open_pool(args, args.eval_split, agent, n) as workers,
            RolloutProgress(n, f"eval {args.eval_split}", progress) as bar,
        ):
            trajectories = rollout(
                workers,
                agent,
                specs,
                env_id=args.env_id,
                on_turn=bar.turns_done,
                token_budget=args.token_budget,
                on_episode=bar.episode_done,
            )
    finally:
        agent.greedy = greedy
    return eval_metrics(args.eval_split, trajectories)
