"""Multi-turn PPO-clip policy gradient for LLM agents, with any estimator of the registry
(:data:`agentgym.baselines.advantages.ESTIMATORS`: GRPO, RLOO, TRLOO, GiGPO, EMPG, GDPO, RLVMR, OPRL, IGPO,
VSPO).

One readable file in the CleanRL spirit. Each update step:

1. **rollout**: ``tasks_per_step`` tasks, each played ``group_size`` times with the same reset seed
   (:func:`agentgym.rollout.group_specs`), by :class:`~agentgym.baselines.llm_agent.LLMAgent` in one batch
   per turn; every turn records its prompt and response token ids and their log-probs as generated.
   VSPO only: groups whose returns have no spread are replaced by groups of tasks picked by task value
   and played once (:func:`~agentgym.baselines.trainer_common.resample_zero_variance`);
2. **rewards**: per turn, the *task reward* ``env_reward_weight * env reward + info_reward_weight *
   info[info_reward]``; the hooks score the batch in place (``turn.turn_rewards[name]``), apart from it;
3. **advantages**: :class:`~agentgym.baselines.advantages.EstimatorInputs` built once from the batch, then
   :func:`~agentgym.baselines.advantages.compute_advantages`: each estimator combines task and hook rewards
   its own way (its ``rule``). A turn's advantage goes to its response tokens only: one training row per
   turn (prompt with loss mask 0, response with mask 1, :func:`agentgym.baselines.tokens.turn_rows`);
4. **update**: PPO-clip on the agent tokens, token mean over the minibatch, optional k3 KL to the reference
   model (the base model: LoRA adapters disabled, or a frozen copy), gradient accumulation over
   micro-batches, grad-norm clipping, AdamW; LoRA (peft) or full fine-tuning; bf16 autocast on CUDA; then
   every hook's ``on_update(step, batch, metrics)`` (OPRL trains its PRM, PRS moves its curriculum);
5. **log and save**: TensorBoard (``charts/``, ``losses/``, ``hooks/<name>/``, ``eval/``, ``perf/``),
   ``metrics.csv``, a tqdm bar. ``charts/mean_reward`` is the mean task return (no hook reward),
   ``charts/env_return`` the mean of the env's own rewards, ``hooks/<name>/mean`` a hook's mean raw
   per-turn reward. Checkpoints hold the model (or adapter), optimizer, every RNG state, the estimator's
   state and the step: a resumed run continues exactly (hooks are rebuilt: OPRL's PRM starts over).

Run: ``agentgym train baselines/configs/textworld.yaml`` or
``python -m agentgym.baselines.train_pg --env-id agentgym/TextWorld-v0 --num-steps 10``.
A checkpoint folder is also an agent: ``agentgym eval --agent runs/<run>/checkpoint-000010 ...``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from agentgym.baselines.advantages import EstimatorInputs, VSPOState, check_estimator, compute_advantages
from agentgym.baselines.advantages import make_state
from agentgym.baselines.checks import did_you_mean
from agentgym.baselines.tokens import turn_rows
from agentgym.baselines.trainer_common import HookSpec, build_agent, build_hooks, evaluate_greedy, hook_names
from agentgym.baselines.trainer_common import open_pool, resample_zero_variance, rollout_metrics, score_hooks
from agentgym.baselines.trainer_common import split_task_ids, task_rewards, validate_hook_specs
from agentgym.baselines.trainer_io import (
    Logger,
    latest_checkpoint,
    load_hook_states,
    save_checkpoint,
    set_rng_state,
)
from agentgym.error import InvalidArgumentError
from agentgym.rollout import group_specs, rollout
from agentgym.trajectory import Trajectory
from agentgym.wrappers.lm import allowed_mask, next_token_logprobs


@dataclasses.dataclass
class Args:
    exp_name: str = "pg"
    """name of the experiment (part of the run name)"""
    seed: int = 0
    """seed of task sampling, sampling and initialisation"""
    output_dir: str = "runs"
    """runs are written to output_dir/run_name"""
    run_name: str | None = None
    """default: <env>__<exp_name>__<seed>__<unix time>"""
    # environment
    env_id: str = "agentgym/TextWorld-v0"
    """a registered id, or 'module:Class' for an env class that is not registered"""
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    """extra env constructor arguments"""
    split: str = "train"
    """training split"""
    task_ids: list[str] | None = None
    """train on these tasks only (default: the whole split)"""
    max_turns: int = 10
    """turn limit per episode"""
    hooks: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """turn-level reward hooks: [{name: rlvmr | prs_progressive | oprl | igpo | module:Class, weight: 1.0,
    kwargs: {...}, model: a local model folder for oprl/igpo (default: the policy being trained)}]"""
    env_reward_weight: float = 1.0
    """weight of the env reward in the per-turn task reward"""
    info_reward: str | None = None
    """a dotted info key added as a shaping reward each turn, e.g. textworld.intermediate_reward"""
    info_reward_weight: float = 1.0
    """weight of info_reward"""
    # rollout
    tasks_per_step: int = 4
    """distinct (task, seed) groups per update"""
    group_size: int = 4
    """rollouts per group (same task and seed)"""
    num_workers: int = 2
    """env worker processes"""
    in_process: bool = False
    """run the envs in this process (small envs, tests)"""
    token_budget: int | None = None
    """per-episode cap on prompt+response tokens (the episode is truncated and flagged)"""
    # agent
    model: str = "smollm2"
    """local model folder, or 'smollm2' (nothing is downloaded)"""
    output_format: Literal["auto", "react", "action", "tool", "raw", "choice"] = "auto"
    """reply format (see agentgym.baselines.llm_agent; choice: constrained to the admissible actions)"""
    history: int = 2
    """past turns kept in the prompt"""
    max_new_tokens: int = 32
    """reply length limit"""
    temperature: float = 1.0
    """sampling temperature (the loss uses the same)"""
    near_miss: bool = False
    """map non-admissible actions to the closest admissible one"""
    near_miss_cutoff: float = 0.6
    """difflib similarity needed for that mapping"""
    max_prompt_tokens: int = 1024
    """prompt length limit"""
    system_prompt: str | None = None
    """replaces the agent's default role sentence"""
    # advantages
    estimator: str = "grpo"
    """advantage estimator: grpo | rloo | trloo | gigpo | empg | gdpo | rlvmr | oprl | igpo | vspo
    (agentgym.baselines.advantages.ESTIMATORS; rlvmr, oprl and igpo need the hook of the same name)"""
    estimator_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    """keyword arguments of the estimator's function in baselines/estimators.py (e.g. std: none,
    step_weight: 1.0, invalid_penalty: 0.1), checked against its signature when the config loads"""
    gamma: float = 1.0
    """discount of turn rewards (trloo, gigpo, igpo)"""
    # optimisation
    num_steps: int = 50
    """update steps"""
    learning_rate: float = 1e-5
    """AdamW learning rate"""
    weight_decay: float = 0.0
    """AdamW weight decay"""
    ppo_epochs: int = 1
    """passes over each batch of rows"""
    minibatch_rows: int = 64
    """turn rows per optimizer step"""
    micro_batch_rows: int = 8
    """turn rows per forward/backward (gradient accumulation inside a minibatch)"""
    clip_eps: float = 0.2
    """PPO clip range (low side, and high side unless clip_eps_high)"""
    clip_eps_high: float | None = None
    """high clip range (DAPO clip-higher); default clip_eps"""
    kl_coef: float = 0.0
    """weight of the k3 KL penalty to the reference model (0: no reference model)"""
    max_grad_norm: float = 1.0
    """gradient norm clipping"""
    skip_zero_advantage: bool = True
    """leave out rows whose advantage is 0 (they carry no policy gradient) when kl_coef is 0"""
    max_rows: int | None = None
    """train on at most this many turn rows per step, drawn at random (caps the update cost)"""
    lora: bool = True
    """train LoRA adapters (peft) instead of every weight"""
    lora_r: int = 8
    """LoRA rank"""
    lora_alpha: int = 16
    """LoRA alpha"""
    lora_dropout: float = 0.0
    """LoRA dropout"""
    lora_target_modules: list[str] = dataclasses.field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )
    """modules that get adapters"""
    bf16: bool = True
    """bfloat16 autocast on CUDA (ignored on CPU)"""
    device: str | None = None
    """cuda when available, else cpu"""
    torch_threads: int | None = None
    """torch CPU threads (1 is fastest on a busy machine; None: torch's default)"""
    # evaluation, logging, checkpoints
    eval_every: int = 0
    """greedy evaluation every N steps, before training and at the end (0: never)"""
    eval_split: str = "valid"
    """evaluation split"""
    eval_episodes: int = 10
    """evaluation episodes (tasks of the split in order, reset seed = index)"""
    save_every: int = 10
    """checkpoint every N steps and at the end (0: only at the end)"""
    resume: str | None = None
    """a checkpoint folder to continue from, or 'auto' (the run folder's latest)"""
    eval_only: bool = False
    """only run the greedy evaluation of the model (or of the ``resume`` checkpoint) and return it"""
    tensorboard: bool = True
    """write TensorBoard events (skipped with a warning when tensorboard is missing)"""
    progress: bool = True
    """tqdm progress bar"""


