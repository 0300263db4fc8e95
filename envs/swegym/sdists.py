"""The pinned PyPI projects SWEGym's embedded tasks are made from, and fetching their sdists.

Each :class:`Project` names an sdist by version and sha256 and maps its modules to the test files that
exercise them; :func:`fetch` downloads it once with pip (the only network use of the family, at build
time) and unpacks it under :func:`swegym_cache`. The project list is part of the task-set cache key
(:func:`.tasks.dataset_key`), so changing a pin builds a new task set.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

from agentgym.cache import cache_root
from agentgym.error import InvalidArgumentError

#: The owner in every embedded instance's ``repo`` (``agentgym-sdist/<project>``).
OWNER = "agentgym-sdist"


@dataclasses.dataclass(frozen=True)
class Project:
    """A pinned PyPI source distribution and how its modules map to test files."""

    name: str
    version: str
    sha256: str
    license: str
    modules: tuple[tuple[str, tuple[str, ...]], ...]
    test_env: tuple[tuple[str, str], ...] = ()

    @property
    def repo(self) -> str:
        return f"{OWNER}/{self.name}"

    @property
    def sdist(self) -> str:
        return f"{self.name}-{self.version}.tar.gz"


def _same_name(package: str, names: Sequence[str], tests: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((f"{package}/{n}.py", (f"{tests}/test_{n}.py",)) for n in names)


#: Small permissive pure-Python projects whose sdists include fast test suites (pytest only).
PROJECTS: tuple[Project, ...] = (
    Project(
        "toolz",
        "1.2.0",
        "9667a038e9d6ecba37995e26cb2f59ec6420b6ad8dd9677de59db9b956b08490",
        "BSD-3-Clause",
        _same_name("toolz", ("functoolz", "itertoolz", "dicttoolz", "recipes"), "toolz/tests")
        + _same_name("toolz/sandbox", ("core", "parallel"), "toolz/sandbox/tests"),
    ),
    Project(
        "cachetools",
        "8.0.2",
        "30ac523adfc118b51d2b2e7bad8a0ddb31370dfe2700c7f10ca224f36ccf81e0",
        "MIT",
        (
            (
                "src/cachetools/__init__.py",
                tuple(f"tests/test_{n}.py" for n in ("cache", "fifo", "lfu", "lru", "rr", "tlru", "ttl")),
            ),
            ("src/cachetools/_cached.py", ("tests/test_cached.py",)),
            ("src/cachetools/_cachedmethod.py", ("tests/test_cachedmethod.py",)),
            ("src/cachetools/keys.py", ("tests/test_keys.py",)),
            ("src/cachetools/func.py", ("tests/test_func.py",)),
        ),
        test_env=(("PYTHONPATH", "src"),),
    ),
    Project(
        "boltons",
        "26.2.0",
        "d39cfd15c1a1c3bd4d705c82252fa9edb8e4f5e8cc039f8e39afac7b1b47e92c",
        "BSD-3-Clause",
        _same_name(
            "boltons",
            (
                "cacheutils",
                "dictutils",
                "fileutils",
                "formatutils",
                "funcutils",
                "ioutils",
                "iterutils",
                "jsonutils",
                "listutils",
                "mathutils",
                "namedutils",
                "queueutils",
                "setutils",
                "statsutils",
                "strutils",
                "tableutils",
                "tbutils",
                "timeutils",
                "typeutils",
                "urlutils",
            ),
            "tests",
        ),
    ),
)


def swegym_cache() -> Path:
    """The family's cache folder (sdists, validation results, built task sets)."""
    return cache_root() / "swegym"


def fetch(project: Project) -> Path:
    """The project's unpacked sdist (downloaded with pip on first use, sha256-checked)."""
    sdists = swegym_cache() / "sdists"
    archive = sdists / project.sdist
    if not archive.exists() or _sha256(archive) != project.sha256:
        sdists.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=sdists))
        try:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-deps",
                    "--no-binary",
                    ":all:",
                    f"{project.name}=={project.version}",
                    "-d",
                    str(scratch),
                ],
                check=True,
            )
            got = scratch / project.sdist
            if not got.exists() or _sha256(got) != project.sha256:
                raise InvalidArgumentError(
                    f"{project.sdist} from PyPI does not have the pinned sha256 {project.sha256}"
                )
            os.replace(got, archive)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    tree = sdists / f"{project.name}-{project.version}"
    if not tree.exists():
        scratch = Path(tempfile.mkdtemp(dir=sdists))
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter="data")
        os.rename(scratch / f"{project.name}-{project.version}", tree)
        shutil.rmtree(scratch)
    return tree


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_files(tree: Path) -> list[str]:
    """The project's files, relative, sorted (caches and build leftovers excluded)."""
    out = []
    for root, dirs, files in os.walk(tree):
        dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", ".pytest_cache") and not d.endswith(".egg-info"))
        out += [os.path.relpath(os.path.join(root, f), tree) for f in files if not f.endswith(".pyc")]
    return sorted(out)
