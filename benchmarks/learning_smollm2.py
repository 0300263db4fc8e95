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
  after each run: greedy (one episode per game) and sampled (``--samples`` episodes per game), success with
  95% Wilson intervals over episodes. Next to it: the random-choice baseline (uniform over the admissible
  actions, same games, same turn limit) and a DRRN trained here on the same 6 training games
  (``baselines/train_drrn.py``, ``--drrn-steps`` env steps), evaluated greedily on the held-out games.

Writes ``benchmarks/results/learning_smollm2.csv`` (one row per run and step: the training curve),
``learning_smollm2_summary.csv`` (one row per policy and evaluation mode) and ``learning_smollm2.png``, and
prints the table. Jobs run in ``--jobs`` processes with one torch thread each; wall times are inflated
when other work shares the cores (the load average is recorded).

Cost measured (quick check ``--steps 3 --seeds 0 --estimators gigpo --samples 2``, 2 jobs): one run of 3
updates plus its evaluation took 667 s wall, the base-model evaluation 179 s; the full default (6 runs)
is therefore about 35 wall minutes on 2 free cores.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/learning_smollm2.py`` (``--steps 2 --seeds 0`` for a
quick check; ``--replot`` redraws the PNG from the CSVs).
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
HELD_OUT = {"train": [f"coin_collector/{s}" for s in range(1006, 1010)],
            "valid": ["coin_collector/2000", "coin_collector/2001"],
            "test": ["coin_collector/3000", "coin_collector/3001"]}
SYSTEM = "You play a text adventure. Follow the goal's directions."

