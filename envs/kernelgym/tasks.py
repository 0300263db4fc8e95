"""KernelGym task files (KernelBench's format) and how they are found.

A task is one Python file that defines, as KernelBench problems do:

* ``class Model(nn.Module)`` with ``__init__(*get_init_inputs())`` and ``forward(*get_inputs())``;
* module-level shape constants, ``get_inputs()`` (a list of tensors built on the CPU) and
  ``get_init_inputs()`` (the constructor arguments);

plus two optional literal dicts agentgym reads without running the file:

* ``SHAPES = {"cpu": {"N": 64}, "cuda": {"N": 4096}}``: the constants used on each device (the
  module-level values are the defaults; the CPU set keeps evaluation fast on one core);
* ``META = {"level": 1, "split": "test", "forbidden": ["relu"], "backends": [...], "dtype": "float32",
  "atol": 1e-4, "rtol": 1e-4, "description": "..."}``: ``forbidden`` names the high-level torch ops the
  submission must not call (they are what it should replace), ``backends`` the allowed ones among
  ``torch`` (a plain PyTorch rewrite), ``cpp`` (``load_inline`` C++), ``cuda`` (``load_inline`` CUDA) and
  ``triton``; the split defaults to one drawn from the hash of the task id (60/20/20).

An expert submission (defining ``ModelNew``) may sit next to it as ``experts/<same name>.py``.
Task ids are ``<folder>/<file stem>`` (``level1/relu``).
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
from pathlib import Path
from typing import Any

from agentgym.error import TaskFileError

BUILTIN_DIR = Path(__file__).with_name("tasks")
BACKENDS = ("torch", "cpp", "cuda", "triton")
DEVICES = ("cpu", "cuda")
TOLERANCE = {"float32": 1e-4, "float64": 1e-6, "float16": 1e-2, "bfloat16": 1e-2}
#: The META keys a task file may set, their types and what the error says is expected.
META_KEYS = {
    "level": int,
    "split": str,
    "forbidden": (list, tuple),
    "backends": (list, tuple),
    "dtype": str,
    "atol": (int, float),
    "rtol": (int, float),
    "description": str,
}
META_EXPECTED = {
    "level": "an int",
    "split": "'train', 'valid' or 'test'",
    "forbidden": "a list of op names (strings), e.g. ['relu']",
    "backends": f"a non-empty list among {list(BACKENDS)}",
    "dtype": f"one of {list(TOLERANCE)}",
    "atol": "a positive number",
    "rtol": "a positive number",
    "description": "a string",
}


@dataclasses.dataclass(frozen=True)
class KernelTask:
    """One task: the reference source and what agentgym read from it."""

    task_id: str
    source: str
    path: str
    level: int
    split: str
    forbidden: tuple[str, ...]
    backends: tuple[str, ...]
    dtype: str
    atol: float
    rtol: float
    description: str
    shape_sets: dict[str, dict[str, Any]]
    expert: str | None

    def shapes(self, device: str) -> dict[str, Any]:
        """The module constants to set for ``device`` (empty: the file's own values)."""
        return dict(self.shape_sets.get(device, {}))

    def definition(self) -> dict[str, Any]:
        """The JSON-able definition hashed into the split manifest."""
        return {
            "source": self.source,
            "level": self.level,
            "forbidden": list(self.forbidden),
            "backends": list(self.backends),
            "dtype": self.dtype,
            "atol": self.atol,
            "rtol": self.rtol,
            "shapes": self.shape_sets,
        }


def _literal(tree: ast.Module, name: str, path: Path) -> Any:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            try:
                return ast.literal_eval(node.value)
            except ValueError as exc:
                raise TaskFileError(f"{path}: {name} must be a literal dict ({exc})") from None
    return None


def hash_split(task_id: str) -> str:
    value = int(hashlib.sha256(task_id.encode()).hexdigest()[:8], 16) % 100
    return "train" if value < 60 else "valid" if value < 80 else "test"


def load_task(path: str | Path, task_id: str) -> KernelTask:
    """Read and check one task file; a malformed file raises :class:`TaskFileError` naming it."""
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
    except (OSError, UnicodeDecodeError, SyntaxError) as exc:
        raise TaskFileError(f"{path}: cannot read the task file: {exc}") from None
    defined = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    missing = [n for n in ("Model", "get_inputs", "get_init_inputs") if n not in defined]
    if missing:
        raise TaskFileError(
            f"{path}: a KernelBench task file must define {missing} (class Model, get_inputs(), get_init_inputs())"
        )
    meta = _literal(tree, "META", path) or {}
    shapes = _literal(tree, "SHAPES", path) or {}
    if not isinstance(meta, dict) or not isinstance(shapes, dict):
        raise TaskFileError(f"{path}: META and SHAPES must be dicts")
    bad = [d for d in shapes if d not in DEVICES or not isinstance(shapes[d], dict)]
    if bad:
        raise TaskFileError(f"{path}: SHAPES keys must be among {list(DEVICES)} with dict values, got {bad}")
    unknown = sorted(set(meta) - set(META_KEYS))
    if unknown:
        raise TaskFileError(f"{path}: META has unknown keys {unknown}; allowed: {list(META_KEYS)}")
    for key, kind in META_KEYS.items():
        if key in meta and not isinstance(meta[key], kind):
            raise TaskFileError(f"{path}: META[{key!r}] must be {META_EXPECTED[key]}, got {meta[key]!r}")
    for key in ("forbidden", "backends"):
        if key in meta and not all(isinstance(v, str) and v for v in meta[key]):
            raise TaskFileError(f"{path}: META[{key!r}] must be {META_EXPECTED[key]}, got {meta[key]!r}")
    for key in ("atol", "rtol"):
        if key in meta and (isinstance(meta[key], bool) or meta[key] <= 0):
            raise TaskFileError(f"{path}: META[{key!r}] must be {META_EXPECTED[key]}, got {meta[key]!r}")
    backends = tuple(meta.get("backends", BACKENDS))
    if not backends or any(b not in BACKENDS for b in backends):
        raise TaskFileError(
            f"{path}: META['backends'] must be a non-empty subset of {list(BACKENDS)}, got {backends!r}"
        )
    dtype = str(meta.get("dtype", "float32"))
    if dtype not in TOLERANCE:
        raise TaskFileError(f"{path}: META['dtype'] must be one of {list(TOLERANCE)}, got {dtype!r}")
    split = meta.get("split") or hash_split(task_id)
    if split not in ("train", "valid", "test"):
        raise TaskFileError(f"{path}: META['split'] must be train, valid or test, got {split!r}")
    level = meta.get("level", 1)
    if not isinstance(level, int):
        raise TaskFileError(f"{path}: META['level'] must be an int, got {level!r}")
    expert_path = path.parent / "experts" / path.name
    expert = expert_path.read_text(encoding="utf-8") if expert_path.is_file() else None
    doc = (ast.get_docstring(tree) or "").strip()
    description = str(meta.get("description") or (doc.splitlines()[0] if doc else task_id))
    return KernelTask(
        task_id=task_id,
        source=source,
        path=str(path),
        level=level,
        split=split,
        forbidden=tuple(str(f) for f in meta.get("forbidden", ())),
        backends=backends,
        dtype=dtype,
        atol=float(meta.get("atol", TOLERANCE[dtype])),
        rtol=float(meta.get("rtol", TOLERANCE[dtype])),
        description=description,
        shape_sets={k: dict(v) for k, v in shapes.items()},
        expert=expert,
    )


def load_tasks(folder: str | Path | None = None) -> list[KernelTask]:
    """Every task under ``folder`` (default: the built-in tasks), sorted by id.

    Task files are the ``*.py`` files in ``folder`` and its subfolders, except ``__init__.py`` and files
    in ``experts/`` folders.
    """
    root = Path(folder) if folder is not None else BUILTIN_DIR
    if not root.is_dir():
        raise TaskFileError(f"{root}: tasks_dir must be a folder of KernelBench-style task files")
    tasks = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if path.name == "__init__.py" or "experts" in rel.parts[:-1] or "__pycache__" in rel.parts:
            continue
        tasks.append(load_task(path, rel.with_suffix("").as_posix()))
    if not tasks:
        raise TaskFileError(f"{root}: no task files (*.py defining Model, get_inputs, get_init_inputs)")
    return tasks
