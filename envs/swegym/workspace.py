"""One episode's working copy: a fresh checkout of ``base_commit`` that never touches the user's clone.

The working tree (``<episode>/repo``, the sandbox's only writable tree, ``/tmp/repo`` inside) holds no
``.git``: the episode's git directory (``<episode>/git``) sits outside it, borrows the clone's objects
through ``objects/info/alternates`` (nothing is copied, the clone is only read), and is used by the
host alone: to diff the agent's changes, to key the tree's state (:meth:`Workspace.tree_id`) and to
build the grading tree (a pristine checkout plus the changes :mod:`.grading` lets through).

The tree is written by sandboxed code, so the host never follows what it finds there: files are read
and written only when they are regular files (:func:`read_regular`, :func:`write_regular`: no symlink
followed, FIFOs and sockets refused without blocking), and git, which skips FIFOs and sockets,
is the only thing that copies out of the tree.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from agentgym.error import EngineFault, TaskFileError

_EXCLUDE = "__pycache__/\n*.pyc\n.pytest_cache/\n*.egg-info/\n"


#: Names of the kinds of file the host refuses to touch.
_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def file_kind(path: str | os.PathLike) -> str | None:
    """``None`` for a missing path, a regular file, a folder or a symlink; else what it is ("a FIFO")."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    return _KINDS.get(stat.S_IFMT(mode))


def read_regular(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; ``OSError`` for anything else (a symlink
    is not followed, and a FIFO is refused without waiting for a writer)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, f"{_KINDS.get(stat.S_IFMT(st.st_mode), 'not a regular file')}, not a file")
        if st.st_size > limit:
            raise OSError(errno.EFBIG, f"the file has {st.st_size} bytes; the tools read at most {limit}")
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise OSError(errno.EFBIG, f"the file grew past {limit} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def write_regular(path: str | os.PathLike, data: bytes) -> None:
    """Create or overwrite a regular file; ``OSError`` when the path is a symlink, FIFO or socket."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"{_KINDS.get(stat.S_IFMT(mode), 'not a regular file')}, not a file")
        os.ftruncate(fd, 0)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


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

    def git(
        self,
        *args: str,
        work_tree: Path | None = None,
        check: bool = True,
        input: bytes | None = None,
        index: Path | None = None,
    ) -> subprocess.CompletedProcess:
        """Run git on the episode's git dir and a work tree (default: the working copy); ``index``: an
        index file other than the episode's (the agent's changes stay staged in that one)."""
        argv = [
            "git",
            "-c",
            "safe.directory=*",
            "-c",
            "core.autocrlf=false",
            "-c",
            "core.bare=false",
            "-c",
            "core.symlinks=true",
            "--literal-pathspecs",
            "--git-dir",
            str(self.git_dir),
            "--work-tree",
            str(work_tree or self.repo),
            *args,
        ]
        env = {
            **os.environ,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "agentgym",
            "GIT_AUTHOR_EMAIL": "agentgym@localhost",
            "GIT_COMMITTER_NAME": "agentgym",
            "GIT_COMMITTER_EMAIL": "agentgym@localhost",
        }
        if index is not None:
            env["GIT_INDEX_FILE"] = str(index)
        result = subprocess.run(argv, capture_output=True, input=input, env=env, cwd=str(work_tree or self.repo))
        if check and result.returncode != 0:
            raise EngineFault(f"git {' '.join(args[:2])} failed: {result.stderr.decode(errors='replace')[:400]}")
        return result

    def diff(self) -> str:
        """The agent's changes against ``base_commit`` as a git diff (new files included)."""
        self.git("add", "-A")
        return self.git("diff", "--cached", "--binary", self.base_commit).stdout.decode(errors="replace")

    def base_files(self) -> set[str]:
        out = self.git("ls-tree", "-r", "-z", "--name-only", self.base_commit).stdout
        return {name.decode("utf-8", "surrogateescape") for name in out.split(b"\0") if name}

    def tree_id(self) -> str:
        """The git tree hash of the working tree as it is (bytecode and caches excluded): equal trees
        give equal ids, whatever the edits that led there."""
        self.git("add", "-A")
        return self.git("write-tree").stdout.decode().strip()

    def changes(self) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
        """The agent's changed paths against ``base_commit``: ``{path: (status letter, new git mode)}``
        (``A``dded, ``M``odified, ``D``eleted, ``T``ype changed) and the targets of changed symlinks."""
        self.git("add", "-A")
        fields = self.git("diff", "--cached", "--raw", "-z", "--no-renames", self.base_commit).stdout.split(b"\0")
        changes, links = {}, {}
        for meta, raw_path in zip(fields[0::2], fields[1::2]):
            _, new_mode, _, new_sha, status = meta.decode().lstrip(":").split()
            path = raw_path.decode("utf-8", "surrogateescape")
            changes[path] = (status[0], new_mode)
            if new_mode == "120000":
                links[path] = self.git("cat-file", "blob", new_sha).stdout.decode("utf-8", "replace")
        return changes, links

    def special_files(self, limit: int = 20) -> dict[str, str]:
        """Up to ``limit`` FIFOs, sockets and devices in the working tree (git and the tools skip them)."""
        found: dict[str, str] = {}
        for root, dirs, files in os.walk(self.repo):
            for name in (*dirs, *files):
                kind = file_kind(os.path.join(root, name))
                if kind is not None:
                    found[os.path.relpath(os.path.join(root, name), self.repo)] = kind
                    if len(found) >= limit:
                        return found
        return found

    def grading_tree(self, applied: Sequence[str], deleted: Sequence[str], test_patch: str) -> Path:
        """A pristine checkout of ``base_commit`` with the agent's staged versions of ``applied`` (and
        ``deleted`` removed), then ``test_patch`` applied: nothing else of the working tree."""
        grade = self.root / "grade"
        if grade.exists():
            shutil.rmtree(grade)
        grade.mkdir()
        pristine = self.root / "pristine.index"
        self.git("read-tree", self.base_commit, index=pristine)
        self.git("checkout-index", "-a", "-f", f"--prefix={grade}/", index=pristine)
        if applied:  # from the episode's index, where changes() staged the agent's tree
            self.git(
                "checkout-index",
                "-f",
                "-z",
                "--stdin",
                f"--prefix={grade}/",
                input=b"".join(p.encode("utf-8", "surrogateescape") + b"\0" for p in applied),
            )
        for rel in deleted:
            target = grade / rel
            if target.is_symlink() or target.is_file():
                target.unlink()
        if test_patch.strip():
            applied_patch = self.git("apply", "-v", "-", work_tree=grade, input=test_patch.encode(), check=False)
            if applied_patch.returncode != 0:
                raise TaskFileError(
                    f"the instance's test_patch does not apply: {applied_patch.stderr.decode(errors='replace')[:400]}"
                )
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
            raise TaskFileError(
                f"the instance's gold patch does not apply: {applied.stderr.decode(errors='replace')[:400]}"
            )
        out: dict[str, str | None] = {}
        for rel in files:
            path = scratch / rel
            out[rel] = path.read_text(encoding="utf-8", errors="surrogateescape") if path.exists() else None
        shutil.rmtree(scratch)
        return out

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