def check_args(args: Args) -> None:
    """Reject a bad hook, estimator or estimator kwarg, or a consumed hook missing (``rlvmr`` for the rlvmr
    estimator), before any model loads: a typo would otherwise show only after the model and a rollout."""
    validate_hook_specs(args.hooks)
    if not isinstance(args.estimator_kwargs, dict):
        raise InvalidArgumentError(f"'estimator_kwargs' must be a mapping, got {args.estimator_kwargs!r}")
    check_estimator(args.estimator, args.estimator_kwargs, hook_names(args.hooks))


def load_config(config: dict[str, Any]) -> Args:
    """:class:`Args` from a YAML mapping, checked by :func:`check_args`; unknown keys raise (did-you-mean)."""
    names = {field.name for field in dataclasses.fields(Args)}
    for key in config:
        if key not in names:
            raise InvalidArgumentError(f"unknown config key {key!r}{did_you_mean(key, names)}")
    args = Args(**config)
    check_args(args)
    return args


# --------------------------------------------------------------------------- model, rows, loss
def make_rows(trajectories: list[Trajectory], turn_adv: list[np.ndarray]) -> list[dict[str, Any]]:
    """One row per turn: token ids, the response start, its advantage, the recorded log-probs and, for a
    constrained (choice-format) reply, the allowed token ids of each response position (else None)."""
    rows = []
    for trajectory, adv in zip(trajectories, turn_adv):
        for k, (ids, mask) in enumerate(turn_rows(trajectory)):
            start = mask.index(1) if 1 in mask else len(ids)
            turn = trajectory.turns[k]
            rows.append({"ids": ids, "start": start, "adv": float(adv[k]),
                         "old": list(turn.response_logprobs or []),
                         "allowed": (turn.agent_info or {}).get("allowed_token_ids")})
    return [row for row in rows if row["start"] < len(row["ids"])]


