"""The embedded TextWorld task suites: generated with TextWorld's own generator, cached on first use.

Task ids are ``<kind>/<seed>`` (``coin_collector/3001``). A kind fixes the generator and its settings;
the seed fixes the world. Splits use disjoint seed ranges, so no train world appears in valid or test.
A game is generated the first time it is played (1-7 s, mostly the Inform 7 compiler) and cached under
``$AGENTGYM_CACHE/textworld/<generator key>/`` (default ``~/.cache/agentgym``); the cache key names the
suite version and the TextWorld version, so a new engine never reuses old files. Generation is
deterministic: the same task id gives a byte-identical game.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from agentgym.cache import cache_root, cached_folder
from agentgym.error import TaskFileError
from agentgym.tasks import Task

from agentgym.envs.textworld import gamefile

#: Bump when the suite's kinds, settings or seeds change (it is part of every task definition).
SUITE_VERSION = 1

#: kind -> (TextWorld generator, its settings). "custom" kinds are ``tw-make custom`` games.
KINDS: dict[str, tuple[str, dict[str, int]]] = {
    "coin_collector": ("tw-coin_collector", {"level": 5}),
    "treasure_hunter": ("tw-treasure_hunter", {"level": 5}),
    "custom_easy": ("custom", {"world_size": 3, "nb_objects": 5, "quest_length": 3}),
    "custom_medium": ("custom", {"world_size": 6, "nb_objects": 10, "quest_length": 5}),
    "custom_hard": ("custom", {"world_size": 8, "nb_objects": 15, "quest_length": 8}),
}

#: split -> (first seed, tasks per kind). Seed ranges are disjoint across splits.
SPLITS: dict[str, tuple[int, int]] = {
    "train": (1000, 10),
    "valid": (2000, 2),
    "test": (3000, 2),
}


def textworld_version() -> str:
    from importlib.metadata import version

    return version("textworld")


def suite_tasks(split_first_seed: int, per_kind: int) -> list[Task]:
    """The tasks of one split, kind by kind, in a stable order."""
    tw_version = textworld_version()
    return [
        Task(
            f"{kind}/{seed}",
            {
                "suite_version": SUITE_VERSION,
                "textworld": tw_version,
                "generator": generator,
                "settings": settings,
                "seed": seed,
            },
        )
        for kind, (generator, settings) in KINDS.items()
        for seed in range(split_first_seed, split_first_seed + per_kind)
    ]


def _cache_dir() -> Path:
    return cache_root() / "textworld" / f"suite{SUITE_VERSION}-tw{textworld_version()}"


def game_path(task: Task) -> Path:
    """The ``.z8`` file of an embedded task, generated on first use (safe under concurrent callers)."""
    final = _cache_dir() / task.task_id.replace("/", "-")
    return cached_folder(final, lambda folder: _generate(task.definition, folder / "game.z8"), "game.z8")


def _generate(definition: dict[str, Any], path: Path) -> None:
    import textworld
    import textworld.challenges

    options = textworld.GameOptions()
    options.seeds = definition["seed"]
    options.path = str(path)
    options.file_ext = ".z8"
    options.force_recompile = True
    settings = definition["settings"]
    if definition["generator"] == "custom":
        options.nb_rooms = settings["world_size"]
        options.nb_objects = settings["nb_objects"]
        length = settings["quest_length"]
        options.chaining.min_length = options.chaining.max_length = options.chaining.max_depth = length
        textworld.make(options)
    else:
        _, make_game, _ = textworld.challenges.CHALLENGES[definition["generator"]]
        game = make_game(settings=dict(settings), options=options)
        textworld.generator.compile_game(game, options)


def user_tasks(game_files: list[str | os.PathLike]) -> list[tuple[Task, Path]]:
    """Tasks for a user's own ``tw-make`` games, with their paths.

    The id is the file name (the full path where two names clash); the definition is the file's sha256,
    so the manifest hash does not depend on where the files lie.
    """
    if isinstance(game_files, (str, os.PathLike)):
        game_files = [game_files]
    tasks, seen = [], set()
    for entry in game_files:
        path = Path(entry).expanduser().resolve()
        if path.suffix != ".z8":
            raise TaskFileError(f"{path}: expected a TextWorld game file ending in .z8 (made by tw-make; TextWorld "
                                "1.7 no longer plays .ulx)")
        if not path.is_file():
            raise TaskFileError(f"{path}: no such game file")
        if not path.with_suffix(".json").is_file():
            raise TaskFileError(
                f"{path}: the game's metadata file {path.with_suffix('.json').name} is missing; "
                "tw-make writes it next to the game, keep them together"
            )
        task_id = path.name if path.name not in seen else str(path)
        seen.add(path.name)
        data = path.read_bytes()
        gamefile.check_game(path, data)
        digest = hashlib.sha256(data).hexdigest()
        tasks.append((Task(task_id, {"sha256": digest}), path))
    if not tasks:
        raise TaskFileError("game_files is empty: pass at least one .z8 file made by tw-make")
    return tasks
