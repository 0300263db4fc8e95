"""Multi-turn PPO-clip policy gradient for LLM agents, with any estimator of the registry
(:data:`agentgym.baselines.advantages.ESTIMATORS`: GRPO, RLOO, TRLOO, GiGPO, EMPG, GDPO, RLVMR, OPRL, IGPO,
VSPO).

One readable file in the CleanRL spirit. Each update step:

1. **rollout**: ``tasks_per_step`` tasks, each played ``group_size`` times with the same reset seed
   (:func:`agentgym.rollout.group_specs`), by :class:`~agentgym.baselines.llm_agent.LLMAgent`: every
   episode waiting for an action (up to ``num_workers * envs_per_worker`` in flight) joins one generation
   batch of the ``backend`` (builtin, hf-generate, vllm: :mod:`agentgym.baselines.generation`); every turn
   records its prompt and response token ids and their log-probs as generated. With ``prompt_mode:
   append`` each prompt extends the previous prompt + response ids (no re-tokenization); the drift meter
   (``rollout/token_drift_*``) checks it, and ``token_drift: skip | raise`` refuses drifted histories.
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
   micro-batches, grad-norm clipping, AdamW; LoRA (peft) or full fine-tuning; bf16 autocast on CUDA.
   π_old is recomputed by the trainer's forward when the backend's numerics may differ (``old_logprobs``,
   ``tis_cap``: :mod:`agentgym.baselines.ppo`). Then ``agent.backend.sync()`` (a backend with its own copy
   of the weights loads the update) and every hook's ``on_update(step, batch, metrics)`` (OPRL trains its
   PRM, PRS moves its curriculum);
5. **log and save**: the run folder of every trainer (:mod:`agentgym.baselines.runs`: ``config.json``,
   ``metrics.jsonl``, ``checkpoint-NNNNNN/``, TensorBoard), a tqdm bar per update step and one per rollout
   (episodes, turns). ``rollout/task_return`` is the mean task return (no hook reward),
   ``rollout/episode_return`` the mean of the env's own rewards, ``hooks/<name>/mean`` a hook's mean raw
   per-turn reward (every name: :mod:`agentgym.baselines.runs`). Checkpoints hold the model (or adapter), optimizer, every RNG state, the estimator's
   state and the step: a resumed run continues exactly (hooks are rebuilt: OPRL's PRM starts over).

Run: ``agentgym train baselines/configs/textworld.yaml`` or
``python -m agentgym.baselines.train_pg --env-id agentgym/TextWorld-v0 --num-steps 10``.
A checkpoint folder is also an agent: ``agentgym eval --agent runs/<run>/checkpoint-000010 ...``.
The PPO pieces (rows, log-probs, loss, update) are in :mod:`agentgym.baselines.ppo`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import random
import time
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from agentgym.baselines.advantages import EstimatorInputs, VSPOState, check_estimator, compute_advantages, make_state
from agentgym.baselines.checks import did_you_mean, literal_values
from agentgym.baselines.generation import BACKENDS
from agentgym.baselines.ppo import (  # noqa: F401  (batch_logprobs, ppo_loss, _tensor_rows: imported from here)
    _tensor_rows,
    batch_logprobs,
    check_old_logprobs,
    make_rows,
    ppo_loss,
    ppo_update,
    recomputes_old,
)
from agentgym.baselines.runs import (
    Clock,
    MetricsLog,
    RolloutProgress,
    TrainResult,
    default_run_name,
    latest_checkpoint,
    rounded,
    step_bar,
    write_config,
)
from agentgym.baselines.trainer_common import (
    HookSpec,
    build_agent,
    build_hooks,
    check_token_drift,
    evaluate_greedy,
    hook_names,
    open_pool,
    resample_zero_variance,
    rollout_metrics,
    score_hooks,
    split_task_ids,
    task_rewards,
    validate_hook_specs,
)
from agentgym.baselines.trainer_io import load_hook_states, save_checkpoint, set_rng_state
from agentgym.error import InvalidArgumentError
from agentgym.rollout import group_specs, rollout
from agentgym.trajectory import Trajectory, save_jsonl
from agentgym.wrappers.hooks import check_choice


@dataclasses.dataclass
class Args:
    exp_name: str = "pg"
    """name of the experiment (part of the run name)"""
    seed: int = 0
    """seed of task sampling, sampling and initialisation"""
    output_dir: str = "runs"
    """runs are written to output_dir/run_name (agentgym.baselines.runs)"""
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
    envs_per_worker: int = 1
    """envs each worker process holds: num_workers * envs_per_worker episodes in flight, one generation batch"""
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
    prompt_mode: Literal["window", "append"] = "append"
    """append: each prompt is the previous prompt + response ids + the next observation (token-in/token-out,
    no re-tokenization drift); window: re-rendered each turn from the last ``history`` turns"""
    token_drift: Literal["log", "skip", "raise"] = "log"
    """turns whose prompt does not start with the previous prompt + response ids: log the rate only, leave
    their trajectories out of the update (skip), or stop (raise)"""
    backend: str = "builtin"
    """generation backend: builtin | hf-generate | vllm (agentgym.baselines.generation)"""
    backend_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    """extra keyword arguments of the backend's constructor"""
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
    old_logprobs: Literal["auto", "rollout", "recompute"] = "auto"
    """pi_old of the PPO ratio: the backend's recorded log-probs (rollout), or the trainer's own forward before
    the epochs (recompute: one no-grad forward over the rows per step); auto: recompute unless the backend
    samples with the trainer's module (agentgym.baselines.ppo explains why)"""
    tis_cap: float | None = None
    """truncated importance sampling when recomputing: each token's policy-gradient term times
    min(exp(recomputed - rollout log-prob), tis_cap)"""
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
    lora_target_modules: list[str] = dataclasses.field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
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
    """only run the greedy evaluation of the model (or of the ``resume`` checkpoint): one metrics row"""
    tensorboard: bool = True
    """write TensorBoard events (skipped with a warning when tensorboard is missing)"""
    progress: bool = True
    """tqdm progress bars: update steps, and episodes and turns of each rollout"""
    save_trajectories: str | None = None
    """append every training rollout's trajectories (hook rewards and token ids included) to this JSONL file"""


