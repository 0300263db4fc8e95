"""The agentgym command line."""

import argparse
import subprocess
import sys

import pytest

from agentgym.cli import build_parser, main


def subcommands() -> dict[str, argparse.ArgumentParser]:
    """Every subcommand of the parser (read from the parser, so a new command is tested without a list)."""
    (action,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_the_help_test_sees_every_documented_command():
    assert {"list", "play", "eval", "train", "leaderboard", "prepare"} <= set(subcommands())


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: agentgym " + command)
    description = subcommands()[command].description
    assert description, f"`agentgym {command}` has no description (its function's docstring)"
    assert " ".join(description.split()[:6]) in " ".join(out.split())


def test_list_shows_ids_splits_and_counts(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "agentgym/TextWorld-v0" in out
    line = next(row for row in out.splitlines() if row.startswith("agentgym/TextWorld-v0") and " train " in row)
    assert line.split()[2] == "50"


def test_play_in_the_terminal():
    script = "1\nxyzzy\nquit\n"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentgym.cli",
            "play",
            "agentgym/TextWorld-v0",
            "--split",
            "test",
            "--task",
            "coin_collector/3000",
        ],
        input=script,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Goal:" in result.stdout and "Admissible actions: [1]" in result.stdout
    assert "(not an admissible action)" in result.stdout and "Bye." in result.stdout


def test_eval_and_leaderboard_commands(tmp_path, capsys):
    db = str(tmp_path / "cli.sqlite")
    assert (
        main(
            [
                "eval",
                "--env",
                "agentgym/TextWorld-v0",
                "--agent",
                "expert",
                "--episodes",
                "2",
                "--workers",
                "1",
                "--db",
                db,
                "--quiet",
            ]
        )
        == 0
    )
    assert "success 100.0%" in capsys.readouterr().out
    assert main(["leaderboard", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "expert" in out and "100.0%" in out


def test_bad_arguments_give_clear_messages(tmp_path, capsys):
    assert (
        main(
            [
                "eval",
                "--env",
                "agentgym/TextWorld-v0",
                "--agent",
                "expert",
                "--split",
                "tset",
                "--db",
                str(tmp_path / "x.sqlite"),
                "--quiet",
            ]
        )
        == 2
    )
    assert "unknown split 'tset'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["eval", "--env", "x", "--agent", "nobody"])
    assert exit_info.value.code == 2  # argparse's usage error, not a crash or a success
    err = capsys.readouterr().err
    assert "error: argument --agent: unknown agent 'nobody': expected" in err and "random" in err


def test_competitive_leaderboard(tmp_path, capsys):
    db = str(tmp_path / "games.sqlite")
    from agentgym.matches import main as play_main

    assert play_main(["--agents", "expert", "random", "--games", "10", "--split", "test", "--db", db]) == 0
    capsys.readouterr()
    assert main(["leaderboard", "--competitive", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "expert" in out and "random" in out and "agentgym/Negotiation-v0" in out