def batch_logprobs(
    model: Any, rows: list[dict[str, Any]], device: str, temperature: float, bf16: bool
) -> tuple[Any, Any]:
    """Log-probs of the rows' response tokens, ``(logp [B, T], mask [B, T])`` aligned so column ``j`` of row
    ``b`` is response token ``j``; ``mask`` is 1 exactly on response (agent) tokens.

    Rows are left-padded so that every response starts at the same column: the vocabulary projection then
    runs on the response positions only (``logits_to_keep``), never over the prompts. A row with
    ``allowed`` sets (a choice-format reply) gets each position's distribution renormalised over its
    allowed tokens, the distribution it was sampled from, so the first PPO epoch's ratio is 1.
    """
    import torch

    start = max(r["start"] for r in rows)  # the common response start after left padding
    longest = max(len(r["ids"]) - r["start"] for r in rows)
    ids = torch.zeros((len(rows), start + longest), dtype=torch.long)
    attn = torch.zeros_like(ids)
    for b, row in enumerate(rows):
        pad = start - row["start"]
        ids[b, pad : pad + len(row["ids"])] = torch.tensor(row["ids"])
        attn[b, pad : pad + len(row["ids"])] = 1
    ids, attn = ids.to(device), attn.to(device)
    positions = (attn.cumsum(-1) - 1).clamp(min=0)
    keep = torch.arange(start - 1, start - 1 + longest, device=device)
    allowed = None
    if any(row.get("allowed") for row in rows):
        vocab = model.get_output_embeddings().weight.shape[0]
        per_position = [(row.get("allowed") or [])[j] if j < len(row.get("allowed") or []) else None
                        for row in rows for j in range(longest)]
        allowed = allowed_mask(per_position, vocab, device=device).view(len(rows), longest, vocab)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16 and device.startswith("cuda")):
        logp = next_token_logprobs(model, ids, attn, positions, keep=keep, temperature=temperature,
                                   allowed=allowed)
    mask = torch.zeros((len(rows), longest), device=device)
    for b, row in enumerate(rows):
        mask[b, : len(row["ids"]) - row["start"]] = 1
    return logp * mask, mask


