"""SWE-Gym-style repository bug fixing, every command in a bubblewrap sandbox.

Env card
--------
* **Id**: ``agentgym/SWEGym-v0``
* **Engine**: a real Python repository checked out per episode, real pytest runs, all agent commands
  and test runs inside :mod:`agentgym.sandbox` (bubblewrap: no network, read-only system, the working
  copy at ``/tmp/repo`` as the only writable tree, an unprivileged uid, CPU/memory/process/file-size
  and wall-clock limits). Needs the Debian package ``bubblewrap``.
* **Tasks** (SWE-bench schema, see :mod:`.harness`):

  - *embedded* (default): bugs synthesized SWE-smith-style in three pinned PyPI projects (toolz 1.2.0,
    cachetools 8.0.2, boltons 26.2.0), one AST mutation in one function, kept only when real sandboxed
    runs show at least one test going pass -> fail and others still passing. Built once by
    ``python -m agentgym.envs.swegym.build`` (fetches the sdists with pip; see :mod:`.build`). Splits
    ``train``/``valid``/``test`` by project module: test bugs sit in modules no training bug touched
    (seed 0 on Python 3.11 / pytest 9.2: 288 tasks, 163 / 71 / 54, from 484 candidates).
  - *users' instances*: ``instances=PATH`` (a SWE-Gym / SWE-bench JSONL file), ``repos_dir=DIR`` holding
    one git clone per repo at ``DIR/<owner>__<name>`` (SWE-bench's naming; offline: clone them
    beforehand, e.g. ``git clone https://github.com/<owner>/<name> DIR/<owner>__<name>``), and
    ``python=INTERPRETER``, the interpreter whose environment has the repo's test dependencies
    (default: the current one). All instances form the selected split; task ids are the instance ids.
    Each episode checks out ``base_commit`` into a fresh folder; the clone is only read.
* **Observation**: at reset, the issue text (``problem_statement``), where the repository is, and the
  tool syntax; then each tool's result. Observations longer than ``max_observation_chars`` (default
  10,000) keep their first and last halves around the marker
  ``[... N characters truncated (observation limit 10000) ...]``.
* **Action**: one tool call per step (:mod:`.tools`): ``bash``, ``view``, ``search``, ``create_file``,
  ``str_replace``, ``undo_edit``, ``run_tests``, ``submit``; plain text (``view src/a.py 10 40``) or a
  one-line JSON tool call (``{"name": "view", "arguments": {"path": "src/a.py"}}``). JSON schemas in
  OpenAI function form are in ``info["tools"]``.
* **run_tests** runs the instance's test files (or the given ones) on the working tree as it is (the
  hidden ``test_patch`` of a SWE-bench instance is *not* applied, so its new tests are not shown);
  ``info["swegym"]["tests"]`` then holds the statuses of the FAIL_TO_PASS / PASS_TO_PASS ids found.
* **Reward**: 1.0 at ``submit`` when the instance is resolved (SWE-bench grading: test files and every
  ``conftest.py`` restored, the test patch applied, FAIL_TO_PASS and PASS_TO_PASS run in the sandbox and
  read from the JUnit report; resolved when all pass and the run is valid), else 0.0.
  ``info["score"]`` is the fraction of graded tests passing at the last graded run (0 before any).
* **Termination**: ``submit``. **Truncation**: ``max_turns`` (default 30) reached.
* **info**: the standard keys; ``goal`` is the problem statement, ``admissible_actions`` None (open
  action space), ``expert_action`` the next step of the expert (the gold patch as ``str_replace`` /
  ``create_file`` calls, then ``submit``), ``ground_truth`` None, ``anchor_obs`` the observation.
  ``info["tools"]``: the tool schemas. Under ``info["swegym"]``: ``instance_id``, ``repo``, ``tool``
  (the tool run), ``exit_code``, ``timed_out`` (the command hit its time limit and was killed with its
  process tree), ``truncated`` (the observation was cut), and after ``run_tests``/``submit``:
  ``tests`` ({test id: status} for FAIL_TO_PASS and PASS_TO_PASS), ``fraction`` (of those passing),
  ``f2p_fraction``, ``resolved``; at ``submit`` also ``grade`` (SWE-bench verdict) and ``patch``
  (the agent's diff).
* **Bad actions**: malformed tool calls, unknown tools, paths outside the repository, a non-unique
  ``old_str`` are answered with what was wrong and ``action_valid=False``. A command that fails or
  times out is a valid action; its result says so. A sandbox that cannot run raises
  :class:`agentgym.sandbox.SandboxError` (an ``EngineFault``); ``reset()`` works afterwards.

Version history: v0, initial release.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import sys
from pathlib import Path
from typing import Any

from agentgym.core import TextEnv, Transition
from agentgym.error import DependencyNotInstalled, InvalidArgumentError
from agentgym.sandbox import Limits, Sandbox, bwrap_path, interpreter_paths
from agentgym.tasks import Task, TaskSplit

from agentgym.envs.swegym import harness, tools
from agentgym.envs.swegym.workspace import Workspace

#: Default observation limit (characters).
MAX_OBSERVATION_CHARS = 10_000
#: Limits of one agent command.
COMMAND_LIMITS = Limits(wall_seconds=60, cpu_seconds=60, memory_bytes=2 << 30, processes=64)


def truncate(text: str, limit: int) -> tuple[str, bool]:
    """Keep the first and last halves of ``text`` around a marker when it exceeds ``limit``."""
    if len(text) <= limit:
        return text, False
    half = limit // 2
    cut = len(text) - 2 * half
    return f"{text[:half]}\n[... {cut} characters truncated (observation limit {limit}) ...]\n{text[-half:]}", True


def _prompt(instance: dict[str, Any], mount: str) -> str:
    return (f"<uploaded_files>\n{mount}\n</uploaded_files>\nI've uploaded a Python code repository in the folder "
            f"{mount} (repository {instance['repo']}). Consider the following issue:\n\n<issue_description>\n"
            f"{instance['problem_statement'].strip()}\n</issue_description>\n\nMake the minimal changes to non-test "
            "files in the repository so that the issue is resolved. Do not modify the tests: test files are "
            "restored before grading. Paths are relative to the repository root. When you are done, submit.\n\n"
            + tools.SYNTAX)


class SWEGymEnv(TextEnv):
    """Repository bug fixing in a sandbox (see the module's env card).

    Args:
        split: ``train``, ``valid`` or ``test`` (embedded tasks); any name with ``instances``.
        max_turns: turn limit; reaching it truncates the episode.
        instances: a SWE-Gym / SWE-bench JSONL file of the user's instances (replaces the embedded tasks).
        repos_dir: folder with one git clone per repo at ``<owner>__<name>`` (needed with ``instances``).
        python: interpreter that runs the repos' tests (default: the current one).
        task_seed: seed of the embedded task set (build it first with ``--seed``).
        command_timeout: wall-clock seconds of one agent command.
        test_timeout: wall-clock seconds of one test run.
        max_observation_chars: observation limit (longer ones are cut with a marker).
        max_action_length: longer actions are answered as invalid.
        render_mode: ``None`` or ``"ansi"``.
    """

    family = "SWEGym"

    def __init__(
        self,
        split: str = "train",
        max_turns: int = 30,
        instances: str | os.PathLike | None = None,
        repos_dir: str | os.PathLike | None = None,
        python: str | os.PathLike | None = None,
        task_seed: int = 0,
        command_timeout: float = 60.0,
        test_timeout: float = 180.0,
        max_observation_chars: int = MAX_OBSERVATION_CHARS,
        max_action_length: int = 100_000,
        render_mode: str | None = None,
    ):
        from agentgym.envs.swegym import build  # not at import: `python -m ...build` would import it twice

        if bwrap_path() is None:
            raise DependencyNotInstalled(
                "agentgym/SWEGym-v0 runs every command in bubblewrap: `apt-get install bubblewrap` "
                "(or `bash scripts/system-deps.sh`)")
        for name, value in (("command_timeout", command_timeout), ("test_timeout", test_timeout)):
            if not isinstance(value, (int, float)) or value <= 0:
                raise InvalidArgumentError(f"{name} must be a positive number of seconds, got {value!r}")
        if not isinstance(max_observation_chars, int) or max_observation_chars < 100:
            raise InvalidArgumentError(f"max_observation_chars must be an int >= 100, got {max_observation_chars!r}")
        self.python = str(python or sys.executable)
        if not os.access(self.python, os.X_OK):
            raise InvalidArgumentError(f"python={self.python!r} is not an executable interpreter")
        if instances is not None:
            if repos_dir is None:
                raise InvalidArgumentError("instances=... needs repos_dir=DIR with one git clone per repo "
                                           "at DIR/<owner>__<name>")
            records = harness.load_instances(instances)
            self.repos_dir = Path(repos_dir)
        else:
            if repos_dir is not None:
                raise InvalidArgumentError("repos_dir is only used together with instances=PATH")
            folder = build.dataset_dir(task_seed)
            if not (folder / "instances.jsonl").exists():
                raise DependencyNotInstalled(
                    f"the embedded SWEGym task set (seed {task_seed}) is not built yet; run once (it fetches "
                    f"three sdists from PyPI): {sys.executable} -m agentgym.envs.swegym.build --seed {task_seed}")
            records = [r for r in harness.load_instances(folder / "instances.jsonl") if r.get("split") == split]
            if not records:
                raise InvalidArgumentError(f"unknown split {split!r}; expected one of ['test', 'train', 'valid']")
            self.repos_dir = folder / "repos"
        for record in records:
            clone = self.repos_dir / harness.repo_folder(record["repo"])
            if not clone.is_dir():
                raise InvalidArgumentError(
                    f"instance {record['instance_id']!r} needs a clone of {record['repo']} at {str(clone)!r}")
        self.engine_version = f"swegym-v0 (generator {build.GENERATOR_VERSION}, bubblewrap sandbox)"
        self._instances = {record["instance_id"]: record for record in records}
        tasks = TaskSplit(split, [Task(r["instance_id"], r) for r in records], self.engine_version)
        super().__init__(tasks, max_turns=max_turns, max_action_length=max_action_length, render_mode=render_mode)
        self.command_limits = dataclasses.replace(COMMAND_LIMITS, wall_seconds=float(command_timeout))
        self.test_limits = dataclasses.replace(harness.TEST_LIMITS, wall_seconds=float(test_timeout))
        self.max_observation_chars = max_observation_chars
        self._readonly = interpreter_paths(self.python)
        self._workspace: Workspace | None = None
        self._sandbox: Sandbox | None = None
        self._instance: dict[str, Any] = {}
        self._history: dict[str, list[str | None]] = {}
        self._target: dict[str, str | None] | None = None
        self._score = 0.0

    # ----------------------------------------------------------------- episode
    def _start(self, task: Task) -> tuple[Transition, str | None]:
        self._close_engine()
        self._instance = self._instances[task.task_id]
        clone = self.repos_dir / harness.repo_folder(self._instance["repo"])
        self._workspace = Workspace(clone, self._instance["base_commit"])
        self._sandbox = self._make_sandbox(self._workspace.repo, self.command_limits)
        self._history, self._target, self._score = {}, None, 0.0
        observation = _prompt(self._instance, self._sandbox.mount_point)
        return self._transition(observation, {"tool": None}), self._instance["problem_statement"]

    def _make_sandbox(self, tree: Path, limits: Limits) -> Sandbox:
        """A sandbox on ``tree`` with the instance's test environment and the interpreter on PATH."""
        env = {str(k): str(v) for k, v in (self._instance.get("test_env") or {}).items()}
        env["PATH"] = f"{os.path.dirname(self.python)}:/usr/local/bin:/usr/bin:/bin"
        return Sandbox(tree, limits=limits, readonly=self._readonly, env=env)

    def _close_engine(self) -> None:
        if self._workspace is not None:
            self._workspace.close()
        self._workspace, self._sandbox = None, None

    def _transition(self, text: str, family: dict[str, Any], *, valid: bool = True, reward: float = 0.0,
                    terminated: bool = False, won: bool = False) -> Transition:
        observation, cut = truncate(text, self.max_observation_chars)
        info = {"instance_id": self._instance["instance_id"], "repo": self._instance["repo"], "tool": None,
                "exit_code": None, "timed_out": False, "truncated": cut, **family}
        return Transition(observation, reward=reward, terminated=terminated, action_valid=valid, won=won,
                          score=self._score, expert_action=None if terminated else self._expert,
                          family_info=info)

    def _info(self, transition: Transition) -> Any:
        info = super()._info(transition)
        info["tools"] = copy.deepcopy(tools.TOOLS)
        return info

    def _advance(self, action: str) -> Transition:
        try:
            name, args = tools.parse(action)
        except tools.ToolSyntaxError as exc:
            return self._transition(f"Invalid action: {exc}.\n\n{tools.SYNTAX}", {}, valid=False)
        try:
            return getattr(self, f"_tool_{name}")(**args)
        except _Refused as exc:
            return self._transition(f"Invalid action: {exc}", {"tool": name}, valid=False)

    # ----------------------------------------------------------------- tools
    def _path(self, path: str) -> tuple[Path, str]:
        assert self._workspace is not None and self._sandbox is not None
        mount = self._sandbox.mount_point
        if path == mount or path.startswith(mount + "/"):
            path = path[len(mount):].lstrip("/") or "."
        if os.path.isabs(path):
            raise _Refused(f"{path!r} is outside the repository; use a path relative to {mount}")
        root = os.path.realpath(self._workspace.repo)
        full = os.path.realpath(os.path.join(root, path))
        if full != root and not full.startswith(root + os.sep):
            raise _Refused(f"{path!r} leads outside the repository")
        return Path(full), os.path.relpath(full, root)

    def _tool_bash(self, command: str) -> Transition:
        assert self._sandbox is not None
        result = self._sandbox.run(command)
        text = (result.output if result.output.strip() else "(no output)\n").rstrip("\n") + "\n" + result.describe()
        return self._transition(text, {"tool": "bash", "exit_code": result.returncode, "timed_out": result.timed_out})

    def _tool_view(self, path: str, start_line: int | None = None, end_line: int | None = None) -> Transition:
        full, rel = self._path(path)
        if full.is_dir():
            assert self._sandbox is not None
            result = self._sandbox.run(["find", ".", "-maxdepth", "2", "-not", "-path", "*/__pycache__*",
                                        "-not", "-path", "*/.*"], cwd=f"{self._sandbox.mount_point}/{rel}")
            return self._transition(f"Files in {rel} (2 levels):\n" + "\n".join(sorted(result.output.split())),
                                    {"tool": "view"})
        if not full.is_file():
            raise _Refused(f"no file {rel!r}")
        lines = full.read_text(encoding="utf-8", errors="replace").splitlines()
        first = max(1, start_line or 1)
        last = min(len(lines), end_line if end_line is not None and end_line >= 1 else len(lines))
        if first > max(len(lines), 1):
            raise _Refused(f"{rel} has {len(lines)} lines; start_line {first} is past the end")
        body = "\n".join(f"{n:6}\t{lines[n - 1]}" for n in range(first, last + 1))
        return self._transition(f"{rel} (lines {first}-{last} of {len(lines)}):\n{body}", {"tool": "view"})

    def _tool_search(self, pattern: str, path: str = ".") -> Transition:
        assert self._sandbox is not None
        _, rel = self._path(path)
        result = self._sandbox.run(["grep", "-rnIE", "--exclude-dir=__pycache__", "--", pattern, rel])
        if result.returncode == 1:
            text = f"No matches for {pattern!r} in {rel}."
        else:
            text = result.output if result.returncode == 0 else f"grep failed: {result.output}"
        return self._transition(text, {"tool": "search", "exit_code": result.returncode})

    def _write(self, full: Path, rel: str, content: str | None) -> None:
        previous = full.read_text(encoding="utf-8", errors="surrogateescape") if full.is_file() else None
        self._history.setdefault(rel, []).append(previous)
        if content is None:
            full.unlink(missing_ok=True)
        else:
            full.parent.mkdir(parents=True, exist_ok=True)
            full.write_text(content, encoding="utf-8", errors="surrogateescape")

    def _tool_create_file(self, path: str, content: str) -> Transition:
        full, rel = self._path(path)
        if full.is_dir():
            raise _Refused(f"{rel!r} is a folder")
        existed = full.exists()
        self._write(full, rel, content)
        verb = "Overwrote" if existed else "Created"
        return self._transition(f"{verb} {rel} ({len(content.splitlines())} lines).", {"tool": "create_file"})

    def _tool_str_replace(self, path: str, old_str: str, new_str: str) -> Transition:
        full, rel = self._path(path)
        if not full.is_file():
            raise _Refused(f"no file {rel!r}")
        text = full.read_text(encoding="utf-8", errors="surrogateescape")
        count = text.count(old_str) if old_str else 0
        if count != 1:
            why = "old_str is empty" if not old_str else (
                f"old_str occurs {count} times in {rel}; it must occur exactly once (add surrounding lines)")
            raise _Refused(why)
        at = text.index(old_str)
        self._write(full, rel, text[:at] + new_str + text[at + len(old_str):])
        line = text[:at].count("\n") + 1
        new_lines = (text[:at] + new_str).splitlines()
        lo, hi = max(0, line - 4), min(len(new_lines), line + new_str.count("\n") + 3)
        snippet = "\n".join(f"{n + 1:6}\t{new_lines[n]}" for n in range(lo, hi))
        return self._transition(f"Edited {rel}; lines {lo + 1}-{hi} now read:\n{snippet}", {"tool": "str_replace"})

    def _tool_undo_edit(self, path: str) -> Transition:
        full, rel = self._path(path)
        if not self._history.get(rel):
            raise _Refused(f"no edit of {rel!r} to undo")
        previous = self._history[rel].pop()
        if previous is None:
            full.unlink(missing_ok=True)
        else:
            full.write_text(previous, encoding="utf-8", errors="surrogateescape")
        return self._transition(f"Undid the last edit of {rel}.", {"tool": "undo_edit"})

    def _tests_info(self, run: harness.TestRun, grade: harness.Grade) -> dict[str, Any]:
        statuses = {t: harness.status_of(t, run.statuses) or "MISSING"
                    for t in [*self._instance["FAIL_TO_PASS"], *self._instance["PASS_TO_PASS"]]}
        self._score = float(grade.fraction)
        return {"tests": statuses, "fraction": grade.fraction, "f2p_fraction": grade.f2p_fraction,
                "resolved": grade.resolved, "exit_code": run.exit_code, "timed_out": run.result.timed_out}

    def _tool_run_tests(self, paths: list[str] | None = None) -> Transition:
        assert self._sandbox is not None
        files = harness.test_files(self._instance)
        targets = [self._path(p.split("::")[0])[1] + (p[len(p.split("::")[0]):]) for p in paths] if paths else files
        run = harness.run_tests(self._sandbox, targets, python=self.python,
                                test_cmd=self._instance.get("test_cmd") or harness.DEFAULT_TEST_CMD,
                                limits=self.test_limits)
        grade = harness.grade(self._instance, run)
        summary = run.problem or f"{sum(s == 'PASSED' for s in run.statuses.values())} passed, " \
                                 f"{sum(s in ('FAILED', 'ERROR') for s in run.statuses.values())} failed"
        text = f"{run.output.rstrip()}\n[tests: {summary}]"
        return self._transition(text, {"tool": "run_tests", **self._tests_info(run, grade)})

    def _tool_submit(self) -> Transition:
        assert self._workspace is not None
        patch = self._workspace.diff()
        grade_dir = self._workspace.grading_copy(harness.test_files(self._instance), self._instance["test_patch"])
        box = self._make_sandbox(grade_dir, self.test_limits)
        run = harness.run_tests(box, harness.test_files(self._instance), python=self.python,
                                test_cmd=self._instance.get("test_cmd") or harness.DEFAULT_TEST_CMD)
        grade = harness.grade(self._instance, run)
        family = {"tool": "submit", **self._tests_info(run, grade), "grade": grade.as_dict(), "patch": patch}
        verdict = "RESOLVED" if grade.resolved else "NOT RESOLVED"
        detail = f" ({grade.problem})" if grade.problem else ""
        text = (f"Submitted. Grading: {verdict}{detail}: {sum(grade.fail_to_pass.values())}/{len(grade.fail_to_pass)} "
                f"failing tests fixed, {sum(grade.pass_to_pass.values())}/{len(grade.pass_to_pass)} other tests pass.")
        return self._transition(text, family, reward=1.0 if grade.resolved else 0.0, terminated=True,
                                won=grade.resolved)

    # ----------------------------------------------------------------- expert
    def _expert(self) -> str:
        """Next step towards the gold patch: one edit per differing region, then ``submit``."""
        assert self._workspace is not None
        if self._target is None:
            files = harness.patch_files(self._instance["patch"])
            self._target = self._workspace.apply_to_copy(self._instance["patch"], files)
        for rel, want in self._target.items():
            full = self._workspace.repo / rel
            have = full.read_text(encoding="utf-8", errors="surrogateescape") if full.is_file() else None
            if have == want:
                continue
            if want is None:
                return tools.call_json("bash", command=f"rm -f -- '{rel}'")
            if have is None:
                return tools.call_json("create_file", path=rel, content=want)
            return _edit(rel, have, want)
        return "submit"


class _Refused(Exception):
    """A tool call that cannot be carried out (answered as an invalid action)."""


def _edit(rel: str, have: str, want: str) -> str:
    """A ``str_replace`` call for the first differing region (grown until ``old_str`` is unique)."""
    a, b = have.splitlines(True), want.splitlines(True)
    op = next(o for o in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes() if o[0] != "equal")
    _, i1, i2, j1, j2 = op
    for context in range(0, max(len(a), 1) + 1):
        lo, hi = max(0, i1 - context), min(len(a), i2 + context)
        old = "".join(a[lo:hi])
        if old and have.count(old) == 1:
            new = "".join(a[lo:i1]) + "".join(b[j1:j2]) + "".join(a[i2:hi])
            return tools.call_json("str_replace", path=rel, old_str=old, new_str=new)
    return tools.call_json("create_file", path=rel, content=want)
