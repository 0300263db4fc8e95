"""make_agent: every spec form, their one-line errors, and names that keep different configurations apart."""

from __future__ import annotations

import json
import textwrap

import pytest

from agentgym.agent_specs import parse_agent_spec
from agentgym.agents import AGENTS, ExpertAgent, RandomAgent, make_agent
from agentgym.cli import build_parser, main
from agentgym.error import InvalidArgumentError
from agentgym.store import ResultStore

ENV_ID = "agentgym/TextWorld-v0"

MODULE = textwrap.dedent(
    """
    from agentgym.agents import Agent


    class Say(Agent):
        info_keys = frozenset()

        def __init__(self, word="look", seed=0):
            self.word, self.seed = word, seed

        def act(self, observation, info, *, episode_id=""):
            return self.word


    class Named(Say):
        name = "say-named"


    class Unfinished(Agent):
        pass


    def helper():
        return None
    """
)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A user's own agents module, importable as ``user_agents_mod`` (as from the working directory)."""
    (tmp_path / "user_agents_mod.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "user_agents_mod", raising=False)
    return "user_agents_mod"


def test_registered_names_and_their_seed():
    assert isinstance(make_agent("expert"), ExpertAgent)
    agent = make_agent("random", seed=7)
    assert isinstance(agent, RandomAgent) and agent.seed == 7 and agent.name == "random"
    with pytest.raises(InvalidArgumentError, match="'expert' takes no --agent-kwargs"):
        make_agent("expert", temperature=0.5)


def test_class_spec_builds_the_class_with_its_kwargs_and_seed(user_module):
    plain = make_agent(f"{user_module}:Say", seed=3)
    assert (plain.word, plain.seed, plain.name) == ("look", 3, f"{user_module}:Say")
    assert make_agent(f"{user_module}:Named").name == "say-named"  # the class's own name, when unconfigured
    inventory = make_agent(f"{user_module}:Say", word="inventory")
    assert inventory.act("obs", {}) == "inventory" and inventory.identity["kwargs"] == {"word": "inventory"}
    # a configuration is part of the name: two configurations never share a row, one configuration always does
    assert inventory.name.startswith(f"{user_module}:Say@") and inventory.name != plain.name
    assert make_agent(f"{user_module}:Say", word="inventory").name == inventory.name
    assert make_agent(f"{user_module}:Say", word="look").name not in (plain.name, inventory.name)
    assert make_agent(f"{user_module}:Named", word="x").name.startswith("say-named@")


@pytest.mark.parametrize(
    ("spec", "kwargs", "message"),
    [
        ("no_such_module_xyz:Agent", {}, "cannot import module 'no_such_module_xyz'"),
        ("{mod}:Sya", {}, "has no attribute 'Sya'; did you mean 'Say'"),
        ("{mod}:helper", {}, "is not an agentgym.agents.Agent subclass"),
        ("{mod}:Unfinished", {}, "is abstract: it does not implement act"),
        ("{mod}:Say", {"wrod": "x"}, "bad --agent-kwargs: .*'wrod'; it takes word, seed"),
        ("nobody", {}, "expected expert, random, a checkpoint folder"),
        ("exprt", {}, "did you mean 'expert'"),
        ("./missing/folder", {}, "no such folder"),
        ("openai:localhost:8000", {}, "expected openai:BASE_URL#MODEL"),
    ],
)
def test_bad_specs_say_what_is_accepted(user_module, spec, kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message):
        make_agent(spec.format(mod=user_module), **kwargs)


def test_a_folder_that_is_not_a_model_is_refused(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\0")
    with pytest.raises(InvalidArgumentError, match="is not a model: it has no agent.json .* and no config.json"):
        make_agent(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    assert parse_agent_spec(str(tmp_path), AGENTS).kind == "hf"
    with pytest.raises(InvalidArgumentError, match="not a loadable Hugging Face causal LM"):
        make_agent(str(tmp_path))


def test_cli_checks_agent_and_agent_kwargs_before_running(capsys):
    parser = build_parser()
    for argv, message in [
        (["--agent", "nobody"], "unknown agent 'nobody'"),
        (["--agent", "expert", "--agent-kwargs", "{bad"], "not JSON"),
        (["--agent", "expert", "--agent-kwargs", "[1]"], "must be a JSON object"),
    ]:
        with pytest.raises(SystemExit):
            parser.parse_args(["eval", "--env", ENV_ID, *argv])
        assert message in capsys.readouterr().err
    assert parser.parse_args(["eval", "--env", ENV_ID, "--agent", "expert"]).agent_kwargs == {}


def test_eval_a_module_class_agent_end_to_end(user_module, tmp_path, capsys):
    db = str(tmp_path / "r.sqlite")
    argv = [
        "eval",
        "--env",
        ENV_ID,
        "--agent",
        f"{user_module}:Say",
        "--agent-kwargs",
        '{"word": "inventory"}',
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
    name = make_agent(f"{user_module}:Say", word="inventory").name
    assert name in capsys.readouterr().out
    assert main(argv) == 0 and "(2 already stored, 0 played)" in capsys.readouterr().out
    with ResultStore(db) as store:
        rows = store.leaderboard(ENV_ID)
    assert [(row.agent, row.episodes, row.mean_turns) for row in rows] == [(name, 2, 2.0)]
    assert (
        main(["eval", "--env", ENV_ID, "--agent", "expert", "--agent-kwargs", '{"x": 1}', "--db", db, "--quiet"]) == 2
    )
    assert "agentgym eval: agent 'expert' takes no --agent-kwargs" in capsys.readouterr().err
