"""Which of the agent's changes a graded run sees, and why a submission is void.

Grading follows SWE-bench: the agent's patch is applied to a *pristine* checkout of ``base_commit``
(:meth:`.workspace.Workspace.grading_tree`), then the instance's ``test_patch``; nothing else of the
working tree reaches the graded run. :func:`review` sorts every changed path into one of:

* **applied**: ordinary source changes (the diff of these paths is what is graded);
* **restored** (not applied, the base version is graded; noted in ``info``): test files (the
  instance's test files, anything under a ``tests``/``test`` folder, ``test_*.py``, ``*_test.py``),
  shared configuration that also configures pytest (``setup.cfg``, ``pyproject.toml``, ``tox.ini``),
  git metadata, and files that are not regular files or symlinks;
* **void** (the submission gets reward 0, with the reason): changes whose only effect on grading is on
  the grader itself: a ``conftest.py`` or ``pytest.ini`` added or changed, ``sitecustomize.py`` /
  ``usercustomize.py`` / ``.pth`` files, a new top-level module or package (at the repository root or a
  ``PYTHONPATH`` entry of the instance) named like a standard-library module or anything installed
  in the test interpreter (pytest, its plugins, the tests' dependencies: it would shadow them), and
  symlinks that point outside the repository.

The run itself goes through :mod:`.runner` (isolated interpreter, private report channel, tamper
check), which voids the runs that interfere with pytest at run time.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import json
import os
import posixpath
import subprocess
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from agentgym.envs.swegym import engine
from agentgym.envs.swegym.workspace import Workspace
from agentgym.error import InvalidArgumentError
from agentgym.sandbox import Sandbox

#: Folders whose files are tests (restored before grading).
TEST_FOLDERS = frozenset({"tests", "test"})
#: File names of tests (restored before grading).
TEST_NAMES = ("test_*.py", "*_test.py")
#: Shared configuration files: restored (their base version is graded).
SHARED_CONFIG = frozenset({"setup.cfg", "pyproject.toml", "tox.ini"})
#: Files that only configure or extend the test run or the interpreter: changing one voids the submission.
GRADER_FILES = frozenset({"conftest.py", "pytest.ini", ".pytest.ini", "sitecustomize.py", "usercustomize.py"})
#: Suffixes of importable modules (a new top-level file with one of these may shadow a module).
_MODULE_SUFFIXES = (".py", ".pyc", ".pyd", ".so")


@dataclasses.dataclass
class Review:
    """The verdict on the agent's changed paths: applied, restored (with why) and the void reason."""

    applied: list[str] = dataclasses.field(default_factory=list)
    restored: dict[str, str] = dataclasses.field(default_factory=dict)
    voided: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"applied": list(self.applied), "restored": dict(self.restored), "voided": self.voided}


@functools.cache
def importable_names(python: str) -> frozenset[str]:
    """Top-level module names the test interpreter can import without the repository: the standard
    library, built-ins and everything on its own ``sys.path`` (site-packages: pytest, plugins, the
    tests' dependencies). A new module of the agent's with one of these names would shadow it."""
    code = (
        "import json, os, sys\nnames = set(sys.stdlib_module_names) | set(sys.builtin_module_names)\n"
        "for entry in sys.path:\n    try:\n        listing = os.listdir(entry or '.')\n    except OSError:\n"
        "        continue\n    for name in listing:\n        stem = name.split('.')[0]\n"
        "        if stem.isidentifier() and not name.endswith(('-info', '.pth')):\n            names.add(stem)\n"
        "print(json.dumps(sorted(names)))"
    )
    try:
        out = subprocess.run([python, "-I", "-c", code], capture_output=True, text=True, timeout=120, check=True)
        return frozenset(json.loads(out.stdout))
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise InvalidArgumentError(f"cannot list the modules of the Python interpreter {python!r}: {exc}") from exc


def is_test_path(path: str, test_files: Collection[str]) -> bool:
    parts = path.split("/")
    return (
        path in test_files
        or any(p in TEST_FOLDERS for p in parts[:-1])
        or any(fnmatch.fnmatch(parts[-1], pattern) for pattern in TEST_NAMES)
    )


def _module_name(rel: str) -> str:
    """The top-level module a path below an import root defines (``json.py`` / ``json/x.py`` -> ``json``)."""
    first = rel.split("/")[0]
    if "/" in rel:
        return first
    return first.split(".")[0] if first.endswith(_MODULE_SUFFIXES) else ""


