"""One episode's working copy: a fresh checkout of ``base_commit`` that never touches the user's clone.

The working tree (``<episode>/repo``, the sandbox's only writable tree, ``/tmp/repo`` inside) holds no
``.git``: the episode's git directory (``<episode>/git``) sits outside it, borrows the clone's objects
through ``objects/info/alternates`` (nothing is copied, the clone is only read), and is used by the
host alone: to diff the agent's changes and to build the grading copy with the test files restored.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from agentgym.error import EngineFault, TaskFileError

_EXCLUDE = "__pycache__/\n*.pyc\n.pytest_cache/\n*.egg-info/\n"


def git_objects(clone: Path) -> Path:
    """The objects folder of a clone (normal or bare)."""
    for candidate in (clone / ".git" / "objects", clone / "objects"):
        if candidate.is_dir():
            return candidate
    raise TaskFileError(f"{str(clone)!r} is not a git clone (no .git/objects or objects folder)")


class Workspace:
    """A checkout of ``base_commit`` from ``clone`` in a new temp folder (removed by :meth:`close`)."""

    def __init__(self, clone: Path, base_commit: str, parent: str | None = None):
        objects = git_objects(clone)
        self.root = Path(tempfile.mkdtemp(prefix="agentgym-swegym-", dir=parent))
        self.repo, self.git_dir = self.root / "repo", self.root / "git"
        self.base_commit = base_commit
        try:
            self.repo.mkdir()
            subprocess.run(["git", "init", "-q", "--bare", str(self.git_dir)], check=True, capture_output=True)
            (self.git_dir / "objects" / "info" / "alternates").write_text(str(objects.resolve()) + "\n")
            (self.git_dir / "info").mkdir(exist_ok=True)
            (self.git_dir / "info" / "exclude").write_text(_EXCLUDE)
            if self.git("cat-file", "-e", f"{base_commit}^{{commit}}", check=False).returncode != 0:
                raise TaskFileError(f"base_commit {base_commit!r} is not in the clone {str(clone)!r}")
            self.git("read-tree", base_commit)
            self.git("checkout-index", "-a", "-f")
        except BaseException:
            self.close()
            raise

    def git(self, *args: str, work_tree: Path | None = None, check: bool = True, input: bytes | None = None,
            ) -> subprocess.CompletedProcess:
        """Run git on the episode's git dir and a work tree (default: the working copy)."""
        argv = ["git", "-c", "safe.directory=*", "-c", "core.autocrlf=false", "-c", "core.bare=false",
                "--git-dir", str(self.git_dir), "--work-tree", str(work_tree or self.repo), *args]
        env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "agentgym",
               "GIT_AUTHOR_EMAIL": "agentgym@localhost", "GIT_COMMITTER_NAME": "agentgym",
               "GIT_COMMITTER_EMAIL": "agentgym@localhost"}
        result = subprocess.run(argv, capture_output=True, input=input, env=env, cwd=str(work_tree or self.repo))
        if check and result.returncode != 0:
            raise EngineFault(f"git {' '.join(args[:2])} failed: {result.stderr.decode(errors='replace')[:400]}")
        return result

    def diff(self) -> str:
        """The agent's changes against ``base_commit`` as a git diff (new files included)."""
        self.git("add", "-A")
        return self.git("diff", "--cached", "--binary", self.base_commit).stdout.decode(errors="replace")

    def base_files(self) -> set[str]:
        out = self.git("ls-tree", "-r", "--name-only", self.base_commit).stdout.decode()
        return set(out.splitlines())

    def grading_copy(self, test_files: Sequence[str], test_patch: str) -> Path:
        """A copy of the working tree with test files and every conftest.py restored, test patch applied."""
        grade = self.root / "grade"
        if grade.exists():
            shutil.rmtree(grade)
        shutil.copytree(self.repo, grade, symlinks=True)
        base = self.base_files()
        restore = sorted({f for f in test_files if f in base} | {f for f in base if f.endswith("conftest.py")})
        for root, _, files in os.walk(grade):
            for name in files:
                rel = os.path.relpath(os.path.join(root, name), grade)
                if name == "conftest.py" and rel not in base:
                    os.unlink(os.path.join(root, name))  # a conftest.py the agent added
        for rel in test_files:
            if rel not in base and (grade / rel).exists():
                (grade / rel).unlink()  # the test patch creates it
        for start in range(0, len(restore), 200):
            self.git("checkout", self.base_commit, "--", *restore[start:start + 200], work_tree=grade)
        if test_patch.strip():
            applied = self.git("apply", "-v", "-", work_tree=grade, input=test_patch.encode(), check=False)
            if applied.returncode != 0:
                raise TaskFileError(f"the instance's test_patch does not apply: "
                                    f"{applied.stderr.decode(errors='replace')[:400]}")
        return grade

    def apply_to_copy(self, patch: str, files: Sequence[str]) -> dict[str, str | None]:
        """Contents of ``files`` after applying ``patch`` to ``base_commit`` (``None``: deleted)."""
        scratch = self.root / "target"
        if scratch.exists():
            shutil.rmtree(scratch)
        scratch.mkdir()
        base = self.base_files()
        present = [f for f in files if f in base]
        if present:
            self.git("checkout", self.base_commit, "--", *present, work_tree=scratch)
        applied = self.git("apply", "--unsafe-paths", "-", work_tree=scratch, input=patch.encode(), check=False)
        if applied.returncode != 0:
            raise TaskFileError(f"the instance's gold patch does not apply: {applied.stderr.decode(errors='replace')[:400]}")
        out: dict[str, str | None] = {}
        for rel in files:
            path = scratch / rel
            out[rel] = path.read_text(encoding="utf-8", errors="surrogateescape") if path.exists() else None
        shutil.rmtree(scratch)
        return out

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