def check_args(args: Args) -> None:
    """Reject a bad hook, estimator or estimator kwarg, or a consumed hook missing (``rlvmr`` for the rlvmr
    estimator), before any model loads: a typo would otherwise show only after the model and a rollout."""
    validate_hook_specs(args.hooks)
    for key in ("estimator_kwargs", "backend_kwargs"):
        if not isinstance(getattr(args, key), dict):
            raise InvalidArgumentError(f"{key!r} must be a mapping, got {getattr(args, key)!r}")
    for name, hint in typing.get_type_hints(Args).items():  # every Literal option (output_format, prompt_mode, ...)
        if literal_values(hint) is not None:
            check_choice(name, getattr(args, name), literal_values(hint))
    check_choice("backend", args.backend, BACKENDS)
    if isinstance(args.envs_per_worker, bool) or not isinstance(args.envs_per_worker, int) or args.envs_per_worker < 1:
        raise InvalidArgumentError(f"'envs_per_worker' must be an integer >= 1, got {args.envs_per_worker!r}")
    check_old_logprobs(args)
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


#: ``on_step(step, trajectories, inputs, advantages, hooks)``: called by :func:`train` each step, after the
#: advantages and before the update that uses them (``step`` counts from 0). A test seam.
OnStep = Callable[[int, list[Trajectory], EstimatorInputs, list[np.ndarray], list[HookSpec]], None]


