"""The embedded TextWorld task suites: generated with TextWorld's own generator, cached on first use.

Task ids are ``<kind>/<seed>`` (``coin_collector/3001``). A kind fixes the generator and its settings;
the seed fixes the world. Splits use disjoint seed ranges, so no train world appears in valid or test.
A game is generated the first time it is played (1-7 s, mostly the Inform 7 compiler) and cached under
``$AGENTGYM_CACHE/textworld/<generator key>/`` (default ``~/.cache/agentgym``); the cache key names the
suite version and the TextWorld version, so a new engine never reuses old files. Generation is
deterministic: the same task id gives a byte-identical game.

**Users' game files** (``game_files=``) are checked before the engine sees them: jericho's frotz exits the
whole Python process on a file it cannot run ("Fatal error: Unknown Z-code version") and can hang on a
corrupt one. So a user's ``.z8`` is checked first: its Z-machine header (Z-machine Standard 1.1, section 11:
the version byte at 0x00, the file length at 0x1A in units of 8 bytes for version 8, the checksum at 0x1C,
the sum of the bytes from 0x40 to that length modulo 0x10000), the TextWorld ``.json`` beside it, and then
one load and reset in a child process under a timeout (once per file content per process). Every problem
raises :class:`~agentgym.error.TaskFileError` naming the file, the field and what was expected.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from agentgym.cache import cache_root, cached_folder
from agentgym.envs.textworld.engine import textworld_version
from agentgym.error import TaskFileError
from agentgym.tasks import Task

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
            raise TaskFileError(
                f"{path}: expected a TextWorld game file ending in .z8 (made by tw-make; TextWorld "
                "1.7 no longer plays .ulx)"
            )
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
        check_game(path, data)
        digest = hashlib.sha256(data).hexdigest()
        tasks.append((Task(task_id, {"sha256": digest}), path))
    if not tasks:
        raise TaskFileError("game_files is empty: pass at least one .z8 file made by tw-make")
    return tasks


# ----------------------------------------------------------------- checks of users' game files
#: Seconds the child process may take to load and reset a game (a healthy one takes well under 2).
LOAD_TIMEOUT_S = 30
#: The keys TextWorld's Game.load reads from the .json beside a game.
JSON_KEYS = ("version", "world", "grammar", "quests", "infos", "KB", "metadata", "objective")
HEADER_SIZE = 0x40
_LENGTH_UNIT = {1: 2, 2: 2, 3: 2, 4: 4, 5: 4, 6: 8, 7: 8, 8: 8}
_loaded: set[str] = set()


def check_header(path: Path, data: bytes) -> None:
    """The Z-machine header: version, declared length against the file's size, checksum."""
    if len(data) < HEADER_SIZE:
        raise TaskFileError(
            f"{path}: {len(data)} bytes; a Z-machine game has at least a {HEADER_SIZE}-byte header"
            " (the file is empty or truncated)"
        )
    version = data[0]
    if version != 8:
        raise TaskFileError(
            f"{path}: Z-machine version byte (offset 0x00) is {version}; expected 8 (.z8 games made by tw-make)"
        )
    declared = int.from_bytes(data[0x1A:0x1C], "big") * _LENGTH_UNIT[version]
    if declared < HEADER_SIZE or declared > len(data):
        raise TaskFileError(
            f"{path}: the header's file length (offset 0x1A) says {declared} bytes; the file has "
            f"{len(data)} (truncated or corrupt)"
        )
    stored = int.from_bytes(data[0x1C:0x1E], "big")
    computed = sum(data[HEADER_SIZE:declared]) % 0x10000
    if stored != computed:
        raise TaskFileError(
            f"{path}: the header's checksum (offset 0x1C) is {stored:#06x}; the bytes sum to "
            f"{computed:#06x} (the file is corrupt)"
        )


def check_json(path: Path) -> None:
    """TextWorld's metadata file beside the game: valid JSON, an object with the keys Game.load reads."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TaskFileError(f"{path}: not valid JSON ({exc}); expected the metadata file tw-make writes") from None
    if not isinstance(data, dict):
        raise TaskFileError(f"{path}: expected a JSON object with keys {list(JSON_KEYS)}, got {type(data).__name__}")
    missing = [key for key in JSON_KEYS if key not in data]
    if missing:
        raise TaskFileError(
            f"{path}: the fields {missing} are missing; TextWorld's game metadata has {list(JSON_KEYS)}"
        )


def check_game(path: Path, data: bytes) -> None:
    """Every static check of a user's game and its .json (cheap; no engine involved)."""
    check_header(path, data)
    check_json(path.with_suffix(".json"))


_CHILD = """
import sys, warnings, textworld
warnings.simplefilter("ignore")
env = textworld.start(sys.argv[1], request_infos=textworld.EnvInfos(admissible_commands=True, description=True))
env.reset()
env.close()
print("ok")
"""


def check_loads(path: Path, digest: str) -> None:
    """Load and reset the game once in a child process under :data:`LOAD_TIMEOUT_S` (once per content)."""
    if digest in _loaded:
        return
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, timeout=LOAD_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise TaskFileError(
            f"{path}: the engine did not finish loading the game in {LOAD_TIMEOUT_S} s (the file is corrupt)"
        ) from None
    if done.returncode != 0 or "ok" not in done.stdout:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise TaskFileError(f"{path}: the engine cannot load the game: {last}")
    _loaded.add(digest)
