"""DRRN baseline: Q-value shapes, the TD update, checkpoints, learning on real coin-collector games."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from functools import partial

import gymnasium as gym
import pytest
import torch

import agentgym  # noqa: F401
from agentgym.baselines import train_drrn
from agentgym.baselines.drrn import DRRNAgent, DRRNConfig, ReplayBuffer, State, Transition, Vocab, td_loss
from agentgym.baselines.runs import COMMON_METRICS, read_metrics
from agentgym.cli import main as cli_main
from agentgym.error import InvalidArgumentError
from agentgym.rollout import EpisodeSpec, rollout

TINY = DRRNConfig(embed_dim=16, hidden_dim=32, vocab_size=500, max_tokens=32)
GOAL = "Go east, then north, and take the coin."
STATES = [
    State(GOAL, "-= Kitchen =- You need an exit? Try going east.", "", ""),
    State(GOAL, "-= Pantry =- There is a coin on the floor.", "-= Kitchen =- Try going east.", "go east"),
    State(GOAL, "You are carrying nothing.", "-= Pantry =- There is a coin.", "inventory"),
]
ACTIONS = [["go east", "look"], ["take coin", "go west", "inventory", "look", "examine coin"], ["take coin"]]


def tiny_agent(seed: int = 0) -> DRRNAgent:
    torch.set_num_threads(1)
    return DRRNAgent(TINY, device="cpu", seed=seed)


def test_vocab_keeps_last_words_and_freezes():
    vocab = Vocab(capacity=6)
    assert vocab.encode("Take the COIN!", 8) == [2, 3, 4]
    assert vocab.encode("take coin now", 2) == [4, 5]  # the last two words; "now" takes the last id
    assert vocab.encode("zebra", 4) == [Vocab.UNK]  # capacity reached
    assert vocab.encode("  ...  ", 4) == [Vocab.PAD]
    vocab = Vocab(capacity=100, words=vocab.words)
    vocab.frozen = True
    assert vocab.encode("take unknownword", 4) == [2, Vocab.UNK] and len(vocab) == 6


def test_scores_one_q_value_per_admissible_action():
    agent = tiny_agent()
    scores = agent.q_values(STATES, ACTIONS)
    assert [tuple(q.shape) for q in scores] == [(2,), (5,), (1,)]
    assert agent.q_flat(STATES, ACTIONS).shape == (8,)
    assert agent.q_values(STATES[:2], [[], ["look"]])[0].shape == (0,)
    # an action's score does not depend on the other actions offered or the other states in the batch
    alone = agent.q_values([STATES[1]], [["go west"]])[0]
    torch.testing.assert_close(alone, scores[1][1:2])
    # acting picks an admissible action and remembers the turn for the next state
    info = {"goal": GOAL, "admissible_actions": ACTIONS[0]}
    action = agent.act(STATES[0].observation, info, episode_id="e")
    assert action in ACTIONS[0]
    assert agent.state("next", info, "e") == State(GOAL, "next", STATES[0].observation, action)
    agent.end_episode("e")
    assert agent.state("next", info, "e").previous_action == ""


def transitions() -> list[Transition]:
    return [
        Transition(STATES[0], "go east", 0.0, STATES[1], tuple(ACTIONS[1]), False),
        Transition(STATES[1], "take coin", 1.0, STATES[2], tuple(ACTIONS[2]), True),
        Transition(STATES[1], "look", 0.0, STATES[1], tuple(ACTIONS[1]), False),
        Transition(STATES[2], "take coin", 0.0, STATES[2], (), False),
    ]


def test_q_learning_update_reduces_td_loss_on_a_fixed_batch():
    agent = tiny_agent(seed=3)
    target = copy.deepcopy(agent.network)
    batch = transitions() * 4
    optimizer = torch.optim.Adam(agent.network.parameters(), lr=3e-3)
    before = td_loss(agent, target, batch, gamma=0.9).item()
    for _ in range(60):
        loss = td_loss(agent, target, batch, gamma=0.9)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = td_loss(agent, target, batch, gamma=0.9).item()
    assert before > 1e-3 and after < 0.2 * before
    # the rewarded terminal transition is learned: Q(pantry, take coin) -> 1
    assert abs(agent.q_values([STATES[1]], [["take coin"]])[0].item() - 1.0) < 0.15


def test_replay_buffer_priority_fraction():
    replay = ReplayBuffer(capacity=3, priority_fraction=0.5, seed=0)
    ordinary, won = transitions()[:1], transitions()[1:2]
    replay.add_episode(ordinary * 5, priority=False)  # a ring of 3
    replay.add_episode(won, priority=True)
    assert len(replay) == 4
    batch = replay.sample(10)
    assert len(batch) == 10 and batch.count(won[0]) == 5
    with pytest.raises(InvalidArgumentError, match="priority_fraction"):
        ReplayBuffer(3, priority_fraction=1.0)


def test_checkpoint_round_trip_gives_identical_q_values(tmp_path):
    agent = tiny_agent(seed=1)
    expected = agent.q_flat(STATES, ACTIONS)
    folder = agent.save(tmp_path / "ckpt", name="drrn:test-run")
    meta = json.loads((folder / "agent.json").read_text())
    assert meta["kind"] == "drrn" and meta["hidden_dim"] == TINY.hidden_dim
    loaded = DRRNAgent.from_checkpoint(folder, device="cpu")
    assert loaded.name == "drrn:test-run" and loaded.epsilon == 0 and loaded.vocab.words == agent.vocab.words
    assert torch.equal(loaded.q_flat(STATES, ACTIONS), expected)
    agent.save(folder)  # saving over an existing checkpoint replaces it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    with pytest.raises(InvalidArgumentError, match="not a DRRN checkpoint"):
        DRRNAgent.from_checkpoint(tmp_path)


def test_from_checkpoint_agent_plays_through_rollout(tmp_path):
    folder = tiny_agent().save(tmp_path / "ckpt")
    agent = DRRNAgent.from_checkpoint(folder, device="cpu")
    env_fn = partial(gym.make, "agentgym/TextWorld-v0", split="train", max_turns=4)
    tasks = ["coin_collector/1000", "coin_collector/1001"]
    specs = [EpisodeSpec(f"e{i}", task, 0) for i, task in enumerate(tasks)]
    trajectories = rollout(env_fn, agent, specs, num_workers=2, env_id="agentgym/TextWorld-v0")
    again = rollout(env_fn, agent, specs, in_process=True, env_id="agentgym/TextWorld-v0")
    for trajectory, repeat in zip(trajectories, again, strict=True):
        assert trajectory.agent == "drrn:ckpt" and 1 <= len(trajectory.turns) <= 4
        infos = [trajectory.initial_info] + [turn.info for turn in trajectory.turns[:-1]]
        assert all(turn.action in info["admissible_actions"] for turn, info in zip(trajectory.turns, infos))
        assert [t.action for t in repeat.turns] == [t.action for t in trajectory.turns]  # greedy: repeatable


def test_short_training_run_beats_the_untrained_agent(tmp_path):
    """Two coin-collector games (level 5, no distractor rooms), 600 env steps, seeded (~20 s CPU)."""
    args = train_drrn.Args(
        seed=3,
        task_ids=("coin_collector/1000", "coin_collector/1001"),
        max_turns=20,
        num_envs=4,
        total_steps=600,
        learning_starts=200,
        exploration_fraction=0.5,
        target_network_frequency=10,
        eval_every=300,
        eval_split=None,
        embed_dim=16,
        hidden_dim=32,
        output_dir=str(tmp_path),
        progress=False,
    )
    result = train_drrn.train(args)
    rows = read_metrics(result.run_dir)
    assert rows == result.history and [row["step"] for row in rows] == [0, 300, 600]
    untrained, trained = rows[0]["eval/train/success_rate"], rows[-1]["eval/train/success_rate"]
    assert rows[-1]["train/updates"] > 0 and all(set(COMMON_METRICS) <= set(row) for row in rows)
    assert trained >= untrained + 0.5, rows  # 2 games: at least one more game won, greedily
    assert result.checkpoint == result.run_dir / "checkpoint-000600"
    assert sorted(p.name for p in result.run_dir.glob("checkpoint-*")) == ["checkpoint-000300", "checkpoint-000600"]
    loaded = DRRNAgent.from_checkpoint(result.checkpoint)
    assert loaded.name.startswith("drrn:TextWorld-v0__drrn__3__") and loaded.name.endswith("@600")


TINY_RUN = [
    "--total-steps",
    "8",
    "--num-envs",
    "2",
    "--task-ids",
    "coin_collector/1000",
    "--eval-split",
    "None",
    "--hidden-dim",
    "16",
    "--embed-dim",
    "8",
    "--learning-starts",
    "0",
    "--batch-size",
    "2",
    "--max-turns",
    "3",
]


def test_training_script_cli_smoke(tmp_path):
    command = [
        sys.executable,
        "-m",
        "agentgym.baselines.train_drrn",
        *TINY_RUN,
        "--output-dir",
        str(tmp_path),
        "--run-name",
        "smoke",
        "--no-progress",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "smoke" / "checkpoint-000008" / "agent.json").is_file()
    assert [row["step"] for row in read_metrics(tmp_path / "smoke")] == [0, 8]


def test_agentgym_train_runs_a_drrn_config_with_progress(tmp_path, capsys):
    """``algo: drrn`` through ``agentgym train``: the run folder of every trainer, and progress bars (env
    steps; episodes and turns of the evaluation rollouts) on stderr, nothing parsed from stdout."""
    config = tmp_path / "drrn.yaml"
    config.write_text(
        "algo: drrn\ntotal_steps: 8\nnum_envs: 2\ntask_ids: [coin_collector/1000]\neval_split: null\n"
        "hidden_dim: 16\nembed_dim: 8\nlearning_starts: 0\nbatch_size: 2\nmax_turns: 3\n"
        f"output_dir: {tmp_path}\nrun_name: cli\n"
    )
    assert cli_main(["train", str(config), "--set", "eval_every=4"]) == 0
    err = capsys.readouterr().err
    assert "eval train" in err and "1/1" in err and "turns=" in err, err[-500:]
    assert json.loads((tmp_path / "cli" / "config.json").read_text())["algo"] == "drrn"
    assert [row["step"] for row in read_metrics(tmp_path / "cli")] == [0, 4, 8]
    assert sorted(p.name for p in (tmp_path / "cli").glob("checkpoint-*")) == ["checkpoint-000004", "checkpoint-000008"]


def test_task_selection_by_kind():
    ids = train_drrn.select_tasks("agentgym/TextWorld-v0", "train", "coin_collector")
    assert len(ids) == 10 and all(t.startswith("coin_collector/") for t in ids)
    with pytest.raises(InvalidArgumentError, match="kinds: .*treasure_hunter"):
        train_drrn.select_tasks("agentgym/TextWorld-v0", "train", "coin")
    with pytest.raises(InvalidArgumentError, match="not in"):
        train_drrn.select_tasks("agentgym/TextWorld-v0", "train", None, ("coin_collector/3000",))
