"""ALFWorld's own game files: finding the official games of an ``alfworld-download`` folder, and checking each
``traj_data.json`` and ``game.tw-pddl`` before any engine reads it.

A file that cannot work raises one :class:`~agentgym.error.TaskFileError` naming the file, the field and what
was expected (corrupt JSON, ``[]`` instead of an object, a missing or mistyped ``task_type``, ``pddl_params``
field or game field), at construction for the whole split and again when a task's episode starts, never
a ``KeyError`` from inside the engine or ALFWorld's expert. Games ALFWorld itself skips (unsolvable,
``movable``/``Sliced`` trials, unsupported task types, no ``game.tw-pddl``) are skipped here too.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from agentgym.error import TaskFileError
from agentgym.tasks import Task

from agentgym.envs.alfworld import games

#: Official folder names under ``json_2.1.1`` for each split name.
OFFICIAL_SPLITS = {
    "train": "train",
    "valid_seen": "valid_seen",
    "valid_unseen": "valid_unseen",
    "valid": "valid_seen",
    "test": "valid_unseen",
}
#: The ``pddl_params`` fields ALFWorld reads (its handcoded expert and goal text), with their JSON types.
PDDL_PARAMS = {
    "object_target": str,
    "parent_target": str,
    "toggle_target": str,
    "mrecep_target": str,
    "object_sliced": bool,
}
#: The ``game.tw-pddl`` fields textworld's ``PddlEnv.load`` reads (all strings).
GAME_FIELDS = ("pddl_domain", "pddl_problem", "grammar")
_JSON_TYPES = {str: "a string", bool: "true or false", dict: "an object", list: "a list"}


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def read_json(path: Path, data: bytes | None = None) -> Any:
    """The JSON in ``path`` (or its already read bytes ``data``); corrupt JSON raises ``TaskFileError``."""
    try:
        return json.loads(path.read_bytes() if data is None else data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TaskFileError(f"{path}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise TaskFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _field(path: Path, record: dict, name: str, kind: type, what: str) -> Any:
    if name not in record:
        raise TaskFileError(f"{path}: missing field {what!r}; expected {_JSON_TYPES[kind]}")
    value = record[name]
    if type(value) is not kind:  # bool is not an int here, and an int is not a bool
        raise TaskFileError(f"{path}: field {what!r} must be {_JSON_TYPES[kind]}, got {_json_type(value)}")
    return value


def _object(path: Path, value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise TaskFileError(f"{path}: expected a JSON object ({what}), got {_json_type(value)}")
    return value


def check_traj(path: Path, traj: Any, full: bool = True) -> dict:
    """``traj`` (the JSON of ``path``, a ``traj_data.json``) if it is an object with a string ``task_type``
    and (``full``) a ``pddl_params`` object with every field of :data:`PDDL_PARAMS`."""
    traj = _object(path, traj, "ALFWorld's traj_data.json with task_type and pddl_params")
    _field(path, traj, "task_type", str, "task_type")
    if full:
        params = _field(path, traj, "pddl_params", dict, "pddl_params")
        for name, kind in PDDL_PARAMS.items():
            _field(path, params, name, kind, f"pddl_params.{name}")
    return traj


def check_game(path: Path, game: Any, full: bool = True) -> dict:
    """``game`` (the JSON of ``path``, a ``game.tw-pddl``) if it is an object and (``full``) has the
    string fields of :data:`GAME_FIELDS`."""
    game = _object(path, game, "a game.tw-pddl with pddl_domain, pddl_problem, grammar and solvable")
    if full:
        for name in GAME_FIELDS:
            _field(path, game, name, str, name)
    return game


def read_traj(path: Path) -> dict:
    """A task's checked ``traj_data.json``."""
    return check_traj(path, read_json(path))


def official_tasks(data_dir: Path, split: str) -> list[tuple[Task, Path]]:
    """The official games of a split in an ``alfworld-download`` folder, filtered as ``AlfredTWEnv`` does,
    each checked (:func:`check_traj`, :func:`check_game`)."""
    root = data_dir / "json_2.1.1" / OFFICIAL_SPLITS[split]
    if not root.is_dir():
        raise TaskFileError(
            f"{root}: no such folder. data_dir must point at an alfworld-download layout "
            "(<data_dir>/json_2.1.1/{train,valid_seen,valid_unseen}/.../trial_*/game.tw-pddl)"
        )
    found = []
    for traj_path in sorted(root.rglob("traj_data.json")):
        folder = traj_path.parent
        game_path = folder / "game.tw-pddl"
        relative = folder.relative_to(data_dir / "json_2.1.1").as_posix()
        if "movable" in relative or "Sliced" in relative or not game_path.is_file():
            continue
        game_bytes, traj_bytes = game_path.read_bytes(), traj_path.read_bytes()
        traj = check_traj(traj_path, read_json(traj_path, traj_bytes), full=False)
        game = check_game(game_path, read_json(game_path, game_bytes), full=False)
        if not game.get("solvable") or traj["task_type"] not in games.TASK_TYPES:
            continue  # as ALFWorld: unsolvable games and other task types are not played
        check_traj(traj_path, traj)
        check_game(game_path, game)
        digest = hashlib.sha256(game_bytes + b"\0" + traj_bytes).hexdigest()
        found.append((Task(relative, {"source": "alfworld-download", "sha256": digest}), game_path))
    if not found:
        raise TaskFileError(
            f"{root}: no solvable ALFWorld games (folders with traj_data.json and game.tw-pddl)"
        )
    return found
