"""TextWorld on the real engine: embedded suites, users' own tw-make games, rewards and the expert."""

import functools
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest
import textworld

import agentgym  # noqa: F401
from agentgym.agents import ExpertAgent
from agentgym.envs.textworld import tasks as tw_tasks
from agentgym.error import InvalidArgumentError, TaskFileError
from agentgym.rollout import EpisodeSpec, rollout

ENV_ID = "agentgym/TextWorld-v0"


def test_splits_have_documented_sizes_and_disjoint_worlds():
    seeds = {}
    for split, size in (("train", 50), ("valid", 10), ("test", 10)):
        env = gym.make(ENV_ID, split=split)
        tasks = env.unwrapped.tasks.tasks
        assert len(tasks) == size
        seeds[split] = {task.definition["seed"] for task in tasks}
        kinds = {task.task_id.split("/")[0] for task in tasks}
        assert kinds == set(tw_tasks.KINDS)
        env.close()
    assert (
        not seeds["train"] & seeds["valid"]
        and not seeds["train"] & seeds["test"]
        and not seeds["valid"] & seeds["test"]
    )


def test_kinds_filter_keeps_only_those_kinds():
    env = gym.make(ENV_ID, split="train", kinds=["coin_collector"])
    full = gym.make(ENV_ID, split="train")
    try:
        ids = env.unwrapped.task_ids
        assert len(ids) == 10 and all(task_id.startswith("coin_collector/") for task_id in ids)
        assert env.unwrapped.manifest.hash != full.unwrapped.manifest.hash
        observation, info = env.reset(seed=3)
        assert info["task_id"].startswith("coin_collector/")
    finally:
        env.close()
        full.close()
    with pytest.raises(InvalidArgumentError, match="coin_colector"):
        gym.make(ENV_ID, kinds=["coin_colector"])


def test_generation_is_deterministic(tmp_path, monkeypatch):
    task = gym.make(ENV_ID, split="valid").unwrapped.tasks.get("custom_easy/2000")
    files = []
    for name in ("a", "b"):
        monkeypatch.setenv("AGENTGYM_CACHE", str(tmp_path / name))
        files.append(tw_tasks.game_path(task))
    assert files[0] != files[1]
    assert files[0].read_bytes() == files[1].read_bytes()
    assert files[0].with_suffix(".json").read_bytes() == files[1].with_suffix(".json").read_bytes()


def test_expert_episode_rewards_and_info():
    env = gym.make(ENV_ID, split="test")
    obs, info = env.reset(options={"task_id": "treasure_hunter/3000"})
    assert "TextWorld" in info["goal"] or info["goal"]
    assert info["expert_action"] in info["admissible_actions"]
    total, terminated = 0.0, False
    while not terminated:
        obs, reward, terminated, truncated, info = env.step(info["expert_action"])
        total += reward
        assert info["action_valid"] and not truncated
    family = info["textworld"]
    assert info["won"] and info["score"] == 1.0 and total == family["max_score"] == family["score"]
    assert info["expert_action"] is None and set(family) >= {"intermediate_reward", "moves", "lost"}
    env.close()


def test_inadmissible_and_escaped_commands():
    env = gym.make(ENV_ID, split="test")
    env.reset(options={"task_id": "coin_collector/3000"})
    obs, _, _, _, info = env.step("xyzzy")
    assert "not a verb" in obs and info["action_valid"] is False
    obs, _, _, _, info = env.step("look\\n")
    assert "backslash" in obs and info["action_valid"] is False
    env.close()


@pytest.fixture(scope="module")
def user_game(tmp_path_factory):
    """A game made by the user with TextWorld's own `tw-make` command."""
    out = tmp_path_factory.mktemp("user_games") / "my_game.z8"
    tw_make = Path(sys.executable).parent / "tw-make"
    subprocess.run(
        [
            str(tw_make),
            "custom",
            "--world-size",
            "4",
            "--nb-objects",
            "6",
            "--quest-length",
            "4",
            "--seed",
            "123",
            "--output",
            str(out),
            "--silent",
        ],
        check=True,
        timeout=300,
    )
    return out


def test_user_game_plays_with_textworld_scores(user_game):
    infos = textworld.EnvInfos(score=True, won=True, max_score=True, extras=["walkthrough"])
    reference = textworld.start(str(user_game), request_infos=infos)
    state = reference.reset()
    walkthrough = state["extra.walkthrough"]
    expected = []
    for command in walkthrough:
        state, score, done = reference.step(command)
        expected.append((state.feedback, score, state["won"]))
    reference.close()

    env = gym.make(ENV_ID, game_files=[str(user_game)])
    assert env.unwrapped.task_ids == ["my_game.z8"]
    env.reset(seed=0)
    got = []
    for command in walkthrough:
        obs, reward, terminated, truncated, info = env.step(command)
        got.append((obs, info["textworld"]["score"], info["won"]))
    env.close()
    assert got == expected and got[-1][2] is True


def test_user_game_manifest_ignores_location(user_game, tmp_path):
    copy = tmp_path / user_game.name
    copy.write_bytes(user_game.read_bytes())
    copy.with_suffix(".json").write_bytes(user_game.with_suffix(".json").read_bytes())
    a = gym.make(ENV_ID, game_files=[user_game]).unwrapped.manifest
    b = gym.make(ENV_ID, game_files=[copy]).unwrapped.manifest
    assert a.hash == b.hash


