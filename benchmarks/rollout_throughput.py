"""Rollout throughput on CPU: the generation backends, and an LLM agent rolling out TextWorld end to end.

(a) Generation: tokens/s of the builtin backend vs transformers' ``generate`` (the ``hf-generate`` backend, the
    reference) on the same tiny random model (``build_tiny_causal_lm``) and the same prompts (chat-templated
    TextWorld first observations), at batch 1 and 16, sampled at temperature 1 with no stop token, so every row
    generates ``--max-new`` tokens. Goal: builtin no slower than ``generate``.
(b) End to end: :class:`~agentgym.baselines.llm_agent.LLMAgent` (tiny model, choice format, builtin backend)
    plays TextWorld over 2 env worker processes of 8 envs each (16 episodes in flight). Printed: env steps/s, the
    generation batch sizes (goal: every waiting episode in one batch, so 16 while 16 episodes run), and the
    share of wall time in ``act_batch`` (prompting + generation; the backend's ``generate`` alone too) vs the
    rest (waiting for env answers, scheduling). The pool is started before the clock (a trainer keeps one).

(c) KV reuse: the same agent in the append prompt mode (action format, 8 new tokens), 16 episodes over 2 workers
    x 8 envs, with the builtin backend's KV reuse on (each turn starts from the previous prompt + reply's KV)
    vs off (``reuse_kv=False``: only the system message is reused). Printed: steps/s and prompt tokens
    prefilled (computed) vs taken from stored KV (reused).

The model is a 0.1 M-parameter random Llama: per-token time is framework overhead, not arithmetic, which is
what the backends differ in on CPU. ``scripts/trainer_gpu_check.py`` measures a 0.5B-shaped model on a GPU.

Run: .venv/bin/python benchmarks/rollout_throughput.py [--quick] [--out benchmarks/results/rollout_throughput.txt]
(under a minute on 2 cores; ``--quick`` is a smoke run of a few seconds and writes nothing). Part (b) runs twice:
with 8 envs per worker, and with 1 (the layout before ``envs_per_worker``: the batch is capped at 2).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym

import agentgym  # noqa: F401
from agentgym.agents import Agent
from agentgym.baselines.generation import Sampling, make_backend
from agentgym.baselines.llm_agent import LLMAgent
from agentgym.rollout import EnvPool, group_specs, rollout
from agentgym.wrappers.lm import build_tiny_causal_lm, load_causal_lm

TASKS = ["coin_collector/3000", "treasure_hunter/3000", "custom_easy/3001", "custom_medium/3000"]


SYSTEM = "You play a text adventure. Reply with one command, e.g. 'open chest', 'take key', 'go east'."


def textworld_observations(count: int) -> list[str]:
    """``count`` first observations of TextWorld test tasks (varied lengths)."""
    env = gym.make("agentgym/TextWorld-v0", split="test")
    try:
        task_ids = env.unwrapped.task_ids
        return [env.reset(seed=k, options={"task_id": task_ids[k % len(task_ids)]})[0] for k in range(count)]
    finally:
        env.close()


def chat_prompts(tokenizer: Any, observations: Sequence[str]) -> list[list[int]]:
    """The chat-templated prompt ids (system message, then the observation) of each observation."""
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": obs}],
            tokenize=False,
            add_generation_prompt=True,
        )
        for obs in observations
    ]
    return [list(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts]


def tokens_per_second(backend: Any, prompts: list[list[int]], batch: int, max_new: int, repeats: int) -> float:
    """Generated tokens/s of ``backend`` over ``prompts`` in batches of ``batch`` (after one untimed batch)."""
    sampling = Sampling(max_new_tokens=max_new, temperature=1.0)
    batches = [prompts[i : i + batch] for i in range(0, len(prompts), batch)] * repeats
    backend.generate(batches[0], sampling)  # warm-up (allocations, lazy imports)
    tokens, start = 0, time.perf_counter()
    for rows in batches:
        tokens += sum(len(g.token_ids) for g in backend.generate(rows, sampling))
    return tokens / (time.perf_counter() - start)


class RecordingBackend:
    """Delegates to a backend, recording each ``generate`` call's batch size and seconds."""

    def __init__(self, inner: Any):
        self.inner, self.sizes, self.seconds = inner, [], 0.0
        self.name, self.shares_policy, self.generator = inner.name, inner.shares_policy, inner.generator

    def generate(self, prompt_token_ids: Sequence[Sequence[int]], sampling: Any) -> list[Any]:
        start = time.perf_counter()
        out = self.inner.generate(prompt_token_ids, sampling)
        self.seconds += time.perf_counter() - start
        self.sizes.append(len(prompt_token_ids))
        return out

    def set_weights(self, weights: Any) -> None:
        self.inner.set_weights(weights)

    def sync(self) -> None:
        self.inner.sync()

    def close(self) -> None:
        self.inner.close()


