"""Does a small real LLM learn? SmolLM2-135M-Instruct + LoRA on TextWorld coin collector, 2 CPU cores.

The policy answers in the **choice** format (``baselines/llm_agent.py``: the reply is one admissible
action, by constrained decoding, with the exact masked log-probs PPO needs). The prompt is short: the
goal (the quest's directions), the current observation and the admissible actions; no history.

* **Training games**: coin-collector (level 5: four moves then ``take coin``) games 1000-1005 of the train
  split. **Held-out games** (never trained on): 1006-1009 (train split), 2000-2001 (valid), 3000-3001
  (test): 8 worlds, all of the same kind.
* **Runs**: GRPO and GiGPO (``baselines/train_pg.py`` through its public ``train(Args)``), 3 seeds each,
  with TextWorld's dense shaping signal (``intermediate_reward``) as a weighted per-turn reward; near-miss
  mapping off.
* **Evaluation** on the held-out games, before training (the base model: LoRA starts as the identity) and
  after each run: greedy (one episode per game) and sampled (``--samples`` episodes per game per run,
  ``--base-samples`` for the base model), success with 95% Wilson intervals over episodes. The 3 seeds of
  an estimator are also **pooled** (independent runs of one recipe: 3x the episodes, a narrower interval);
  the verdict lines compare each pooled interval with the base model's and the random-choice baseline's.
  Next to it: the random-choice baseline (uniform over the admissible actions, same games, same turn
  limit) and a DRRN trained here on the same 6 training games (``baselines/train_drrn.py``,
  ``--drrn-steps`` env steps), evaluated greedily on the held-out games.

What the policy can learn: with no history in the prompt it cannot tell the exit it came from, so the
best it can do is a random walk along the exits that never wastes a turn on ``look``/``inventory`` and
takes the coin when it sees it; greedy decoding of such a policy walks back and forth (its greedy success
stays low), sampled decoding is where learning shows.

Cost (CPU time dominates; everything is the model's matrix products, the game engine is negligible):

* rollouts reuse the KV of each prompt's system message (goal and instructions, two thirds of the prompt;
  ``LLMAgent._reuse_prefixes``): about 2.7x faster than re-running whole prompts;
* LoRA sits on the top 8 of the 30 blocks only (``LORA_LAYERS``), so backward stops there: an update is
  about half the cost of adapters on every block;
* one PPO epoch of 32 rows in 2 minibatches (2 optimizer steps per update at one pass's cost);
* float32 throughout. bfloat16 autocast makes this CPU's matrix products 2.5x faster, but it rounds the
  small LoRA deltas away (measured: after one update the recomputed log-probs were bit-identical, so the
  policy never moved); it is not used.

Measured (full default run, 2 jobs, 2 cores shared with other work, load average mean 3.4): 1612 s wall,
2178 CPU s in the jobs (about 18 min on 2 free cores): a training run of 4 updates plus its evaluation
310-345 CPU s, the base model's evaluation 149, DRRN 48. The learning rate matters: at 5e-3 every seed
collapsed to one action sequence within two updates (all groups zero-variance); 3e-3 is the default, and
even there the seeds disagree (see the README's Baselines section for the numbers and the verdict).

Writes ``benchmarks/results/learning_smollm2.csv`` (one row per run and step: the training curve),
``learning_smollm2_summary.csv`` (one row per policy and evaluation mode, with wall, CPU, train and eval
seconds, and a ``(run)`` row with the total wall and CPU time and the load average) and
``learning_smollm2.png``, and prints the table. Jobs run in ``--jobs`` processes with one torch thread
each; wall times are inflated when other work shares the cores (the load average is sampled every 15 s),
CPU seconds are not: their sum over ``--jobs`` is the wall time on free cores.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/learning_smollm2.py`` (``--steps 2 --seeds 0
--no-baselines`` for a quick check; ``--replot`` redraws the PNG from the CSVs).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import multiprocessing
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
ENV_ID = "agentgym/TextWorld-v0"
MAX_TURNS = 8
TRAIN_IDS = [f"coin_collector/{seed}" for seed in range(1000, 1006)]
HELD_OUT = {
    "train": [f"coin_collector/{s}" for s in range(1006, 1010)],
    "valid": ["coin_collector/2000", "coin_collector/2001"],
    "test": ["coin_collector/3000", "coin_collector/3001"],
}
SYSTEM = "You play a text adventure. Follow the goal's directions."

#: LoRA on every linear layer of the top ``LORA_LAYERS`` decoder blocks only: the backward pass then stops
#: there (the lower blocks run forward without a graph), which makes an update about twice as cheap as
#: adapters on all 30 blocks.
LORA_LAYERS = range(22, 30)
LORA_MODULES = [
    f"layers.{layer}.{part}"
    for layer in LORA_LAYERS
    for part in (
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.o_proj",
        "mlp.gate_proj",
        "mlp.up_proj",
        "mlp.down_proj",
    )
]

#: The trainer settings of every run (fields of ``agentgym.baselines.train_pg.Args``).
TRAIN = dict(
    env_id=ENV_ID,
    env_kwargs={"kinds": ["coin_collector"]},
    split="train",
    task_ids=TRAIN_IDS,
    max_turns=MAX_TURNS,
    info_reward="textworld.intermediate_reward",
    info_reward_weight=0.5,
    tasks_per_step=4,
    group_size=4,
    gamma=0.9,
    in_process=True,
    num_workers=16,
    model="smollm2",
    output_format="choice",
    near_miss=False,
    history=0,
    max_prompt_tokens=200,
    temperature=1.0,
    system_prompt=SYSTEM,
    lora=True,
    lora_r=8,
    lora_alpha=16,
    lora_target_modules=LORA_MODULES,
    learning_rate=3e-3,
    ppo_epochs=1,
    minibatch_rows=16,
    micro_batch_rows=16,
    max_rows=32,
    eval_every=0,
    save_every=0,
    torch_threads=1,
    tensorboard=False,
    progress=False,
)
#: The agent settings of the evaluations (the same prompt as in training).
AGENT = dict(output_format="choice", history=0, max_prompt_tokens=200, system_prompt=SYSTEM)


# --------------------------------------------------------------------------- evaluation
def wilson(wins: int, n: int) -> tuple[float, float]:
    from agentgym.store import wilson_interval

    return wilson_interval(wins, n)


def held_out_wins(agent: Any, episodes_per_game: int, tag: str) -> list[bool]:
    """``won`` of each episode: every held-out game played ``episodes_per_game`` times (reset seed = index)."""
    import gymnasium as gym

    import agentgym  # noqa: F401
    from agentgym.rollout import EpisodeSpec, rollout

    wins: list[bool] = []
    for split, task_ids in HELD_OUT.items():
        specs = [EpisodeSpec(f"{tag}/{task}/{k}", task, k) for task in task_ids for k in range(episodes_per_game)]

        def make(split: str = split) -> Any:
            return gym.make(ENV_ID, split=split, kinds=["coin_collector"], max_turns=MAX_TURNS)

        trajectories = rollout(
            make, agent, specs, num_workers=len(specs), in_process=True, info_keys=getattr(agent, "info_keys", None)
        )
        wins += [t.won for t in trajectories]
    return wins


def llm_evaluation(agent: Any, samples: int, tag: str) -> dict[str, list[bool]]:
    agent.greedy = True
    greedy = held_out_wins(agent, 1, f"{tag}/greedy")
    agent.greedy = False
    return {"greedy": greedy, "sampled": held_out_wins(agent, samples, f"{tag}/sampled")}


# --------------------------------------------------------------------------- jobs (one process each)
def _threads() -> None:
    import torch

    torch.set_num_threads(1)


def timed(job: Any, *args: Any) -> dict[str, Any]:
    """``job(*args)`` with ``cpu_s``, the CPU seconds it used: unlike its wall time, not inflated by other
    work on the cores (the job runs one torch thread, so on a free core wall time is about ``cpu_s``)."""
    start = time.process_time()
    result = job(*args)
    return {**result, "cpu_s": time.process_time() - start}


def job_before(samples: int) -> dict[str, Any]:
    """The base model in the choice format (the policy every run starts from)."""
    _threads()
    from agentgym.baselines.llm_agent import LLMAgent

    tick = time.perf_counter()
    agent = LLMAgent.from_pretrained("smollm2", seed=0, device="cpu", **AGENT)
    result = llm_evaluation(agent, samples, "before")
    return {
        "policy": "SmolLM2 before training",
        "wins": result,
        "wall_s": time.perf_counter() - tick,
        "eval_s": time.perf_counter() - tick,
    }


def job_train(estimator: str, seed: int, steps: int, samples: int, out: str) -> dict[str, Any]:
    """One training run, then its final checkpoint evaluated on the held-out games."""
    _threads()
    from agentgym.baselines.llm_agent import LLMAgent
    from agentgym.baselines.train_pg import load_config, train

    tick = time.perf_counter()
    run_name = f"{estimator}_seed{seed}"
    args = load_config(
        {**TRAIN, "estimator": estimator, "seed": seed, "num_steps": steps, "output_dir": out, "run_name": run_name}
    )
    history = train(args).history
    train_s = time.perf_counter() - tick
    agent = LLMAgent.from_checkpoint(Path(out) / run_name / f"checkpoint-{steps:06d}", seed=seed, device="cpu")
    result = llm_evaluation(agent, samples, run_name)
    return {
        "policy": f"{estimator} seed {seed}",
        "estimator": estimator,
        "seed": seed,
        "wins": result,
        "history": history,
        "train_s": train_s,
        "eval_s": time.perf_counter() - tick - train_s,
        "wall_s": time.perf_counter() - tick,
    }


def job_drrn(total_steps: int, out: str) -> dict[str, Any]:
    """A DRRN trained on the same training games (same turn limit), greedy on the held-out games."""
    _threads()
    from agentgym.baselines import train_drrn
    from agentgym.baselines.drrn import DRRNAgent

    tick = time.perf_counter()
    args = train_drrn.Args(
        task_ids=tuple(TRAIN_IDS),
        max_turns=MAX_TURNS,
        total_steps=total_steps,
        eval_every=total_steps,
        eval_split=None,
        output_dir=out,
        progress=False,
        seed=1,
    )
    result = train_drrn.train(args)
    agent = DRRNAgent.from_checkpoint(result.checkpoint, device="cpu")
    return {
        "policy": f"DRRN ({total_steps} env steps)",
        "wins": {"greedy": held_out_wins(agent, 1, "drrn")},
        "wall_s": time.perf_counter() - tick,
    }


def job_random(samples: int) -> dict[str, Any]:
    from agentgym.agents import RandomAgent

    tick = time.perf_counter()
    wins = held_out_wins(RandomAgent(seed=0), samples, "random")
    return {"policy": "random choice", "wins": {"sampled": wins}, "wall_s": time.perf_counter() - tick}


# --------------------------------------------------------------------------- outputs
def pooled(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per estimator, the held-out episodes of all its seeds together (the runs are independent, so their
    episodes pool into one success estimate of the training recipe, with a narrower interval)."""
    out = []
    for estimator in dict.fromkeys(r["estimator"] for r in results if "estimator" in r):
        runs = [r for r in results if r.get("estimator") == estimator]
        wins = {mode: [w for r in runs for w in r["wins"][mode]] for mode in runs[0]["wins"]}
        out.append(
            {
                "policy": f"{estimator} after, {len(runs)} seeds pooled",
                "estimator": estimator,
                "wins": wins,
                "pooled": True,
                "wall_s": sum(r["wall_s"] for r in runs),
                "train_s": sum(r["train_s"] for r in runs),
                "eval_s": sum(r["eval_s"] for r in runs),
                "cpu_s": sum(r["cpu_s"] for r in runs),
            }
        )
    return out