def review(
    changes: Mapping[str, tuple[str, str]],
    *,
    test_files: Collection[str],
    base_files: Collection[str],
    shadowed: Collection[str],
    import_roots: Collection[str] = ("",),
    symlinks: Mapping[str, str] | None = None,
) -> Review:
    """Sort the agent's changes (``{path: (git status letter, new git mode)}``) as the module says.

    ``base_files`` are the paths of ``base_commit``; ``shadowed`` the names :func:`importable_names`
    lists; ``import_roots`` the folders (relative, ``""`` for the root) on ``sys.path`` during tests;
    ``symlinks`` the targets of the symlinks among the changes.
    """
    out, symlinks = Review(), dict(symlinks or {})
    base_top = {
        root: {
            _module_name(posixpath.relpath(f, root or ".")) for f in base_files if not root or f.startswith(root + "/")
        }
        for root in import_roots
    }
    for path, (status, mode) in sorted(changes.items()):
        parts, name = path.split("/"), path.rsplit("/", 1)[-1]
        if ".git" in parts:
            out.restored[path] = "git metadata is not part of a patch"
            continue
        if name in GRADER_FILES or name.endswith(".pth"):
            if status != "D":
                out.voided = (
                    out.voided
                    or f"{path}: a {name if name in GRADER_FILES else '.pth file'} would "
                    "change how the tests run, not what they test"
                )
            else:
                out.restored[path] = "files that configure the test run are restored"
            continue
        if is_test_path(path, test_files):
            out.restored[path] = "test files are restored before grading"
            continue
        if name in SHARED_CONFIG:
            out.restored[path] = "configuration that also configures pytest is restored before grading"
            continue
        if mode == "120000" and status != "D":
            target = symlinks.get(path, "")
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
            if posixpath.isabs(target) or resolved == ".." or resolved.startswith("../"):
                out.voided = out.voided or f"{path}: a symlink to {target!r}, outside the repository"
                continue
        shadow = _shadowing(path, import_roots, base_top, shadowed) if status == "A" else None
        if shadow is not None:
            out.voided = out.voided or f"{path}: {shadow}"
            continue
        out.applied.append(path)
    return out


def _shadowing(
    path: str, roots: Collection[str], base_top: Mapping[str, set[str]], shadowed: Collection[str]
) -> str | None:
    """Why a new path would shadow an importable module (``None`` if it does not)."""
    for root in roots:
        if root and not path.startswith(root + "/"):
            continue
        module = _module_name(posixpath.relpath(path, root or "."))
        if module and module in shadowed and module not in base_top[root]:
            where = f"{root}/" if root else "the repository root"
            return (
                f"a new top-level module {module!r} in {where} would shadow the installed or "
                "standard-library module of that name"
            )
    return None


def import_roots(test_env: Mapping[str, str] | None) -> list[str]:
    """The folders (relative) on ``sys.path`` during a test run: the root and ``PYTHONPATH`` entries."""
    extra = [
        os.path.normpath(p) for p in (test_env or {}).get("PYTHONPATH", "").split(":") if p and not os.path.isabs(p)
    ]
    return ["", *[p for p in extra if p != "."]]


@dataclasses.dataclass
class Submission:
    """A graded submission: the review of its changes, the agent's full diff, the graded run and
    verdict (``None`` when the submission was void before any run), and why it is void."""

    review: Review
    patch: str
    run: engine.TestRun | None
    grade: engine.Grade | None
    voided: str | None


def grade_submission(
    workspace: Workspace, instance: Mapping[str, Any], *, python: str, sandbox: Callable[[Path], Sandbox]
) -> Submission:
    """Grade the working tree as SWE-bench does, hardened (see the module): review the changes, build
    the pristine grading tree with the applied ones and the test patch, run the graded tests in
    ``sandbox(tree)`` under the runner, and void the submission on tampering."""
    changes, links = workspace.changes()
    test_files = engine.test_files(instance)
    verdict = review(
        changes,
        test_files=test_files,
        base_files=workspace.base_files(),
        shadowed=importable_names(python),
        import_roots=import_roots(instance.get("test_env")),
        symlinks=links,
    )
    for rel, kind in workspace.special_files().items():
        verdict.restored[rel] = f"{kind}: only regular files and symlinks are part of a patch"
    patch = workspace.diff()
    if verdict.voided is not None:
        return Submission(verdict, patch, None, None, verdict.voided)
    applied = [p for p in verdict.applied if changes[p][0] != "D"]
    deleted = [p for p in verdict.applied if changes[p][0] == "D"]
    tree = workspace.grading_tree(applied, deleted, instance["test_patch"])
    run = engine.run_tests(
        sandbox(tree),
        test_files,
        python=python,
        test_cmd=instance.get("test_cmd") or engine.DEFAULT_TEST_CMD,
        changed=applied,
    )
    voided = f"the graded run was tampered with: {run.tampered}" if run.tampered else None
    return Submission(verdict, patch, run, engine.grade(instance, run), voided)