def test_bad_game_files_are_named(tmp_path):
    with pytest.raises(TaskFileError, match="no such game file"):
        gym.make(ENV_ID, game_files=[tmp_path / "missing.z8"])
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(TaskFileError, match=r"notes.txt: expected a TextWorld game file ending in .z8"):
        gym.make(ENV_ID, game_files=[tmp_path / "notes.txt"])
    (tmp_path / "lonely.z8").write_bytes(b"\0")
    with pytest.raises(TaskFileError, match=r"lonely.json is missing"):
        gym.make(ENV_ID, game_files=[tmp_path / "lonely.z8"])


@pytest.mark.slow
@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_expert_wins_every_task(split):
    task_ids = gym.make(ENV_ID, split=split).unwrapped.task_ids
    specs = [EpisodeSpec(f"{split}:{i}", task_id, i) for i, task_id in enumerate(task_ids)]
    factory = functools.partial(gym.make, ENV_ID, split=split)
    trajectories = rollout(factory, ExpertAgent(), specs, num_workers=2)
    lost = [t.task_id for t in trajectories if not t.won]
    assert not lost, f"the expert did not win {lost}"
    assert all(t.score == 1.0 and t.terminated for t in trajectories)


@pytest.mark.parametrize("action", ["😀" * 100, "x" * 197 + "é", "take é", "a" * 199])
def test_commands_the_z_machine_would_truncate_or_garble_are_refused(action):
    env = gym.make(ENV_ID, split="test")
    env.reset(options={"task_id": "coin_collector/3000"})
    obs, _, terminated, _, info = env.step(action)
    assert obs.startswith("Invalid action") and info["action_valid"] is False and not terminated
    obs, _, _, _, info = env.step(info["expert_action"])
    assert info["action_valid"] is True
    env.close()


def test_anchor_is_a_key_of_the_state_not_of_the_turn():
    env = gym.make(ENV_ID, split="test")
    _, info = env.reset(options={"task_id": "custom_easy/3000"})
    start = info["anchor_obs"]
    assert "-= " in start and "carrying" in start and "0/" not in start.splitlines()[-1]
    exits = [a for a in info["admissible_actions"] if a.startswith("go ")]
    back = {"go north": "go south", "go south": "go north", "go east": "go west", "go west": "go east"}
    _, _, _, _, info = env.step(exits[0])
    assert info["anchor_obs"] != start
    _, _, _, _, info = env.step(back[exits[0]])
    assert info["anchor_obs"] == start and info["textworld"]["moves"] == 2
    takes = [a for a in info["admissible_actions"] if a.startswith("take ")]
    if not takes:
        opens = [a for a in info["admissible_actions"] if a.startswith("open ")]
        _, _, _, _, info = env.step(opens[0])
        takes = [a for a in info["admissible_actions"] if a.startswith("take ")]
    _, _, _, _, info = env.step(takes[0])
    assert info["anchor_obs"] != start and "carrying nothing" not in info["anchor_obs"]
    env.close()


def _broken_copy(user_game, folder, game_bytes=None, json_text=None):
    folder.mkdir()
    path = folder / "broken.z8"
    path.write_bytes(user_game.read_bytes() if game_bytes is None else game_bytes)
    path.with_suffix(".json").write_text(user_game.with_suffix(".json").read_text() if json_text is None else json_text)
    return path


def _flip(data, offset, bit=0x10):
    return data[:offset] + bytes([data[offset] ^ bit]) + data[offset + 1 :]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("empty", r"0 bytes; a Z-machine game has at least a 64-byte header"),
        ("truncated", r"file length \(offset 0x1A\) says \d+ bytes; the file has 5000"),
        ("wrong version", r"version byte \(offset 0x00\) is 3; expected 8"),
        ("bad checksum", r"checksum \(offset 0x1C\) is"),
        ("bit flipped", r"checksum \(offset 0x1C\) is .* the bytes sum to"),
        ("corrupt json", r"broken.json: not valid JSON"),
        ("json of the wrong shape", r"broken.json: the fields \['version', 'world'"),
    ],
)
def test_bad_game_files_raise_task_file_error_naming_file_and_field(user_game, tmp_path, damage, message):
    data = user_game.read_bytes()
    game, json_text = {
        "empty": (b"", None),
        "truncated": (data[:5000], None),
        "wrong version": (bytes([3]) + data[1:], None),
        "bad checksum": (_flip(data, 0x1D), None),
        "bit flipped": (_flip(data, len(data) // 2), None),
        "corrupt json": (None, '{"version": 1, "world": ['),
        "json of the wrong shape": (None, '{"objective": "win"}'),
    }[damage]
    path = _broken_copy(user_game, tmp_path / "g", game, json_text)
    with pytest.raises(TaskFileError, match=message) as caught:
        env = gym.make(ENV_ID, game_files=[path])
        env.reset(seed=0)
    assert "broken" in str(caught.value)


def test_a_game_the_engine_cannot_load_is_refused_in_a_child_process(user_game, tmp_path):
    """A header flip the checksum does not cover (the initial program counter) reaches the watchdog."""
    data = bytearray(user_game.read_bytes())
    data[0x06:0x08] = b"\xff\xff"  # initial PC past the end of the story
    path = _broken_copy(user_game, tmp_path / "g", bytes(data))
    env = gym.make(ENV_ID, game_files=[path])
    with pytest.raises(TaskFileError, match=r"broken.z8: the engine (cannot load|did not finish loading)"):
        env.reset(seed=0)
    env.close()