def summary_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for result in results:
        for mode, wins in result["wins"].items():
            low, high = wilson(sum(wins), len(wins))
            rows.append(
                {
                    "policy": result["policy"],
                    "mode": mode,
                    "wins": sum(wins),
                    "episodes": len(wins),
                    "success": round(sum(wins) / len(wins), 4),
                    "ci_low": round(low, 4),
                    "ci_high": round(high, 4),
                    "wall_s": round(result["wall_s"], 1),
                    **{key: round(result[key], 1) for key in ("train_s", "eval_s", "cpu_s") if key in result},
                }
            )
    return rows


def verdicts(summary: list[dict[str, Any]]) -> list[str]:
    """For each pooled estimator and mode: is its 95% interval entirely above the base model's and the
    random-choice baseline's (sampled mode: random plays sampled)?"""

    def find(policy: str, mode: str) -> dict[str, Any] | None:
        return next((r for r in summary if r["policy"] == policy and r["mode"] == mode), None)

    lines = []
    for row in summary:
        if "pooled" not in row["policy"]:
            continue
        for name, other in (
            ("its start", find("SmolLM2 before training", row["mode"])),
            ("random choice", find("random choice", "sampled")),
        ):
            if other is None:
                continue
            above = float(row["ci_low"]) > float(other["ci_high"])
            lines.append(
                f"{row['policy']} ({row['mode']}) vs {name}: [{float(row['ci_low']):.3f}, "
                f"{float(row['ci_high']):.3f}] vs [{float(other['ci_low']):.3f}, "
                f"{float(other['ci_high']):.3f}]: {'above, intervals apart' if above else 'OVERLAP'}"
            )
    return lines


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def plot(curves: list[dict[str, str]], summary: list[dict[str, str]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [1.1, 1]})
    colors = {"grpo": "tab:blue", "gigpo": "tab:orange"}
    for run in dict.fromkeys(row["run"] for row in curves):
        rows = [row for row in curves if row["run"] == run]
        estimator = rows[0]["estimator"]
        left.plot(
            [int(r["step"]) for r in rows],
            [float(r["rollout/success_rate"]) for r in rows],
            "o-",
            ms=3,
            color=colors.get(estimator),
            alpha=0.8,
            label=run,
        )
    left.set_xlabel("update step")
    left.set_ylabel("success of the training rollouts (sampled)")
    left.set_ylim(-0.03, 1.03)
    left.legend(fontsize=7)
    labels = [f"{row['policy']}\n({row['mode']}, n={row['episodes']})" for row in summary]
    values = [float(row["success"]) for row in summary]
    errors = [
        [v - float(r["ci_low"]) for v, r in zip(values, summary)],
        [float(r["ci_high"]) - v for v, r in zip(values, summary)],
    ]
    bar_colors = [
        "tab:gray"
        if "random" in lab or "DRRN" in lab
        else ("tab:green" if "before" in lab else colors.get(lab.split()[0], "tab:purple"))
        for lab in labels
    ]
    y = range(len(summary))
    right.barh(list(y), values, xerr=errors, color=bar_colors, alpha=0.8, capsize=2)
    right.set_yticks(list(y), labels, fontsize=6)
    right.invert_yaxis()
    right.set_xlim(0, 1)
    right.set_xlabel("held-out success (95% Wilson interval)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_table(summary: list[dict[str, Any]]) -> None:
    print(f"{'policy':32} {'mode':8} {'wins/n':>8} {'success':>8}  95% Wilson")
    for row in summary:
        print(
            f"{row['policy']:32} {row['mode']:8} {row['wins']:>3}/{row['episodes']:<4} "
            f"{float(row['success']):8.3f}  [{float(row['ci_low']):.3f}, {float(row['ci_high']):.3f}]"
        )


class LoadMonitor:
    """The 1-minute load average every ``every`` seconds in a background thread (other work on the cores
    inflates the wall times; this records how much there was)."""

    def __init__(self, every: float = 15.0):
        import threading

        self.samples = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self.samples.append(os.getloadavg()[0])
        return {
            "load_start": round(self.samples[0], 2),
            "load_mean": round(sum(self.samples) / len(self.samples), 2),
            "load_max": round(max(self.samples), 2),
            "load_end": round(self.samples[-1], 2),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="update steps per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--estimators", nargs="+", default=["grpo", "gigpo"])
    parser.add_argument("--samples", type=int, default=3, help="sampled episodes per held-out game, per run")
    parser.add_argument(
        "--base-samples", type=int, default=8, help="sampled episodes per held-out game of the base model"
    )
    parser.add_argument("--random-samples", type=int, default=25, help="random-choice episodes per game")
    parser.add_argument("--drrn-steps", type=int, default=3000)
    parser.add_argument("--jobs", type=int, default=2, help="parallel processes (one torch thread each)")
    parser.add_argument("--no-baselines", action="store_true", help="only the training runs (pilots)")
    parser.add_argument("--tag", default="learning_smollm2", help="output file stem under benchmarks/results")
    parser.add_argument("--replot", action="store_true", help="only redraw the PNG from the CSVs")
    cli = parser.parse_args()
    curves_path, summary_path = RESULTS / f"{cli.tag}.csv", RESULTS / f"{cli.tag}_summary.csv"
    png = RESULTS / f"{cli.tag}.png"
    title = (
        f"SmolLM2-135M-Instruct + LoRA, choice format, TextWorld coin collector: {len(TRAIN_IDS)} training "
        f"games, {sum(map(len, HELD_OUT.values()))} held-out games, {MAX_TURNS} turns"
    )
    if cli.replot:
        with open(curves_path) as a, open(summary_path) as b:
            summary = [row for row in csv.DictReader(b) if row["mode"] != "wall"]
            plot(list(csv.DictReader(a)), summary, png, title)
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    RESULTS.mkdir(exist_ok=True)
    out = tempfile.mkdtemp(prefix="learning_smollm2_")
    tick, load = time.perf_counter(), LoadMonitor()
    from agentgym.wrappers.lm import load_causal_lm

    load_causal_lm("smollm2")  # converts the GGUF once, before the jobs race to
    results: list[dict[str, Any]] = [] if cli.no_baselines else [timed(job_random, cli.random_samples)]
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(cli.jobs, mp_context=context) as pool:
        # the longest jobs first, so the short ones fill the gaps at the end
        futures = [
            pool.submit(timed, job_train, est, seed, cli.steps, cli.samples, out)
            for seed in cli.seeds
            for est in cli.estimators
        ]
        if not cli.no_baselines:
            futures.append(pool.submit(timed, job_before, cli.base_samples))
            futures.append(pool.submit(timed, job_drrn, cli.drrn_steps, str(Path(out) / "drrn")))
        for future in concurrent.futures.as_completed(futures):
            result = future.result()
            print(
                f"done: {result['policy']} ({result['wall_s']:.0f} s wall, {result['cpu_s']:.0f} CPU s) at "
                f"{time.perf_counter() - tick:.0f} s",
                flush=True,
            )
            results.append(result)
    wall = time.perf_counter() - tick
    loads = load.stop()
    order = {"random choice": 0, "SmolLM2 before training": 1}
    results.sort(
        key=lambda r: (
            order.get(r["policy"], 2 if "DRRN" not in r["policy"] else 4),
            r.get("estimator", ""),
            r.get("seed", 0),
        )
    )
    curves = [
        {"run": r["policy"], "estimator": r["estimator"], "seed": r["seed"], "step": k + 1, **metrics}
        for r in results
        if "history" in r
        for k, metrics in enumerate(r["history"])
    ]
    everything = results + pooled(results)
    everything.sort(
        key=lambda r: (
            order.get(r["policy"], 2 if "pooled" in r else 3 if "DRRN" not in r["policy"] else 4),
            r.get("estimator", ""),
            r.get("seed", 0),
        )
    )
    summary = summary_rows(everything)
    cpu = sum(r["cpu_s"] for r in results)
    note = {
        "policy": "(run)",
        "mode": "wall",
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        **loads,
        "jobs": cli.jobs,
        "steps": cli.steps,
        "cpus": os.cpu_count(),
    }
    write_csv(curves_path, curves)
    write_csv(summary_path, [*summary, note])
    plot(
        [{k: str(v) for k, v in row.items()} for row in curves],
        [row for row in summary if "seed " not in row["policy"]],
        png,
        title,
    )
    print_table(summary)
    for line in verdicts(summary):
        print(line)
    print(
        f"wall time {wall:.0f} s with {cli.jobs} jobs on {os.cpu_count()} CPUs; 1-min load average "
        f"{loads['load_start']:.2f} at the start, mean {loads['load_mean']:.2f}, max {loads['load_max']:.2f} "
        f"(above {cli.jobs} means other work shared the cores and inflated the wall time); {cpu:.0f} CPU s in the "
        f"jobs, about {cpu / cli.jobs:.0f} s of wall time on {cli.jobs} free cores; runs under {out}"
    )
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
