"""SWE-Gym-style repository bug fixing, every command in a bubblewrap sandbox.

Env card
--------
* **Id**: ``agentgym/SWEGym-v0``
* **Engine**: a real Python repository checked out per episode, real pytest runs, all agent commands
  and test runs inside :mod:`agentgym.sandbox` (bubblewrap: no network, read-only system, the working
  copy at ``/tmp/repo`` as the only writable tree, an unprivileged uid, CPU/memory/process/file-size
  and wall-clock limits). Needs the Debian package ``bubblewrap``.
* **Tasks** (:mod:`.tasks`; SWE-bench schema, see :mod:`.engine`):

  - *embedded* (default): bugs synthesized SWE-smith-style in three pinned PyPI projects (toolz 1.2.0,
    cachetools 8.0.2, boltons 26.2.0), one AST mutation in one function, kept only when real sandboxed
    runs show at least one test going pass -> fail and others still passing. Built once by
    ``python -m agentgym.envs.swegym.tasks`` (fetches the sdists of :mod:`.sdists` with pip). Splits
    ``train``/``valid``/``test`` by project module: test bugs sit in modules no training bug touched
    (seed 0 on Python 3.11 / pytest 9.2: 287 tasks, 163 / 70 / 54, from 484 candidates).
  - *users' instances*: ``instances=PATH`` (a SWE-Gym / SWE-bench JSONL file), ``repos_dir=DIR`` holding
    one git clone per repo at ``DIR/<owner>__<name>`` (SWE-bench's naming; offline: clone them
    beforehand, e.g. ``git clone https://github.com/<owner>/<name> DIR/<owner>__<name>``), and
    ``python=INTERPRETER``, the interpreter whose environment has the repo's test dependencies
    (default: the current one). All instances form the selected split; task ids are the instance ids.
    Each episode checks out ``base_commit`` into a fresh folder; the clone is only read.
* **Observation**: at reset, the issue text (``problem_statement``), where the repository is, and the
  tool syntax; then each tool's result (texts in :mod:`.observations`). Observations longer than ``max_observation_chars`` (default
  10,000) keep their first and last halves around the marker
  ``[... N characters truncated (observation limit 10000) ...]``.
* **Action**: one tool call per step (:mod:`.tools`; the file tools run host-side in :mod:`.editor`): ``bash``, ``view``, ``search``, ``create_file``,
  ``str_replace``, ``undo_edit``, ``run_tests``, ``submit``; plain text (``view src/a.py 10 40``) or a
  one-line JSON tool call (``{"name": "view", "arguments": {"path": "src/a.py"}}``). JSON schemas in
  OpenAI function form are in ``info["tools"]``.
* **run_tests** runs the instance's test files (or the given ones) on the working tree as it is (the
  hidden ``test_patch`` of a SWE-bench instance is *not* applied, so its new tests are not shown);
  ``info["swegym"]["tests"]`` then holds the statuses of the FAIL_TO_PASS / PASS_TO_PASS ids found.
* **Reward**: 1.0 at ``submit`` when the instance is resolved, else 0.0. Grading (:mod:`.grading`)
  applies the agent's diff of the allowed files to a *pristine* checkout of ``base_commit`` (test files,
  ``setup.cfg``/``pyproject.toml``/``tox.ini`` restored), applies the test patch, and runs FAIL_TO_PASS /
  PASS_TO_PASS under :mod:`.runner` (``python -I``, pytest imported before the repo is on ``sys.path``,
  the report through a private nonce-checked channel, a tamper check). The submission is *void*
  (reward 0, ``info["swegym"]["voided"]`` says why) for a changed ``conftest.py``/``pytest.ini``,
  ``sitecustomize.py``/``usercustomize.py``/``.pth``, a new top-level module shadowing the stdlib or an
  installed package, a symlink leaving the tree, or a run that tampered with pytest.
  ``info["score"]`` is the fraction of graded tests passing at the last run (0 before any).
* **Limits** (per episode): each command's processes together are capped at ``memory_limit`` (PSS
  watchdog of :mod:`agentgym.sandbox`; cgroups are not used, see there) plus the per-process rlimits;
  the working tree may grow ``disk_quota`` beyond the checkout, and a step that exceeds it voids the
  episode and removes the tree. FIFOs, sockets and devices are never opened by the host.
* **Determinism**: ``run_tests`` observations omit pytest's wall time and object addresses (kept in
  ``info["swegym"]["pytest_seconds"]``/``duration``), so equal episodes give equal observations.
* **Termination**: ``submit``. **Truncation**: ``max_turns`` (default 30) reached.
* **info**: the standard keys; ``goal`` is the problem statement, ``admissible_actions`` None (open
  action space), ``expert_action`` the next step of the expert (:mod:`.expert`: the gold patch as
  ``str_replace`` / ``create_file`` calls, then ``submit``; a costly key, computed only when ``info_keys``
  asks for it, which the default ``None`` does), ``ground_truth`` None, ``anchor_obs`` a key of the state:
  ``"SWEGym <instance id> tree <git tree hash of the working tree>"`` (bytecode excluded; ``... void``
  after a void), so the same tree gives the same anchor whatever the tool or turn that led there.
  ``info["tools"]`` (a declared extra key): the tool schemas. Under ``info["swegym"]``: ``instance_id``, ``repo``, ``tool``
  (the tool run), ``exit_code``, ``timed_out`` (the command hit its time limit and was killed with its
  process tree), ``truncated`` (the observation was cut), and after ``run_tests``/``submit``:
  ``tests`` ({test id: status} for FAIL_TO_PASS and PASS_TO_PASS), ``fraction`` (of those passing),
  ``f2p_fraction``, ``resolved``; at ``submit`` also ``grade`` (SWE-bench verdict) and ``patch``
  (the agent's diff).
* **Bad actions**: malformed tool calls, unknown tools, paths outside the repository, a non-unique
  ``old_str`` are answered with what was wrong and ``action_valid=False``. A command that fails or
  times out is a valid action; its result says so. A sandbox that cannot run raises
  :class:`agentgym.sandbox.SandboxError` (an ``EngineFault``); ``reset()`` works afterwards.

Version history: v0, initial release. Grader 2 (issue 17: pristine checkout, isolated runner) and
generator 2 (the task set validated under that runner: 287 tasks); both are in ``engine_version``, so
results under the old grader or task set keep their own protocol rows. Issue 18 (no change to rewards or
observations): ``expert_action`` is a costly info key; the task set is built by ``python -m ...swegym.tasks``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

from agentgym.core import TextEnv, Transition
from agentgym.envs.swegym import engine, grading, tools
from agentgym.envs.swegym.editor import MAX_FILE_BYTES, Editor, Refused
from agentgym.envs.swegym.expert import Expert
from agentgym.envs.swegym.observations import prompt, run_summary, tests_info, truncate, verdict
from agentgym.envs.swegym.workspace import Workspace
from agentgym.error import DependencyNotInstalled, InvalidArgumentError
from agentgym.sandbox import Limits, Sandbox, bwrap_path, interpreter_paths, tree_usage
from agentgym.tasks import Task, TaskSplit

#: Default observation limit (characters).
MAX_OBSERVATION_CHARS = 10_000
#: Limits of one agent command (per process; ``total_memory_bytes`` and ``disk_bytes`` are set per env).
COMMAND_LIMITS = Limits(wall_seconds=60, cpu_seconds=60, memory_bytes=2 << 30, processes=64)
__all__ = ["COMMAND_LIMITS", "MAX_FILE_BYTES", "MAX_OBSERVATION_CHARS", "SWEGymEnv", "truncate"]


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
        memory_limit: bytes of memory all processes of one command (or test run) may use together.
        disk_quota: bytes the working tree (and the grading tree) may grow beyond the checkout's size;
            exceeding it voids the episode.
        render_mode: ``None`` or ``"ansi"``.
    """

    family = "SWEGym"
    #: The expert diffs the tree against the gold patch (a git checkout per episode): only when asked for.
    costly_info_keys = frozenset({"expert_action"})
    #: ``info["tools"]``: the tool schemas, for agents that call tools by JSON.
    extra_info_keys = ("tools",)

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
        memory_limit: int = 2 << 30,
        disk_quota: int = 256 << 20,
        render_mode: str | None = None,
        info_keys: Collection[str] | None = None,
    ):
        from agentgym.envs.swegym import tasks as task_set  # lazily: `python -m ...tasks` imports it too

        if bwrap_path() is None:
            raise DependencyNotInstalled(
                "agentgym/SWEGym-v0 runs every command in bubblewrap: `apt-get install bubblewrap` "
                "(or `bash scripts/system-deps.sh`)"
            )
        for name, value in (("command_timeout", command_timeout), ("test_timeout", test_timeout)):
            if not isinstance(value, (int, float)) or value <= 0:
                raise InvalidArgumentError(f"{name} must be a positive number of seconds, got {value!r}")
        for name, value in (("memory_limit", memory_limit), ("disk_quota", disk_quota)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1 << 20:
                raise InvalidArgumentError(f"{name} must be a number of bytes >= 1 MiB, got {value!r}")
        if not isinstance(max_observation_chars, int) or max_observation_chars < 100:
            raise InvalidArgumentError(f"max_observation_chars must be an int >= 100, got {max_observation_chars!r}")
        self.python = str(python or sys.executable)
        if not os.access(self.python, os.X_OK):
            raise InvalidArgumentError(f"python={self.python!r} is not an executable interpreter")
        records, self.repos_dir = task_set.load_split(
            split, instances=instances, repos_dir=repos_dir, task_seed=task_seed
        )
        self.engine_version = f"swegym-v0 (generator {task_set.GENERATOR_VERSION}, grader 2, bubblewrap sandbox)"
        self._instances = {record["instance_id"]: record for record in records}
        tasks = TaskSplit(split, [Task(r["instance_id"], r) for r in records], self.engine_version)
        super().__init__(
            tasks,
            max_turns=max_turns,
            max_action_length=max_action_length,
            render_mode=render_mode,
            info_keys=info_keys,
        )
        self.command_limits = dataclasses.replace(
            COMMAND_LIMITS, wall_seconds=float(command_timeout), total_memory_bytes=memory_limit
        )
        self.test_limits = dataclasses.replace(
            engine.TEST_LIMITS, wall_seconds=float(test_timeout), total_memory_bytes=memory_limit
        )
        self.disk_quota = disk_quota
        self.max_observation_chars = max_observation_chars
        self._readonly = interpreter_paths(self.python)
        self._workspace: Workspace | None = None
        self._sandbox: Sandbox | None = None
        self._instance: dict[str, Any] = {}
        self._editor: Editor | None = None
        self._expert: Expert | None = None
        self._score = 0.0
        self._quota = 0  # bytes the working tree may hold in this episode
        self._call: tuple[str, str, dict[str, Any]] | None = None  # the last action _clean_action parsed

    # ----------------------------------------------------------------- episode
    def _start(self, task: Task) -> tuple[Transition, str | None]:
        self._close_engine()
        self._instance = self._instances[task.task_id]
        clone = self.repos_dir / engine.repo_folder(self._instance["repo"])
        self._workspace = Workspace(clone, self._instance["base_commit"])
        self._quota = tree_usage(self._workspace.repo) + self.disk_quota
        self._sandbox = self._make_sandbox(self._workspace.repo, self.command_limits)
        self._editor = Editor(self._workspace.repo, self._sandbox.mount_point)
        self._score = 0.0
        self._expert = Expert(self._workspace, self._instance["patch"], Editor.read)
        observation = prompt(self._instance, self._sandbox.mount_point)
        return self._transition(observation, {"tool": None}), self._instance["problem_statement"]

    def _make_sandbox(self, tree: Path, limits: Limits) -> Sandbox:
        """A sandbox on ``tree`` with the instance's test environment, the interpreter on PATH and the
        episode's disk quota."""
        env = {str(k): str(v) for k, v in (self._instance.get("test_env") or {}).items()}
        env["PATH"] = f"{os.path.dirname(self.python)}:/usr/local/bin:/usr/bin:/bin"
        limits = dataclasses.replace(limits, disk_bytes=self._quota)
        return Sandbox(tree, limits=limits, readonly=self._readonly, env=env)

    def _close_engine(self) -> None:
        if self._workspace is not None:
            self._workspace.close()
        self._workspace, self._sandbox, self._editor = None, None, None

    def _transition(
        self,
        text: str,
        family: dict[str, Any],
        *,
        valid: bool = True,
        reward: float = 0.0,
        terminated: bool = False,
        won: bool = False,
    ) -> Transition:
        assert self._workspace is not None
        if family.get("voided") is None and (
            family.get("exceeded") == "disk" or tree_usage(self._workspace.repo, stop_above=self._quota) > self._quota
        ):  # before git hashes the tree
            return self._void(f"the working tree grew past its disk quota ({self._quota >> 20} MiB)", family)
        observation, cut = truncate(text, self.max_observation_chars)
        info = {
            "instance_id": self._instance["instance_id"],
            "repo": self._instance["repo"],
            "tool": None,
            "exit_code": None,
            "timed_out": False,
            "exceeded": None,
            "truncated": cut,
            "voided": None,
            **family,
        }
        return Transition(
            observation,
            reward=reward,
            terminated=terminated,
            action_valid=valid,
            won=won,
            score=self._score,
            expert_action=None if terminated else self._expert,
            anchor_obs=self._anchor(info["voided"]),
            family_info=info,
            extra_info={"tools": tools.TOOLS},
        )

    def _anchor(self, voided: str | None) -> str:
        """GiGPO's state key: the instance and the git tree hash of the working tree (see the env card)."""
        assert self._workspace is not None
        state = "void" if voided else f"tree {self._workspace.tree_id()}"
        return f"SWEGym {self._instance['instance_id']} {state}"

    def _void(self, reason: str, family: dict[str, Any]) -> Transition:
        """End the episode with reward 0: the tree broke a limit (its files are removed at once)."""
        assert self._workspace is not None
        shutil.rmtree(self._workspace.repo, ignore_errors=True)
        self._workspace.repo.mkdir()
        self._score = 0.0
        return self._transition(
            f"The episode is void: {reason}. Reward 0.", {**family, "voided": reason}, reward=0.0, terminated=True
        )

    def _clean_action(self, action: str) -> tuple[str | None, str | None]:
        """A tool call's syntax and argument values (NUL bytes, surrogates, lengths, types), checked
        before any tool runs; the parsed call is kept for :meth:`_advance`."""
        try:
            name, args = tools.parse(action)
        except tools.ToolSyntaxError as exc:
            return None, f"{exc}.\n\n{tools.SYNTAX}\n"
        problem = tools.check_arguments(name, args)
        if problem is not None:
            return None, problem
        self._call = (action, name, args)
        return action, None

    def _advance(self, action: str) -> Transition:
        if self._call is None or self._call[0] != action:
            clean, problem = self._clean_action(action)
            if problem is not None:
                return self._transition(f"Invalid action: {problem}", {}, valid=False)
        assert self._call is not None and self._workspace is not None
        _, name, args = self._call
        try:
            transition = getattr(self, f"_tool_{name}")(**args)
        except Refused as exc:
            return self._transition(f"Invalid action: {exc}", {"tool": name}, valid=False)
        except (OSError, UnicodeError) as exc:  # the tree is the agent's: any host-side file call may fail
            what = getattr(exc, "strerror", None) or str(exc)
            return self._transition(f"Invalid action: {name} failed: {what}", {"tool": name}, valid=False)
        return transition

    # ----------------------------------------------------------------- tools
    def _path(self, path: str) -> tuple[Path, str]:
        assert self._editor is not None
        return self._editor.path(path)

    def _sandboxed(self, argv: str | list[str], tool: str, **kwargs: Any) -> tuple[str, dict[str, Any]]:
        """Run a command in the episode's sandbox: its output and the family info it reports."""
        assert self._sandbox is not None
        result = self._sandbox.run(argv, **kwargs)
        return result.output, {
            "tool": tool,
            "exit_code": result.returncode,
            "timed_out": result.timed_out,
            "exceeded": result.exceeded,
            "describe": result.describe(),
        }

    def _tool_bash(self, command: str) -> Transition:
        output, family = self._sandboxed(command, "bash")
        text = (output if output.strip() else "(no output)\n").rstrip("\n") + "\n" + family.pop("describe")
        return self._transition(text, family)

    def _tool_view(self, path: str, start_line: int | None = None, end_line: int | None = None) -> Transition:
        full, rel = self._path(path)
        if full.is_dir():
            assert self._sandbox is not None
            output, family = self._sandboxed(
                ["find", ".", "-maxdepth", "2", "-not", "-path", "*/__pycache__*", "-not", "-path", "*/.*"],
                "view",
                cwd=f"{self._sandbox.mount_point}/{rel}",
            )
            del family["describe"]
            return self._transition(f"Files in {rel} (2 levels):\n" + "\n".join(sorted(output.splitlines())), family)
        assert self._editor is not None
        return self._transition(self._editor.view_file(full, rel, start_line, end_line), {"tool": "view"})

    def _tool_search(self, pattern: str, path: str = ".") -> Transition:
        _, rel = self._path(path)
        output, family = self._sandboxed(["grep", "-rnIE", "--exclude-dir=__pycache__", "--", pattern, rel], "search")
        del family["describe"]
        if family["exit_code"] == 1:
            text = f"No matches for {pattern!r} in {rel}."
        else:
            text = output if family["exit_code"] == 0 else f"grep failed: {output}"
        return self._transition(text, family)

    def _tool_create_file(self, path: str, content: str) -> Transition:
        assert self._editor is not None
        return self._transition(self._editor.create_file(path, content), {"tool": "create_file"})

    def _tool_str_replace(self, path: str, old_str: str, new_str: str) -> Transition:
        assert self._editor is not None
        return self._transition(self._editor.str_replace(path, old_str, new_str), {"tool": "str_replace"})

    def _tool_undo_edit(self, path: str) -> Transition:
        assert self._editor is not None
        return self._transition(self._editor.undo_edit(path), {"tool": "undo_edit"})

    def _tool_run_tests(self, paths: list[str] | None = None) -> Transition:
        assert self._sandbox is not None and self._workspace is not None
        files = engine.test_files(self._instance)
        targets = [self._path(p.split("::")[0])[1] + (p[len(p.split("::")[0]) :]) for p in paths] if paths else files
        changes, _ = self._workspace.changes()
        run = engine.run_tests(
            self._sandbox,
            targets,
            python=self.python,
            test_cmd=self._instance.get("test_cmd") or engine.DEFAULT_TEST_CMD,
            limits=self.test_limits,
            changed=[p for p, (st, _) in changes.items() if st != "D"],
        )
        grade = engine.grade(self._instance, run)
        self._score = float(grade.fraction)
        family = {"tool": "run_tests", **tests_info(self._instance, run, grade)}
        return self._transition(f"{family.pop('output').rstrip()}\n[tests: {run_summary(run)}]", family)

    def _tool_submit(self) -> Transition:
        assert self._workspace is not None
        submission = grading.grade_submission(
            self._workspace,
            self._instance,
            python=self.python,
            sandbox=lambda tree: self._make_sandbox(tree, self.test_limits),
        )
        grade, run = submission.grade, submission.run
        family = {
            "tool": "submit",
            "patch": submission.patch,
            **submission.review.as_dict(),
            "voided": submission.voided,
        }
        if run is not None and grade is not None:
            self._score = float(grade.fraction)
            family.update(tests_info(self._instance, run, grade), grade=grade.as_dict())
            family.pop("output")
        resolved = grade is not None and grade.resolved and submission.voided is None
        if submission.voided is not None:
            self._score = 0.0
        family["resolved"] = resolved
        return self._transition(
            verdict(grade, submission.voided, resolved),
            family,
            reward=1.0 if resolved else 0.0,
            terminated=True,
            won=resolved,
        )
