"""`--agent PATH` of a plain Hugging Face model folder: the LLM agent over it, named by content and settings."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from agentgym.agents import make_agent
from agentgym.baselines.llm_agent import LLMAgent
from agentgym.cli import main
from agentgym.store import ResultStore
from agentgym.wrappers.lm import build_tiny_causal_lm

ENV_ID = "agentgym/TextWorld-v0"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two tiny random models in folders of the same name, differing only in their weights."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("hf_agents")
    return [str(build_tiny_causal_lm(root / f"{k}" / "tiny", seed=k)) for k in range(2)]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTGYM_CACHE", str(tmp_path / "cache"))


def test_hf_folder_is_the_llm_agent_named_by_content_and_settings(models):
    agent = make_agent(models[0], seed=5, output_format="action", max_new_tokens=3)
    assert isinstance(agent, LLMAgent)
    assert (agent.output_format, agent.max_new_tokens, agent.greedy, agent.seed) == ("action", 3, True, 5)
    assert agent.name.startswith("hf:tiny@") and len(agent.name) == len("hf:tiny@") + 8
    assert len(agent.identity["model_sha256"]) == 64 and agent.identity["agent"]["output_format"] == "action"
    names = {
        "same": make_agent(models[0], seed=9, output_format="action", max_new_tokens=3).name,  # the seed is a column
        "other weights": make_agent(models[1], output_format="action", max_new_tokens=3).name,
        "other format": make_agent(models[0], output_format="react", max_new_tokens=3).name,
        "sampling": make_agent(models[0], output_format="action", max_new_tokens=3, temperature=0.7).name,
        "history": make_agent(models[0], output_format="action", max_new_tokens=3, history=0).name,
    }
    assert names["same"] == agent.name
    others = [names[key] for key in ("other weights", "other format", "sampling", "history")]
    assert len({agent.name, *others}) == 5, names
    assert make_agent(models[0], output_format="action", max_new_tokens=3, temperature=0.7).greedy is False
    labelled = make_agent(models[0], output_format="action", max_new_tokens=3, name="my-model")
    assert labelled.name == "my-model@" + agent.name.rsplit("@", 1)[1]


def test_folder_hash_is_cached_and_follows_the_files(models, tmp_path):
    from agentgym.agent_specs import folder_hash

    first = folder_hash(models[0])
    assert (tmp_path / "cache" / "model-hashes.json").is_file() and folder_hash(models[0]) == first
    assert folder_hash(models[1]) != first


def test_eval_a_local_hf_model_folder_end_to_end(models, tmp_path, capsys):
    db = str(tmp_path / "r.sqlite")
    argv = [
        "eval",
        "--env",
        ENV_ID,
        "--agent",
        models[0],
        "--agent-kwargs",
        '{"output_format": "action", "max_new_tokens": 4, "history": 1}',
        "--episodes",
        "2",
        "--max-turns",
        "2",
        "--workers",
        "1",
        "--db",
        db,
        "--quiet",
    ]
    assert main(argv) == 0
    name = make_agent(models[0], output_format="action", max_new_tokens=4, history=1).name
    assert f"{name} on {ENV_ID}" in capsys.readouterr().out
    with ResultStore(db) as store:
        rows = store.leaderboard(ENV_ID)
    assert [(row.agent, row.episodes) for row in rows] == [(name, 2)]


def test_checkpoint_keeps_its_name_and_overrides_are_named(models, tmp_path):
    import json
    import shutil

    shutil.copytree(models[0], tmp_path / "model")
    meta = {"kind": "llm", "name": "llm:run@3", "model": "model", "agent": {"output_format": "action", "history": 0}}
    (tmp_path / "agent.json").write_text(json.dumps(meta))
    plain = make_agent(str(tmp_path))
    assert plain.name == "llm:run@3" and plain.greedy and plain.output_format == "action"
    sampled = make_agent(str(tmp_path), greedy=False, temperature=0.5)
    assert not sampled.greedy and sampled.name.startswith("llm:run@3@") and sampled.name != plain.name
    assert sampled.identity["overrides"] == {"greedy": False, "temperature": 0.5}