def ppo_loss(
    logp: Any, old: Any, ref: Any | None, adv: Any, mask: Any, args: Args, n_tokens: int
) -> tuple[Any, dict[str, float]]:
    """PPO-clip (+ k3 KL) summed over the agent tokens and divided by the minibatch's token count."""
    import torch

    ratio = torch.exp(logp - old)
    high = args.clip_eps if args.clip_eps_high is None else args.clip_eps_high
    pg = -torch.min(ratio * adv[:, None], torch.clamp(ratio, 1 - args.clip_eps, 1 + high) * adv[:, None])
    loss_tok = pg
    kl = torch.zeros_like(pg)
    if ref is not None:
        kl = torch.exp(ref - logp) - (ref - logp) - 1
        loss_tok = pg + args.kl_coef * kl
    loss = (loss_tok * mask).sum() / n_tokens
    with torch.no_grad():
        stats = {"pg_loss": float((pg * mask).sum() / n_tokens), "kl": float((kl * mask).sum() / n_tokens),
                 "clipfrac": float((((ratio - 1).abs() > args.clip_eps).float() * mask).sum() / n_tokens),
                 "approx_kl": float((((ratio - 1) - torch.log(ratio)) * mask).sum() / n_tokens)}
    return loss, stats


def _tensor_rows(rows: list[dict[str, Any]], key: str, width: int, device: str) -> Any:
    import torch

    out = torch.zeros((len(rows), width), device=device)
    for b, row in enumerate(rows):
        out[b, : len(row[key])] = torch.tensor(row[key], dtype=torch.float32)
    return out


def ppo_update(model: Any, reference: Any | None, optimizer: Any, params: list[Any],
               rows: list[dict[str, Any]], args: Args, device: str, step: int) -> dict[str, float]:
    """Reference log-probs (no grad; the frozen copy, or the model with its adapters disabled) when
    ``kl_coef > 0``, then ``ppo_epochs`` passes over ``rows`` in minibatches, with gradient accumulation over
    micro-batches. Returns the ``losses/`` metrics, each the mean over minibatches."""
    import torch

    model.train()
    if args.kl_coef > 0:
        with torch.no_grad():
            for i in range(0, len(rows), args.micro_batch_rows):
                chunk = rows[i : i + args.micro_batch_rows]
                if reference is not None:
                    ref, _ = batch_logprobs(reference, chunk, device, args.temperature, args.bf16)
                else:
                    with model.disable_adapter():
                        ref, _ = batch_logprobs(model, chunk, device, args.temperature, args.bf16)
                for row, values in zip(chunk, ref):
                    row["ref"] = values[: len(row["ids"]) - row["start"]].tolist()
    stats: dict[str, list[float]] = {k: [] for k in ("loss", "pg_loss", "kl", "clipfrac", "approx_kl")}
    stats["grad_norm"] = []
    order = torch.Generator().manual_seed(args.seed * 100003 + step)
    for _ in range(args.ppo_epochs):
        perm = torch.randperm(len(rows), generator=order).tolist()
        for m in range(0, len(rows), args.minibatch_rows):
            minibatch = [rows[i] for i in perm[m : m + args.minibatch_rows]]
            n_tokens = sum(len(r["ids"]) - r["start"] for r in minibatch)
            optimizer.zero_grad(set_to_none=True)
            sums = dict.fromkeys(("loss", "pg_loss", "kl", "clipfrac", "approx_kl"), 0.0)
            for i in range(0, len(minibatch), args.micro_batch_rows):
                chunk = minibatch[i : i + args.micro_batch_rows]
                logp, mask = batch_logprobs(model, chunk, device, args.temperature, args.bf16)
                old = _tensor_rows(chunk, "old", logp.shape[1], device)
                ref = _tensor_rows(chunk, "ref", logp.shape[1], device) if args.kl_coef > 0 else None
                adv = torch.tensor([r["adv"] for r in chunk], device=device)
                loss, parts = ppo_loss(logp, old, ref, adv, mask, args, n_tokens)
                loss.backward()
                for key, value in {"loss": float(loss.detach()), **parts}.items():
                    sums[key] += value  # each part is already divided by the minibatch's token count
            for key, value in sums.items():
                stats[key].append(value)
            stats["grad_norm"].append(float(torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)))
            optimizer.step()
    return {f"losses/{key}": float(np.mean(values)) for key, values in stats.items()}


