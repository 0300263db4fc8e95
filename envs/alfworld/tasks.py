"""ALFWorld's tasks: the generated splits (games made by :mod:`.generator` on first use and cached), and the
official games of an ``alfworld-download`` folder, each file checked before any engine reads it.

**Generated splits** (sizes and per-type counts as in the official ALFWorld release), task ids
``FloorPlan<n>/<task type>/<seed>``:

* ``train`` (3,553) and ``valid_seen`` (140) on the 96 training floor plans (7-30, 207-230, 307-330,
  407-430; ALFRED's ``TRAIN_SCENE_NUMBERS``), on disjoint seeds;
* ``valid_unseen`` (134) on the 24 held-out floor plans (1-6, 201-206, 301-306, 401-406), which no
  other split uses;
* RLVMR-style generalization levels: ``L0`` (valid_seen tasks of the five seen task types),
  ``L1`` (valid_unseen tasks of the seen types: unseen floor plans), ``L2`` (the held-out task type,
  :data:`L2_HELD_OUT`, from valid_seen and valid_unseen), with ``train_L`` (train without the held-out
  type) to train on.

A game is generated on first use and cached under ``$AGENTGYM_CACHE/alfworld/<generator key>/`` (the key names
:data:`~.generator.GENERATOR_VERSION` and the alfworld version, whose domain and grammar are copied into each
game); :func:`export_official_layout` writes a split as an ``alfworld-download`` tree.

**Official games** (:func:`official_tasks`): a file that cannot work raises one
:class:`~agentgym.error.TaskFileError` naming the file, the field and what was expected (corrupt JSON, ``[]``
instead of an object, a missing or mistyped ``task_type``, ``pddl_params`` field or game field), at
construction for the whole split and again when a task's episode starts (:func:`read_traj`), never a
``KeyError`` from inside the engine or ALFWorld's expert. Games ALFWorld itself skips (unsolvable,
``movable``/``Sliced`` trials, unsupported task types, no ``game.tw-pddl``) are skipped here too.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from agentgym.cache import cache_root, cached_folder
from agentgym.envs.alfworld.floorplans import (
    TASK_TYPES,
    alfworld_version,
    feasible_floor_plans,
    wheel_file,
)
from agentgym.envs.alfworld.generator import GENERATOR_VERSION, generate, parse_task_id, task_id, write_game
from agentgym.error import TaskFileError
from agentgym.tasks import Task

__all__ = [
    "GENERATOR_VERSION",
    "L2_HELD_OUT",
    "OFFICIAL_SPLITS",
    "SPLITS",
    "SPLIT_COUNTS",
    "TASK_TYPES",
    "export_official_layout",
    "game_path",
    "official_tasks",
    "read_traj",
    "split_tasks",
    "split_triples",
    "task_id",
]

#: The task type held out of ``train_L`` and evaluated in ``L2``.
L2_HELD_OUT = "pick_two_obj_and_place"

#: Tasks per type in each base split: the official ALFWorld 0.4 counts (train 3,553; seen 140; unseen 134).
SPLIT_COUNTS: dict[str, dict[str, int]] = {
    "train": {
        "pick_and_place_simple": 790,
        "look_at_obj_in_light": 308,
        "pick_clean_then_place_in_recep": 650,
        "pick_heat_then_place_in_recep": 459,
        "pick_cool_then_place_in_recep": 533,
        "pick_two_obj_and_place": 813,
    },
    "valid_seen": {
        "pick_and_place_simple": 35,
        "look_at_obj_in_light": 13,
        "pick_clean_then_place_in_recep": 27,
        "pick_heat_then_place_in_recep": 16,
        "pick_cool_then_place_in_recep": 25,
        "pick_two_obj_and_place": 24,
    },
    "valid_unseen": {
        "pick_and_place_simple": 24,
        "look_at_obj_in_light": 18,
        "pick_clean_then_place_in_recep": 31,
        "pick_heat_then_place_in_recep": 23,
        "pick_cool_then_place_in_recep": 21,
        "pick_two_obj_and_place": 17,
    },
}

#: First seed of each base split (seeds of one split never reach the next split's range).
_SEED_BASE = {"train": 0, "valid_seen": 100_000, "valid_unseen": 200_000}


@functools.cache
def _base_split(name: str) -> tuple[tuple[int, str, int], ...]:
    pool = "unseen" if name == "valid_unseen" else "train"
    triples = []
    for task_type in TASK_TYPES:
        plans = feasible_floor_plans(task_type, pool)
        for k in range(SPLIT_COUNTS[name][task_type]):
            triples.append((plans[k % len(plans)], task_type, _SEED_BASE[name] + k // len(plans)))
    return tuple(triples)


#: Every split name -> how it is made. ``test`` and ``valid`` are the contract's names for
#: ``valid_unseen`` and ``valid_seen``.
SPLITS: tuple[str, ...] = (
    "train",
    "valid_seen",
    "valid_unseen",
    "valid",
    "test",
    "train_L",
    "L0",
    "L1",
    "L2",
)


def split_triples(name: str) -> list[tuple[int, str, int]]:
    """The (floor plan, task type, seed) triples of a split, in a stable order."""
    alias = {"valid": "valid_seen", "test": "valid_unseen"}
    if name in _SEED_BASE or name in alias:
        return list(_base_split(alias.get(name, name)))
    seen = [t for t in _base_split("valid_seen")]
    unseen = [t for t in _base_split("valid_unseen")]
    if name == "train_L":
        return [t for t in _base_split("train") if t[1] != L2_HELD_OUT]
    if name == "L0":
        return [t for t in seen if t[1] != L2_HELD_OUT]
    if name == "L1":
        return [t for t in unseen if t[1] != L2_HELD_OUT]
    if name == "L2":
        return [t for t in seen + unseen if t[1] == L2_HELD_OUT]
    raise KeyError(name)


def split_tasks(name: str) -> list[Task]:
    """The generated tasks of a split; each definition pins the generator and engine versions."""
    versions = {"generator": GENERATOR_VERSION, "alfworld": alfworld_version()}
    return [
        Task(
            task_id(plan, task_type, seed),
            {**versions, "floor_plan": plan, "task_type": task_type, "seed": seed},
        )
        for plan, task_type, seed in split_triples(name)
    ]


def _cache_dir() -> Path:
    return cache_root() / "alfworld" / f"gen{GENERATOR_VERSION}-alfworld{alfworld_version()}"


def game_path(value: str) -> Path:
    """The ``game.tw-pddl`` of a generated task id, generated and cached on first use (atomic, so
    concurrent processes never see a partial game)."""
    floor_plan, task_type, seed = parse_task_id(value)
    final = _cache_dir() / f"FloorPlan{floor_plan}" / task_type / str(seed)
    return cached_folder(
        final, lambda folder: write_game(folder, generate(floor_plan, task_type, seed)), "game.tw-pddl"
    )


def export_official_layout(split: str, destination: str | os.PathLike, limit: int | None = None) -> Path:
    """Write a split's generated games as an ``alfworld-download`` tree: ``<destination>/json_2.1.1/<split>/
    <task_type>-<Object>-<Mrecep>-<Recep>-<scene>/<trial>/{traj_data.json, initial_state.pddl, game.tw-pddl}``
    plus ``logic/alfred.{pddl,twl2}``. ALFWorld's own ``AlfredTWEnv`` and agentgym's ``data_dir=`` read it."""
    root = Path(destination)
    official = {"valid": "valid_seen", "test": "valid_unseen"}.get(split, split)
    for plan, task_type, seed in split_triples(split)[:limit]:
        made = generate(plan, task_type, seed)
        p = made["traj_data"]["pddl_params"]
        folder_name = f"{task_type}-{p['object_target']}-None-{p['parent_target'] or p['toggle_target']}-{plan}"
        folder = root / "json_2.1.1" / official / folder_name / made["trial"]
        folder.mkdir(parents=True, exist_ok=True)
        write_game(folder, made)
    (root / "logic").mkdir(parents=True, exist_ok=True)
    (root / "logic" / "alfred.pddl").write_text(wheel_file("data/alfred.pddl"))
    (root / "logic" / "alfred.twl2").write_text(wheel_file("data/alfred.twl2"))
    return root


# ---------------------------------------------------------------------------------------------- official games
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
        if not game.get("solvable") or traj["task_type"] not in TASK_TYPES:
            continue  # as ALFWorld: unsolvable games and other task types are not played
        check_traj(traj_path, traj)
        check_game(game_path, game)
        digest = hashlib.sha256(game_bytes + b"\0" + traj_bytes).hexdigest()
        found.append((Task(relative, {"source": "alfworld-download", "sha256": digest}), game_path))
    if not found:
        raise TaskFileError(f"{root}: no solvable ALFWorld games (folders with traj_data.json and game.tw-pddl)")
    return found