#: The trainer settings of every run (fields of ``agentgym.baselines.train_pg.Args``).
TRAIN = dict(
    env_id=ENV_ID, env_kwargs={"kinds": ["coin_collector"]}, split="train", task_ids=TRAIN_IDS,
    max_turns=MAX_TURNS, info_reward="textworld.intermediate_reward", info_reward_weight=0.5,
    tasks_per_step=4, group_size=4, gamma=0.9, in_process=True, num_workers=16,
    model="smollm2", output_format="choice", near_miss=False, history=0, max_prompt_tokens=200,
    temperature=1.0, system_prompt=SYSTEM,
    lora=True, lora_r=8, lora_alpha=16, lora_target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
    learning_rate=2e-3, ppo_epochs=2, minibatch_rows=32, micro_batch_rows=8, max_rows=32,
    eval_every=0, save_every=0, torch_threads=1, tensorboard=False, progress=False,
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

        trajectories = rollout(make, agent, specs, num_workers=len(specs), in_process=True,
                               info_keys=getattr(agent, "info_keys", None))
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


def job_before(samples: int) -> dict[str, Any]:
    """The base model in the choice format (the policy every run starts from)."""
    _threads()
    from agentgym.baselines.llm_agent import LLMAgent

    tick = time.perf_counter()
    agent = LLMAgent.from_pretrained("smollm2", seed=0, device="cpu", **AGENT)
    result = llm_evaluation(agent, samples, "before")
    return {"policy": "SmolLM2 before training", "wins": result, "wall_s": time.perf_counter() - tick}


def job_train(estimator: str, seed: int, steps: int, samples: int, out: str) -> dict[str, Any]:
    """One training run, then its final checkpoint evaluated on the held-out games."""
    _threads()
    from agentgym.baselines.llm_agent import LLMAgent
    from agentgym.baselines.train_pg import load_config, train

    tick = time.perf_counter()
    run_name = f"{estimator}_seed{seed}"
    args = load_config({**TRAIN, "estimator": estimator, "seed": seed, "num_steps": steps, "output_dir": out,
                        "run_name": run_name})
    history = train(args)
    train_s = time.perf_counter() - tick
    agent = LLMAgent.from_checkpoint(Path(out) / run_name / f"checkpoint-{steps:06d}", seed=seed, device="cpu")
    result = llm_evaluation(agent, samples, run_name)
    return {"policy": f"{estimator} seed {seed}", "estimator": estimator, "seed": seed, "wins": result,
            "history": history, "train_s": train_s, "wall_s": time.perf_counter() - tick}


def job_drrn(total_steps: int, out: str) -> dict[str, Any]:
    """A DRRN trained on the same training games (same turn limit), greedy on the held-out games."""
    _threads()
    from agentgym.baselines import train_drrn
    from agentgym.baselines.drrn import DRRNAgent

    tick = time.perf_counter()
    args = train_drrn.Args(task_ids=tuple(TRAIN_IDS), max_turns=MAX_TURNS, total_steps=total_steps,
                           eval_every=total_steps, eval_split=None, output_dir=out, progress=False, seed=1)
    train_drrn.main(args)
    (run,) = list(Path(out).glob("*__drrn__*"))
    agent = DRRNAgent.from_checkpoint(run / "checkpoint", device="cpu")
    return {"policy": f"DRRN ({total_steps} env steps)", "wins": {"greedy": held_out_wins(agent, 1, "drrn")},
            "wall_s": time.perf_counter() - tick}


def job_random(samples: int) -> dict[str, Any]:
    from agentgym.agents import RandomAgent

    tick = time.perf_counter()
    wins = held_out_wins(RandomAgent(seed=0), samples, "random")
    return {"policy": "random choice", "wins": {"sampled": wins}, "wall_s": time.perf_counter() - tick}


# --------------------------------------------------------------------------- outputs
def summary_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for result in results:
        for mode, wins in result["wins"].items():
            low, high = wilson(sum(wins), len(wins))
            rows.append({"policy": result["policy"], "mode": mode, "wins": sum(wins), "episodes": len(wins),
                         "success": round(sum(wins) / len(wins), 4), "ci_low": round(low, 4),
                         "ci_high": round(high, 4), "wall_s": round(result["wall_s"], 1)})
    return rows


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
        left.plot([int(r["step"]) for r in rows], [float(r["charts/success"]) for r in rows], "o-", ms=3,
                  color=colors.get(estimator), alpha=0.8, label=run)
    left.set_xlabel("update step")
    left.set_ylabel("success of the training rollouts (sampled)")
    left.set_ylim(-0.03, 1.03)
    left.legend(fontsize=7)
    labels = [f"{row['policy']}\n({row['mode']}, n={row['episodes']})" for row in summary]
    values = [float(row["success"]) for row in summary]
    errors = [[v - float(r["ci_low"]) for v, r in zip(values, summary)],
              [float(r["ci_high"]) - v for v, r in zip(values, summary)]]
    bar_colors = ["tab:gray" if "random" in lab or "DRRN" in lab else
                  ("tab:green" if "before" in lab else colors.get(lab.split()[0], "tab:purple")) for lab in labels]
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
        print(f"{row['policy']:32} {row['mode']:8} {row['wins']:>3}/{row['episodes']:<4} "
              f"{float(row['success']):8.3f}  [{float(row['ci_low']):.3f}, {float(row['ci_high']):.3f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="update steps per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--estimators", nargs="+", default=["grpo", "gigpo"])
    parser.add_argument("--samples", type=int, default=4, help="sampled episodes per held-out game")
    parser.add_argument("--random-samples", type=int, default=25, help="random-choice episodes per game")
    parser.add_argument("--drrn-steps", type=int, default=3000)
    parser.add_argument("--jobs", type=int, default=2, help="parallel processes (one torch thread each)")
    parser.add_argument("--tag", default="learning_smollm2", help="output file stem under benchmarks/results")
    parser.add_argument("--replot", action="store_true", help="only redraw the PNG from the CSVs")
    cli = parser.parse_args()
    curves_path, summary_path = RESULTS / f"{cli.tag}.csv", RESULTS / f"{cli.tag}_summary.csv"
    png = RESULTS / f"{cli.tag}.png"
    title = (f"SmolLM2-135M-Instruct + LoRA, choice format, TextWorld coin collector: {len(TRAIN_IDS)} training "
             f"games, {sum(map(len, HELD_OUT.values()))} held-out games, {MAX_TURNS} turns")
    if cli.replot:
        with open(curves_path) as a, open(summary_path) as b:
            plot(list(csv.DictReader(a)), list(csv.DictReader(b)), png, title)
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    RESULTS.mkdir(exist_ok=True)
    out = tempfile.mkdtemp(prefix="learning_smollm2_")
    tick, load_start = time.perf_counter(), os.getloadavg()
    from agentgym.wrappers.lm import load_causal_lm

    load_causal_lm("smollm2")  # converts the GGUF once, before the jobs race to
    results: list[dict[str, Any]] = [job_random(cli.random_samples)]
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(cli.jobs, mp_context=context) as pool:
        futures = [pool.submit(job_before, cli.samples)]
        futures += [pool.submit(job_train, est, seed, cli.steps, cli.samples, out)
                    for est in cli.estimators for seed in cli.seeds]
        futures.append(pool.submit(job_drrn, cli.drrn_steps, str(Path(out) / "drrn")))
        for future in concurrent.futures.as_completed(futures):
            result = future.result()
            print(f"done: {result['policy']} ({result['wall_s']:.0f} s)", flush=True)
            results.append(result)
    wall = time.perf_counter() - tick
    order = {"random choice": 0, "SmolLM2 before training": 1}
    results.sort(key=lambda r: (order.get(r["policy"], 2 if "DRRN" not in r["policy"] else 3),
                                r.get("estimator", ""), r.get("seed", 0)))
    curves = [{"run": r["policy"], "estimator": r["estimator"], "seed": r["seed"], "step": k + 1, **metrics}
              for r in results if "history" in r for k, metrics in enumerate(r["history"])]
    summary = summary_rows(results)
    note = {"policy": "(run)", "mode": "wall", "wall_s": round(wall, 1),
            "load_before": round(load_start[0], 2), "load_after": round(os.getloadavg()[0], 2),
            "jobs": cli.jobs, "steps": cli.steps}
    write_csv(curves_path, curves)
    write_csv(summary_path, [*summary, note])
    plot([{k: str(v) for k, v in row.items()} for row in curves], summary, png, title)
    print_table(summary)
    print(f"wall time {wall:.0f} s with {cli.jobs} jobs; 1-min load average {load_start[0]:.2f} at the start, "
          f"{os.getloadavg()[0]:.2f} at the end; runs under {out}")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