class TimedAgent(Agent):
    """Delegates to an agent, timing its ``act_batch`` calls (prompting, generation, parsing); ``in_flight()``
    says how many episodes are being played when a batch comes, recorded beside its size."""

    def __init__(self, inner: Agent, in_flight: Any):
        self.inner, self.seconds, self.sizes, self.in_flight = inner, 0.0, [], in_flight
        self.name, self.info_keys = inner.name, inner.info_keys
        self.full = 0  # batches holding every episode in flight

    def act(self, observation: str, info: Any, *, episode_id: str = "") -> Any:
        return self.act_batch([observation], [info], [episode_id])[0]

    def act_batch(self, observations: Sequence[str], infos: Sequence[Any], episode_ids: Sequence[str]) -> list[Any]:
        start = time.perf_counter()
        out = self.inner.act_batch(observations, infos, episode_ids)
        self.seconds += time.perf_counter() - start
        self.sizes.append(len(observations))
        self.full += len(observations) == self.in_flight()
        return out

    def end_episode(self, episode_id: str) -> None:
        self.inner.end_episode(episode_id)


def generation_part(model: Any, tokenizer: Any, observations: Sequence[str], quick: bool) -> list[str]:
    max_new, repeats, rounds = (8, 1, 1) if quick else (32, 2, 3)
    prompts = chat_prompts(tokenizer, observations)
    mean_len = statistics.mean(len(p) for p in prompts)
    lines = [
        f"(a) generation: tiny random Llama, {len(prompts)} TextWorld prompts (mean {mean_len:.0f} tokens), "
        f"{max_new} new tokens per row, temperature 1, CPU, 1 thread, best of {rounds} rounds"
    ]
    print(lines[0], flush=True)
    backends = {name: make_backend(name, model, tokenizer, device="cpu", seed=0) for name in ("hf-generate", "builtin")}
    for batch in (1, 16):
        rows = prompts[:8] if batch == 1 else prompts  # batch 1: 8 single-row calls per repeat
        rate = dict.fromkeys(backends, 0.0)
        for _ in range(rounds):  # the backends take turns; the best round of each counts (the CPU is shared)
            for name, backend in backends.items():
                rate[name] = max(rate[name], tokens_per_second(backend, rows, batch, max_new, repeats))
        lines.append(
            f"  batch {batch:>2}: hf-generate {rate['hf-generate']:8.0f} tok/s   builtin {rate['builtin']:8.0f} tok/s"
            f"   builtin / hf-generate = {rate['builtin'] / rate['hf-generate']:.2f}x"
        )
        print(lines[-1], flush=True)
    return lines