# --------------------------------------------------------------------------- the loop
def train(args: Args, on_step: OnStep | None = None) -> TrainResult:
    """Run the training loop (or, with ``eval_only``, one greedy evaluation); prints nothing.

    Returns the run folder, the rows logged (also in its ``metrics.jsonl``) and the last checkpoint."""
    import torch

    check_args(args)  # Args built in code skip load_config
    clock = Clock()
    run_name = args.run_name or default_run_name(args.env_id, args.exp_name, args.seed)
    folder = Path(args.output_dir) / run_name
    checkpoint = Path(args.resume) if args.resume and args.resume != "auto" else None
    if args.resume == "auto":
        checkpoint = latest_checkpoint(folder)
    write_config(folder, {"algo": "pg", **dataclasses.asdict(args)})

    # seeding, model, optimizer, estimator state (and the state of a resumed run)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    random.seed(args.seed)
    task_rng = np.random.default_rng(args.seed)
    agent = build_agent(args, checkpoint)
    model, device = agent.model, agent.device
    recompute = recomputes_old(args, agent.backend)  # pi_old from the trainer's forward (agentgym.baselines.ppo)
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
    if args.eval_only:  # one row at the checkpoint's step, in this run's folder
        logger = MetricsLog(folder, upto_step=start)
        row = logger.log(start, {**evaluate_greedy(agent, args, progress=args.progress), **clock.metrics()})
        logger.close()
        return TrainResult(folder, [row], checkpoint)
    # hooks (model-based ones from the policy), tasks, logging
    hooks = build_hooks(args.hooks, policy=model, tokenizer=agent.tokenizer)
    hook_weights = {spec.hook.name: spec.weight for spec in hooks}
    if checkpoint is not None:  # OPRL's PRM, PRS's stage: where the run stood
        load_hook_states(checkpoint, [spec.hook for spec in hooks])
    task_ids = list(args.task_ids or split_task_ids(args, args.split))
    logger = MetricsLog(folder, tensorboard=args.tensorboard, upto_step=start)
    history: list[dict[str, Any]] = []
    saved: Path | None = None
    # worker processes (and their engines) live for the whole run
    with contextlib.ExitStack() as workers:
        pool = workers.enter_context(open_pool(args, args.split, agent, args.tasks_per_step * args.group_size))
        eval_pool = (
            workers.enter_context(open_pool(args, args.eval_split, agent, args.eval_episodes))
            if args.eval_every
            else None
        )
        if args.eval_every and start == 0:
            history.append(logger.log(0, evaluate_greedy(agent, args, eval_pool, progress=args.progress)))

        scoring_time = 0.0  # seconds the hooks spent scoring this step
        gen_batches: list[int] = []  # the generation batch sizes of this step's rollouts

        def play(specs: list) -> list[Trajectory]:  # roll out, then score with every hook (in place)
            nonlocal scoring_time

            def on_turn(n: int) -> None:
                gen_batches.append(n)
                progress.turns_done(n)

            with RolloutProgress(len(specs), "rollout", args.progress) as progress:
                batch = rollout(
                    pool,
                    agent,
                    specs,
                    env_id=args.env_id,
                    on_turn=on_turn,
                    token_budget=args.token_budget,
                    on_episode=progress.episode_done,
                )
            tick = time.perf_counter()
            score_hooks(batch, hooks)
            scoring_time += time.perf_counter() - tick
            if args.save_trajectories:  # scored, so the file holds each turn's hook rewards too
                save_jsonl(batch, args.save_trajectories, append=True)
            return batch

        def inputs_of(batch: list[Trajectory]) -> EstimatorInputs:  # task rewards apart from hook rewards
            return EstimatorInputs.from_trajectories(
                batch, env_rewards=task_rewards(batch, args), hook_weights=hook_weights
            )

        bar = step_bar(args.num_steps, start, run_name, args.progress, "update")
        for step in range(start, args.num_steps):
            # rollout: tasks_per_step groups of group_size episodes (same task and reset seed), hooks score
            tick, scoring_time = time.perf_counter(), 0.0
            gen_batches.clear()
            many = args.tasks_per_step > len(task_ids)
            chosen = task_rng.choice(len(task_ids), size=args.tasks_per_step, replace=many)
            seeds = task_rng.integers(0, 2**31 - 1, size=args.tasks_per_step)
            specs = group_specs([task_ids[i] for i in chosen], [int(s) for s in seeds], args.group_size)
            trajectories = play(specs)
            sampler_metrics: dict[str, float] = {}
            if isinstance(estimator_state, VSPOState):  # VSPO: re-roll the groups without reward spread, once
                trajectories, sampler_metrics = resample_zero_variance(
                    estimator_state,
                    trajectories,
                    play=play,
                    inputs_of=inputs_of,
                    candidates=task_ids,
                    group_size=args.group_size,
                    rng=task_rng,
                )
            rollout_time = time.perf_counter() - tick - scoring_time
            # advantages (each estimator combines task and hook rewards its own way), rows
            inputs = inputs_of(trajectories)
            turn_adv = compute_advantages(
                args.estimator, inputs, gamma=args.gamma, kwargs=args.estimator_kwargs, state=estimator_state
            )
            if on_step is not None:
                on_step(step, trajectories, inputs, turn_adv, hooks)
            trained, drift_metrics = check_token_drift(trajectories, args.token_drift)
            kept = [k for k, ok in enumerate(trained) if ok]  # token_drift: skip leaves drifted episodes out
            rows = make_rows([trajectories[k] for k in kept], [turn_adv[k] for k in kept])
            if args.skip_zero_advantage and args.kl_coef == 0:
                rows = [row for row in rows if row["adv"] != 0.0] or rows[:1]
            if args.max_rows is not None and len(rows) > args.max_rows:
                rows = [rows[i] for i in sorted(task_rng.choice(len(rows), size=args.max_rows, replace=False))]
            # update the policy, then let every hook learn or move on
            tick = time.perf_counter()
            losses = ppo_update(model, reference, optimizer, params, rows, args, device, step, recompute=recompute)
            agent.backend.sync()  # a backend with its own copy of the weights samples the updated policy
            update_time = time.perf_counter() - tick
            done = step + 1
            metrics = {
                **rollout_metrics(trajectories, inputs, gen_batches),
                **drift_metrics,
                **sampler_metrics,
                **losses,
            }
            metrics["rollout/episodes"] = logger.last("rollout/episodes") + len(trajectories)
            metrics["rollout/env_steps"] = logger.last("rollout/env_steps") + sum(len(t.turns) for t in trajectories)
            for spec in hooks:
                for key, value in spec.hook.on_update(done, trajectories, metrics).items():
                    metrics[f"hooks/{spec.hook.name}/{key}"] = float("nan") if value is None else float(value)
            # log
            metrics.update(
                {
                    "perf/rollout_tokens_per_s": metrics.pop("perf/generated_tokens") / max(rollout_time, 1e-9),
                    "perf/train_tokens_per_s": args.ppo_epochs
                    * sum(len(r["ids"]) for r in rows)
                    / max(update_time, 1e-9),
                    "perf/rows": float(len(rows)),
                    "perf/hook_scoring_s": scoring_time,
                }
            )
            if args.eval_every and (done % args.eval_every == 0 or done == args.num_steps):
                metrics.update(evaluate_greedy(agent, args, eval_pool, progress=args.progress))
            history.append(logger.log(done, {**metrics, **clock.metrics()}))
            bar.update(1)
            bar.set_postfix(rounded(metrics, ("rollout/task_return", "rollout/success_rate", "train/loss")))
            if (args.save_every and done % args.save_every == 0) or done == args.num_steps:
                saved = save_checkpoint(
                    folder,
                    args,
                    agent,
                    optimizer,
                    task_rng,
                    done,
                    run_name,
                    estimator_state.to_dict() if estimator_state is not None else None,
                    {spec.hook.name: spec.hook.state_dict() for spec in hooks},
                )
        bar.close()
    logger.close()
    return TrainResult(folder, history, saved)


def run_config(config: dict[str, Any]) -> TrainResult:
    """Entry of ``agentgym train CONFIG.yaml`` with ``algo: pg`` (the mapping without its ``algo`` key)."""
    return train(load_config(config))


if __name__ == "__main__":
    import tyro

    train(tyro.cli(Args))
