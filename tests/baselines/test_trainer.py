"""The PPO-clip trainer with a tiny random model: learning, exact resume, `agentgym train` and `agentgym eval`."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from agentgym.baselines.runs import COMMON_METRICS, read_metrics  # noqa: E402
from agentgym.baselines.train_pg import Args, train  # noqa: E402
from agentgym.cli import main as cli_main  # noqa: E402
from agentgym.store import ResultStore  # noqa: E402
from agentgym.trajectory import load_jsonl  # noqa: E402
from agentgym.wrappers.lm import build_tiny_causal_lm  # noqa: E402

SAY = "llm_helpers:SayEnv"


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    torch.set_num_threads(1)
    return str(build_tiny_causal_lm(tmp_path_factory.mktemp("tiny_trainer_lm")))


def _args(tiny_path, out, **kwargs):
    base = dict(
        env_id=SAY,
        model=tiny_path,
        in_process=True,
        num_workers=8,
        tasks_per_step=4,
        group_size=8,
        output_format="action",
        max_new_tokens=3,
        history=0,
        output_dir=str(out),
        run_name="run",
        save_every=0,
        tensorboard=False,
        progress=False,
        minibatch_rows=32,
        micro_batch_rows=16,
    )
    base.update(kwargs)
    return Args(**base)


def test_trainer_raises_mean_reward_on_a_learnable_env(tiny_path, tmp_path):
    result = train(_args(tiny_path, tmp_path, lora=False, learning_rate=1e-2, num_steps=25, seed=0))
    rewards = [m["rollout/task_return"] for m in result.history]
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert last >= first + 0.4, rewards  # measured: about 0.02 -> 1.0
    assert result.checkpoint == tmp_path / "run" / "checkpoint-000025" and result.run_dir == tmp_path / "run"
    assert (result.checkpoint / "agent.json").is_file()
    from llm_helpers import SayEnv

    from agentgym.agents import make_agent  # a full fine-tuning checkpoint is an agent too (greedy)

    trained = make_agent(str(tmp_path / "run" / "checkpoint-000025"))
    env = SayEnv()
    obs, info = env.reset(seed=0)
    assert env.step(trained.act(obs, info, episode_id="e").text)[1] == 1.0
    assert read_metrics(tmp_path / "run") == result.history and [m["step"] for m in result.history] == list(
        range(1, 26)
    )
    assert json.loads((tmp_path / "run" / "config.json").read_text())["algo"] == "pg"


def test_checkpoint_resumes_to_the_identical_next_step(tiny_path, tmp_path):
    """LoRA + KL to the reference (adapters disabled), 2-turn episodes, GiGPO: stop after step 2, resume."""
    common = dict(
        lora=True,
        lora_target_modules=["q_proj", "v_proj"],
        learning_rate=5e-3,
        kl_coef=0.1,
        estimator="gigpo",
        gamma=0.9,
        env_kwargs={"turns": 2},
        tasks_per_step=2,
        group_size=4,
        micro_batch_rows=4,
        minibatch_rows=8,
        ppo_epochs=2,
        seed=3,
    )
    full = train(_args(tiny_path, tmp_path / "a", num_steps=3, save_every=2, **common)).history
    checkpoint = tmp_path / "a" / "run" / "checkpoint-000002"
    resumed = train(_args(tiny_path, tmp_path / "b", num_steps=3, resume=str(checkpoint), **common)).history
    assert len(resumed) == 1 and resumed[0]["step"] == 3
    for key in ("train/loss", "train/kl", "rollout/task_return", "perf/rows"):
        assert resumed[0][key] == full[2][key], key
    assert full[2]["train/kl"] > 0


def test_agentgym_train_and_eval_a_checkpoint(tiny_path, tmp_path, capsys):
    config = tmp_path / "say.yaml"
    config.write_text(
        "algo: pg\n"
        f"env_id: {SAY}\nmodel: {tiny_path}\nin_process: true\ntasks_per_step: 2\ngroup_size: 2\n"
        "output_format: action\nmax_new_tokens: 3\nlora: true\nlora_target_modules: [q_proj, v_proj]\n"
        f"output_dir: {tmp_path / 'runs'}\nrun_name: cli\ntensorboard: true\n"
    )
    saved = tmp_path / "train.jsonl"
    assert (
        cli_main(["train", str(config), "--set", "num_steps=2", "--no-progress", "--save-trajectories", str(saved)])
        == 0
    )
    assert "episode" not in capsys.readouterr().err  # --no-progress: no bar at all
    kept = load_jsonl(saved)  # every rollout of both steps: 2 tasks x 2 episodes each, with the generated token ids
    assert len(kept) == 8 and len({t.episode_id for t in kept[:4]}) == 4
    assert all(turn.response_token_ids and turn.prompt_token_ids for t in kept for turn in t.turns)
    checkpoint = tmp_path / "runs" / "cli" / "checkpoint-000002"
    meta = json.loads((checkpoint / "agent.json").read_text())
    assert meta["kind"] == "llm" and meta["adapter"] == "adapter" and meta["step"] == 2
    assert list((tmp_path / "runs" / "cli").glob("events.out.tfevents.*"))
    rows = read_metrics(tmp_path / "runs" / "cli")
    assert [row["step"] for row in rows] == [1, 2] and all(set(COMMON_METRICS) <= set(row) for row in rows)
    assert rows[1]["rollout/episodes"] == 8 and rows[1]["rollout/env_steps"] == 8  # cumulative, 1-turn episodes
    # eval only: one row at the checkpoint's step in its own run folder (nothing parsed from stdout)
    assert (
        cli_main(
            [
                "train",
                str(config),
                "--no-progress",
                "--set",
                "eval_only=true",
                "--set",
                f"resume={checkpoint}",
                "--set",
                "run_name=cli_eval",
                "--set",
                "eval_split=train",
            ]
        )
        == 0
    )
    (report,) = read_metrics(tmp_path / "runs" / "cli_eval")
    assert report["step"] == 2 and 0.0 <= report["eval/train/success_rate"] <= 1.0
    db = tmp_path / "results.sqlite"
    code = cli_main(
        [
            "eval",
            "--env",
            "agentgym/TextWorld-v0",
            "--agent",
            str(checkpoint),
            "--episodes",
            "2",
            "--max-turns",
            "2",
            "--workers",
            "1",
            "--db",
            str(db),
            "--quiet",
        ]
    )
    assert code == 0
    with ResultStore(db) as store:
        rows = store.leaderboard("agentgym/TextWorld-v0")
    assert [row.agent for row in rows] == [meta["name"]] and rows[0].episodes == 2


def test_unknown_checkpoint_kind_is_refused(tmp_path):
    from agentgym.agents import make_agent
    from agentgym.error import InvalidArgumentError

    (tmp_path / "agent.json").write_text('{"kind": "oracle"}')
    with pytest.raises(InvalidArgumentError, match="unknown agent kind 'oracle'"):
        make_agent(str(tmp_path))
    with pytest.raises(InvalidArgumentError, match="checkpoint folder"):
        make_agent(str(tmp_path / "missing"))


def test_example_configs_are_valid():
    """Every example config loads with the trainer its ``algo`` names (the one ``agentgym train`` runs)."""
    import importlib
    from pathlib import Path

    import yaml

    from agentgym.baselines.train_pg import load_config
    from agentgym.cli import TRAINERS
    from agentgym.error import InvalidArgumentError

    configs = sorted((Path(__file__).resolve().parents[2] / "baselines" / "configs").glob("*.yaml"))
    families = {c.stem.split("_")[0] for c in configs}
    assert {"textworld", "alfworld", "scienceworld", "webshop", "swegym"} <= families
    algos = set()
    for path in configs:
        config = yaml.safe_load(path.read_text())
        algos.add(algo := config.pop("algo"))
        args = importlib.import_module(TRAINERS[algo]).load_config(config)
        assert type(args).__module__ == TRAINERS[algo] and args.env_id.startswith("agentgym/"), path
    assert algos == {"pg", "drrn"} == set(TRAINERS)
    with pytest.raises(InvalidArgumentError, match="did you mean 'num_steps'"):
        load_config({"num_step": 3})


def test_ppo_loss_against_a_plain_loop():
    import math

    from agentgym.baselines.train_pg import ppo_loss

    args = Args(clip_eps=0.2, kl_coef=0.5)
    logp = torch.tensor([[-1.0, -0.5, -2.0], [-0.3, -0.1, 0.0]])
    old = torch.tensor([[-1.5, -0.5, -1.0], [-0.2, -0.9, 0.0]])
    ref = torch.tensor([[-1.2, -0.7, -2.0], [-0.3, -0.4, 0.0]])
    adv = torch.tensor([1.0, -2.0])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])  # the padding column never counts
    loss, parts = ppo_loss(logp, old, ref, adv, mask, args, n_tokens=5)
    total = 0.0
    for b in range(2):
        for t in range(3):
            if not mask[b, t]:
                continue
            ratio, a = math.exp(float(logp[b, t] - old[b, t])), float(adv[b])
            clipped = min(max(ratio, 0.8), 1.2)
            pg = -min(ratio * a, clipped * a)
            d = float(ref[b, t] - logp[b, t])
            total += pg + 0.5 * (math.exp(d) - d - 1)
    assert float(loss) == pytest.approx(total / 5, rel=1e-6)
    assert parts["clipfrac"] == pytest.approx(3 / 5)