def end_to_end_part(model: Any, tokenizer: Any, quick: bool, per_worker: int) -> list[str]:
    """Steps/s, batch sizes and time shares of the LLM agent playing TextWorld over 2 workers x ``per_worker``."""
    workers = 2
    episodes, max_turns = (16, 3) if quick else (48, 10)
    factory = functools.partial(gym.make, "agentgym/TextWorld-v0", split="test", max_turns=max_turns)
    backend = RecordingBackend(make_backend("builtin", model, tokenizer, device="cpu", seed=0))
    llm = LLMAgent(model, tokenizer, output_format="choice", max_new_tokens=16, device="cpu", backend=backend)
    specs = group_specs(TASKS, seeds=range(len(TASKS)), group_size=episodes // len(TASKS))
    ended: list[float] = []  # every env starts the next episode as soon as one ends, until none is left
    agent = TimedAgent(llm, in_flight=lambda: min(workers * per_worker, len(specs) - len(ended)))
    with EnvPool(factory, workers, envs_per_worker=per_worker, info_keys=agent.info_keys) as pool:
        start = time.perf_counter()
        trajectories = rollout(pool, agent, specs, on_episode=lambda _, seconds: ended.append(seconds))
        wall = time.perf_counter() - start
    steps = sum(len(t.turns) for t in trajectories)
    sizes = backend.sizes
    return [
        f"(b) end to end: LLMAgent (tiny model, choice format, builtin backend) on TextWorld, {workers} env workers x "
        f"{per_worker} envs = {workers * per_worker} episodes in flight, {len(specs)} episodes of <= {max_turns} turns",
        f"  {steps} env steps in {wall:.1f} s = {steps / wall:.1f} steps/s",
        f"  generation batch sizes: mean {statistics.mean(sizes):.1f}, max {max(sizes)}, first {sizes[0]} "
        f"({len(sizes)} generate calls); {agent.full} of {len(agent.sizes)} act_batch calls hold every episode "
        f"in flight (fewer than {workers * per_worker} once the last episodes end)",
        f"  wall time: act_batch {100 * agent.seconds / wall:.0f}% (of which generate {100 * backend.seconds / wall:.0f}%),"
        f" envs + scheduling {100 * (wall - agent.seconds) / wall:.0f}%",
    ]


def kv_reuse_part(model: Any, tokenizer: Any, quick: bool) -> list[str]:
    """Steps/s and prefill tokens computed vs reused of an append-mode rollout, KV reuse on vs off."""
    workers, per_worker = 2, 8
    episodes, max_turns = (16, 3) if quick else (16, 10)
    factory = functools.partial(gym.make, "agentgym/TextWorld-v0", split="test", max_turns=max_turns)
    specs = group_specs(TASKS, seeds=range(len(TASKS)), group_size=episodes // len(TASKS))
    lines = [
        f"(c) KV reuse: LLMAgent (append prompt mode, action format, 8 new tokens) on TextWorld, {workers} x "
        f"{per_worker} envs, {len(specs)} episodes of <= {max_turns} turns"
    ]
    rates = {}
    with EnvPool(factory, workers, envs_per_worker=per_worker) as pool:
        for reuse in (True, False):
            backend = make_backend("builtin", model, tokenizer, device="cpu", seed=0, reuse_kv=reuse)
            agent = LLMAgent(
                model,
                tokenizer,
                output_format="action",
                max_new_tokens=8,
                device="cpu",
                backend=backend,
                prompt_mode="append",
            )
            start = time.perf_counter()
            trajectories = rollout(pool, agent, specs)
            wall = time.perf_counter() - start
            steps = sum(len(t.turns) for t in trajectories)
            rates[reuse] = steps / wall
            done = backend.prefill_tokens
            lines.append(
                f"  reuse {'on ' if reuse else 'off'}: {steps} env steps in {wall:.1f} s = {rates[reuse]:.1f} steps/s;"
                f" prefill tokens computed {done['computed']}, reused {done['reused']}"
                f" ({100 * done['reused'] / max(1, done['computed'] + done['reused']):.0f}% reused)"
            )
            print(lines[-1], flush=True)
    lines.append(f"  steps/s reuse on / off = {rates[True] / rates[False]:.2f}x")
    print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (a few seconds); writes nothing")
    parser.add_argument("--out", default="benchmarks/results/rollout_throughput.txt", help="where to write the report")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    observations = textworld_observations(16)
    with tempfile.TemporaryDirectory() as folder:  # a tokenizer trained on TextWorld text: realistic lengths
        model, tokenizer = load_causal_lm(build_tiny_causal_lm(folder, [SYSTEM, *observations], vocab_size=2048))
    lines = generation_part(model, tokenizer, observations, args.quick)
    for per_worker in (8, 1):  # 1: the old layout, one env per process (the batch is capped at 2)
        for line in end_to_end_part(model, tokenizer, args.quick, per_worker):
            print(line, flush=True)
            lines.append(line)
    lines += kv_reuse_part(model, tokenizer, args.quick)
    if not args.quick:
        with open(args.out, "w") as out:
            out.write(
                f"# .venv/bin/python benchmarks/rollout_throughput.py, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
                ", 2-core CPU shared with other jobs (timings are noisy)\n" + "\n".join(lines) + "\n"
            )
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