#: ``on_step(step, trajectories, inputs, advantages, hooks)``: called by :func:`train` each step, after the
#: advantages and before the update that uses them (``step`` counts from 0). A test seam.
OnStep = Callable[[int, list[Trajectory], EstimatorInputs, list[np.ndarray], list[HookSpec]], None]


# --------------------------------------------------------------------------- the loop
def train(args: Args, on_step: OnStep | None = None) -> list[dict[str, float]]:
    """Run the training loop; returns the metrics of every step run (also in metrics.csv)."""
    import torch
    from tqdm import tqdm

    check_args(args)  # Args built in code skip load_config
    env_name = args.env_id.replace("/", "_").replace(":", "_")
    run_name = args.run_name or f"{env_name}__{args.exp_name}__{args.seed}__{int(time.time())}"
    folder = Path(args.output_dir) / run_name
    checkpoint = Path(args.resume) if args.resume and args.resume != "auto" else None
    if args.resume == "auto":
        checkpoint = latest_checkpoint(folder)
    if not args.eval_only:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(dataclasses.asdict(args), indent=1))

    # seeding, model, optimizer, estimator state (and the state of a resumed run)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    random.seed(args.seed)
    task_rng = np.random.default_rng(args.seed)
    agent = build_agent(args, checkpoint)
    model, device = agent.model, agent.device
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.learning_rate, weight_decay=args.weight_decay)
    reference = None  # LoRA: the model with its adapters disabled
    if args.kl_coef > 0 and not args.lora:
        reference = copy.deepcopy(model).eval().requires_grad_(False)
    estimator_state = make_state(args.estimator, args.estimator_kwargs)  # VSPO's; None for the others
    start = 0
    if checkpoint is not None:
        state = torch.load(checkpoint / "trainer_state.pt", weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"], task_rng, agent)
        if state.get("estimator_state") is not None:  # VSPO's pass rates and running RMS
            estimator_state = type(estimator_state).from_dict(state["estimator_state"])
        start = state["step"]
    if args.eval_only:
        result = evaluate_greedy(agent, args)
        print(json.dumps({"checkpoint": str(checkpoint) if checkpoint else args.model, "step": start, **result}))
        return [result]
    # hooks (model-based ones from the policy), tasks, logging
    hooks = build_hooks(args.hooks, policy=model, tokenizer=agent.tokenizer)
    hook_weights = {spec.hook.name: spec.weight for spec in hooks}
    if checkpoint is not None:  # OPRL's PRM, PRS's stage: where the run stood
        load_hook_states(checkpoint, [spec.hook for spec in hooks])
    task_ids = list(args.task_ids or split_task_ids(args, args.split))
    logger = Logger(folder, args.tensorboard, upto_step=start)
    history: list[dict[str, float]] = []
    # worker processes (and their engines) live for the whole run
    with contextlib.ExitStack() as workers:
        pool = workers.enter_context(open_pool(args, args.split, agent, args.tasks_per_step * args.group_size))
        eval_pool = workers.enter_context(open_pool(args, args.eval_split, agent, args.eval_episodes)) \
            if args.eval_every else None
        if args.eval_every and start == 0:
            logger.log(0, evaluate_greedy(agent, args, eval_pool))

        scoring_time = 0.0  # seconds the hooks spent scoring this step

        def play(specs: list) -> list[Trajectory]:  # roll out, then score with every hook (in place)
            nonlocal scoring_time
            batch = rollout(pool, agent, specs, env_id=args.env_id, token_budget=args.token_budget)
            tick = time.perf_counter()
            score_hooks(batch, hooks)
            scoring_time += time.perf_counter() - tick
            return batch

        def inputs_of(batch: list[Trajectory]) -> EstimatorInputs:  # task rewards apart from hook rewards
            return EstimatorInputs.from_trajectories(
                batch, env_rewards=task_rewards(batch, args), hook_weights=hook_weights)

        bar = tqdm(range(start, args.num_steps), initial=start, total=args.num_steps, desc=run_name,
                   disable=not args.progress)
        for step in bar:
            # rollout: tasks_per_step groups of group_size episodes (same task and reset seed), hooks score
            tick, scoring_time = time.perf_counter(), 0.0
            many = args.tasks_per_step > len(task_ids)
            chosen = task_rng.choice(len(task_ids), size=args.tasks_per_step, replace=many)
            seeds = task_rng.integers(0, 2**31 - 1, size=args.tasks_per_step)
            specs = group_specs([task_ids[i] for i in chosen], [int(s) for s in seeds], args.group_size)
            trajectories = play(specs)
            sampler_metrics: dict[str, float] = {}
            if isinstance(estimator_state, VSPOState):  # VSPO: re-roll the groups without reward spread, once
                trajectories, sampler_metrics = resample_zero_variance(
                    estimator_state, trajectories, play=play, inputs_of=inputs_of, candidates=task_ids,
                    group_size=args.group_size, rng=task_rng)
            rollout_time = time.perf_counter() - tick - scoring_time
            # advantages (each estimator combines task and hook rewards its own way), rows
            inputs = inputs_of(trajectories)
            turn_adv = compute_advantages(args.estimator, inputs, gamma=args.gamma,
                                          kwargs=args.estimator_kwargs, state=estimator_state)
            if on_step is not None:
                on_step(step, trajectories, inputs, turn_adv, hooks)
            rows = make_rows(trajectories, turn_adv)
            if args.skip_zero_advantage and args.kl_coef == 0:
                rows = [row for row in rows if row["adv"] != 0.0] or rows[:1]
            if args.max_rows is not None and len(rows) > args.max_rows:
                rows = [rows[i] for i in sorted(task_rng.choice(len(rows), size=args.max_rows, replace=False))]
            # update the policy, then let every hook learn or move on
            tick = time.perf_counter()
            losses = ppo_update(model, reference, optimizer, params, rows, args, device, step)
            update_time = time.perf_counter() - tick
            done = step + 1
            metrics = {**rollout_metrics(trajectories, inputs), **sampler_metrics, **losses}
            for spec in hooks:
                for key, value in spec.hook.on_update(done, trajectories, metrics).items():
                    metrics[f"hooks/{spec.hook.name}/{key}"] = float("nan") if value is None else float(value)
            # log
            metrics.update({
                "perf/rollout_tokens_per_s": metrics.pop("perf/generated_tokens") / max(rollout_time, 1e-9),
                "perf/train_tokens_per_s": args.ppo_epochs * sum(len(r["ids"]) for r in rows)
                / max(update_time, 1e-9),
                "perf/rows": float(len(rows)),
                "perf/hook_scoring_s": scoring_time,
            })
            if args.eval_every and (done % args.eval_every == 0 or done == args.num_steps):
                metrics.update(evaluate_greedy(agent, args, eval_pool))
            logger.log(done, metrics)
            history.append(metrics)
            bar.set_postfix(reward=f"{metrics['charts/mean_reward']:.3f}",
                            success=f"{metrics['charts/success']:.2f}", loss=f"{metrics['losses/loss']:.4f}")
            if (args.save_every and done % args.save_every == 0) or done == args.num_steps:
                save_checkpoint(folder, args, agent, optimizer, task_rng, done, run_name,
                                estimator_state.to_dict() if estimator_state is not None else None,
                                {spec.hook.name: spec.hook.state_dict() for spec in hooks})
        bar.close()
    logger.close()
    return history


def run_config(config: dict[str, Any]) -> int:
    """Entry of ``agentgym train CONFIG.yaml`` (the mapping without its ``algo`` key)."""
    train(load_config(config))
    return 0


if __name__ == "__main__":
    import tyro

    train(tyro.cli(Args))
