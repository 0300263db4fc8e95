"""The agentgym command line."""

import subprocess
import sys

import pytest

from agentgym.cli import build_parser, main


@pytest.mark.parametrize("command", ["list", "play", "eval", "leaderboard", "prepare"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: agentgym " + command in capsys.readouterr().out


def test_list_shows_ids_splits_and_counts(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "agentgym/TextWorld-v0" in out
    line = next(l for l in out.splitlines() if l.startswith("agentgym/TextWorld-v0") and " train " in l)
    assert line.split()[2] == "50"


def test_play_in_the_terminal():
    script = "1\nxyzzy\nquit\n"
    result = subprocess.run(
        [sys.executable, "-m", "agentgym.cli", "play", "agentgym/TextWorld-v0", "--split", "test",
         "--task", "coin_collector/3000"],
        input=script, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Goal:" in result.stdout and "Admissible actions: [1]" in result.stdout
    assert "(not an admissible action)" in result.stdout and "Bye." in result.stdout


def test_eval_and_leaderboard_commands(tmp_path, capsys):
    db = str(tmp_path / "cli.sqlite")
    assert main(["eval", "--env", "agentgym/TextWorld-v0", "--agent", "expert", "--episodes", "2",
                 "--workers", "1", "--db", db, "--quiet"]) == 0
    assert "success 100.0%" in capsys.readouterr().out
    assert main(["leaderboard", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "expert" in out and "100.0%" in out


def test_bad_arguments_give_clear_messages(tmp_path, capsys):
    assert main(["eval", "--env", "agentgym/TextWorld-v0", "--agent", "expert", "--split", "tset",
                 "--db", str(tmp_path / "x.sqlite"), "--quiet"]) == 2
    assert "unknown split 'tset'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "--env", "x", "--agent", "nobody"])


def test_competitive_leaderboard(tmp_path, capsys):
    db = str(tmp_path / "games.sqlite")
    from agentgym.matches import main as play_main

    assert play_main(["--agents", "expert", "random", "--games", "10", "--split", "test", "--db", db]) == 0
    capsys.readouterr()
    assert main(["leaderboard", "--competitive", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "expert" in out and "random" in out and "agentgym/Negotiation-v0" in out
