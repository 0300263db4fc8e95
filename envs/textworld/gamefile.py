"""Checks of a user's TextWorld game files before the engine loads them.

jericho's frotz exits the whole Python process on a file it cannot run ("Fatal error: Unknown Z-code
version") and can hang on a corrupt one, so a user's ``.z8`` is checked first: its Z-machine header
(Z-machine Standard 1.1, section 11: the version byte at 0x00, the file length at 0x1A in units of 8
bytes for version 8, the checksum at 0x1C, the sum of the bytes from 0x40 to that length modulo
0x10000), the TextWorld ``.json`` beside it, and then one load and reset in a child process under a
timeout (once per file content per process). Every problem raises
:class:`~agentgym.error.TaskFileError` naming the file, the field and what was expected.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from agentgym.error import TaskFileError

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
        raise TaskFileError(f"{path}: {len(data)} bytes; a Z-machine game has at least a {HEADER_SIZE}-byte header"
                            " (the file is empty or truncated)")
    version = data[0]
    if version != 8:
        raise TaskFileError(f"{path}: Z-machine version byte (offset 0x00) is {version}; expected 8 (.z8 games "
                            "made by tw-make)")
    declared = int.from_bytes(data[0x1A:0x1C], "big") * _LENGTH_UNIT[version]
    if declared < HEADER_SIZE or declared > len(data):
        raise TaskFileError(f"{path}: the header's file length (offset 0x1A) says {declared} bytes; the file has "
                            f"{len(data)} (truncated or corrupt)")
    stored = int.from_bytes(data[0x1C:0x1E], "big")
    computed = sum(data[HEADER_SIZE:declared]) % 0x10000
    if stored != computed:
        raise TaskFileError(f"{path}: the header's checksum (offset 0x1C) is {stored:#06x}; the bytes sum to "
                            f"{computed:#06x} (the file is corrupt)")


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
        raise TaskFileError(f"{path}: the fields {missing} are missing; TextWorld's game metadata has {list(JSON_KEYS)}")


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
        done = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True,
                              timeout=LOAD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise TaskFileError(f"{path}: the engine did not finish loading the game in {LOAD_TIMEOUT_S} s "
                            "(the file is corrupt)") from None
    if done.returncode != 0 or "ok" not in done.stdout:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise TaskFileError(f"{path}: the engine cannot load the game: {last}")
    _loaded.add(digest)
