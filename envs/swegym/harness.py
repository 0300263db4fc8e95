"""SWE-bench-style instances, test runs in the sandbox, and grading.

An *instance* follows SWE-bench's schema (``instance_id, repo, base_commit, patch, test_patch,
problem_statement, FAIL_TO_PASS, PASS_TO_PASS`` plus the optional ``hints_text, created_at, version,
environment_setup_commit``). agentgym reads two optional extra fields: ``test_cmd`` (default
``python -m pytest -rA``; ``python`` is replaced by the env's interpreter) and ``test_env`` (extra
environment variables, e.g. ``{"PYTHONPATH": "src"}``). Real SWE-Gym / SWE-bench JSONL files and the
embedded synthesized tasks go through this one module.

Test runs go through :class:`agentgym.sandbox.Sandbox`; statuses come from pytest's JUnit XML report,
written to a folder outside the agent-writable tree (never from stdout, which code under test can
print). Grading follows SWE-bench: a FAIL_TO_PASS test passes on PASSED or XFAIL; a PASS_TO_PASS test
on PASSED, XFAIL or SKIPPED; *resolved* when every one passes and the run is valid (a report exists,
tests ran, and the exit code agrees with the statuses).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agentgym.error import TaskFileError
from agentgym.sandbox import Limits, Sandbox, SandboxResult

#: Required SWE-bench fields.
REQUIRED = ("instance_id", "repo", "base_commit", "patch", "test_patch", "problem_statement",
            "FAIL_TO_PASS", "PASS_TO_PASS")
DEFAULT_TEST_CMD = "python -m pytest -rA"
#: Where the JUnit report is written inside the sandbox (a bind of a host folder outside the work dir).
REPORT_DIR = "/tmp/agentgym-report"
#: Limits of one test run.
TEST_LIMITS = Limits(wall_seconds=180, cpu_seconds=180, memory_bytes=4 << 30, processes=128)


def load_instances(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a JSONL (or JSON list) file of SWE-bench / SWE-Gym instances; errors name the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaskFileError(f"cannot read the instances file {str(path)!r}: {exc}") from exc
    if text.lstrip().startswith("["):
        try:
            records = list(enumerate(json.loads(text), 1))
        except json.JSONDecodeError as exc:
            raise TaskFileError(f"{path}: not valid JSON: {exc}") from exc
    else:
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append((number, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise TaskFileError(f"{path}, line {number}: not valid JSON: {exc}") from exc
    instances, seen = [], set()
    for number, record in records:
        where = f"{path}, record {number}"
        if not isinstance(record, dict):
            raise TaskFileError(f"{where}: expected a JSON object, got {type(record).__name__}")
        missing = [key for key in REQUIRED if key not in record]
        if missing:
            raise TaskFileError(f"{where}: missing the SWE-bench fields {missing}")
        record = dict(record)
        for key in ("FAIL_TO_PASS", "PASS_TO_PASS"):
            value = record[key]
            if isinstance(value, str):  # SWE-bench's HF export stores these lists as JSON strings
                try:
                    value = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise TaskFileError(f"{where}: {key} is not a JSON list: {exc}") from exc
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise TaskFileError(f"{where}: {key} must be a list of test ids")
            record[key] = value
        if not record["FAIL_TO_PASS"]:
            raise TaskFileError(f"{where}: FAIL_TO_PASS is empty, so the instance cannot be graded")
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", str(record["repo"])):
            raise TaskFileError(f"{where}: repo must look like 'owner/name', got {record['repo']!r}")
        if record["instance_id"] in seen:
            raise TaskFileError(f"{where}: duplicate instance_id {record['instance_id']!r}")
        seen.add(record["instance_id"])
        instances.append(record)
    if not instances:
        raise TaskFileError(f"{path}: no instances")
    return instances


def repo_folder(repo: str) -> str:
    """SWE-bench's clone naming: ``owner/name`` -> ``owner__name``."""
    return repo.replace("/", "__")


def patch_files(patch: str) -> list[str]:
    """Files a unified diff touches (new paths; deleted files by their old path)."""
    files = []
    for line in patch.splitlines():
        match = re.match(r"diff --git a/(\S+) b/(\S+)", line)
        if match and match.group(2) not in files:
            files.append(match.group(2))
    return files


def test_files(instance: Mapping[str, Any]) -> list[str]:
    """The test files a grading run executes: those of the test patch and of every graded test id."""
    files = list(patch_files(instance["test_patch"]))
    for test_id in [*instance["FAIL_TO_PASS"], *instance["PASS_TO_PASS"]]:
        name = test_id.split("::")[0]
        if name.endswith(".py") and name not in files:
            files.append(name)
    return files


# ----------------------------------------------------------------------------- reports
def _mangled_file(path: str) -> str:
    return re.sub(r"\.py$", "", path.replace("/", "."))


def _cases(path: str | os.PathLike, files: Sequence[str]) -> list[tuple[str, ElementTree.Element]] | None:
    """``(pytest node id, <testcase>)`` pairs of a JUnit XML report (``None`` when missing or unreadable).

    pytest writes ``classname`` as the node id's path with ``/`` -> ``.`` and ``.py`` dropped, then the
    class names; the file is found as the longest of ``files`` whose mangled name prefixes it.
    """
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    mangled = sorted(((_mangled_file(f), f) for f in files), key=lambda pair: -len(pair[0]))
    cases = []
    for case in root.iter("testcase"):
        classname, name = case.get("classname", ""), case.get("name", "")
        file, rest = None, classname
        for prefix, original in mangled:
            if classname == prefix or classname.startswith(prefix + "."):
                file, rest = original, classname[len(prefix) + 1:]
                break
        if file is None:
            file, rest = (case.get("file") or classname.replace(".", "/") + ".py"), ""
        cases.append(("::".join([file, *(rest.split(".") if rest else []), name]), case))
    return cases


def parse_junit(path: str | os.PathLike, files: Sequence[str]) -> dict[str, str] | None:
    """``{pytest node id: status}`` from a JUnit XML report (``None`` when missing or unreadable)."""
    cases = _cases(path, files)
    if cases is None:
        return None
    statuses: dict[str, str] = {}
    for node, case in cases:
        status = "PASSED"
        for child in case:
            if child.tag == "failure":
                status = "FAILED"
            elif child.tag == "error":
                status = "ERROR"
            elif child.tag == "skipped":
                status = "XFAIL" if child.get("type") == "pytest.xfail" else "SKIPPED"
        statuses[node] = _worse(statuses[node], status) if node in statuses else status
    return statuses


def _worse(a: str, b: str) -> str:
    order = ["PASSED", "XFAIL", "SKIPPED", "FAILED", "ERROR"]
    return max(a, b, key=order.index)


def failure_texts(path: str | os.PathLike, files: Sequence[str]) -> dict[str, str]:
    """``{node id: failure message and traceback}`` for the failed tests of a JUnit report."""
    out = {}
    for node, case in _cases(path, files) or []:
        for child in case:
            if child.tag in ("failure", "error"):
                out[node] = (child.get("message") or "") + "\n" + (child.text or "")
    return out


@dataclasses.dataclass
class TestRun:
    """One sandboxed pytest run: per-test statuses from JUnit, whether the run is trustworthy, output."""

    statuses: dict[str, str]
    exit_code: int
    valid: bool
    problem: str | None
    result: SandboxResult
    failures: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def output(self) -> str:
        return self.result.output


def run_tests(
    sandbox: Sandbox,
    files: Sequence[str],
    *,
    python: str,
    test_cmd: str = DEFAULT_TEST_CMD,
    env: Mapping[str, str] | None = None,
    limits: Limits = TEST_LIMITS,
    extra_args: Sequence[str] = (),
    keep_failures: bool = False,
) -> TestRun:
    """Run ``files`` (paths or node ids relative to the work dir) with pytest in the sandbox."""
    argv = shlex.split(test_cmd)
    if argv and argv[0] in ("python", "python3"):
        argv[0] = python
    report_host = tempfile.mkdtemp(prefix="agentgym-report-")
    try:
        argv += ["-p", "no:cacheprovider", f"--junitxml={REPORT_DIR}/junit.xml", "-o", "junit_family=xunit1",
                 f"--rootdir={sandbox.mount_point}", "--continue-on-collection-errors", "--tb=short",
                 *extra_args, "--", *files]
        result = sandbox.run(argv, limits=limits, env=env, writable={REPORT_DIR: report_host})
        report = os.path.join(report_host, "junit.xml")
        file_names = sorted({f.split("::")[0] for f in files})
        statuses = parse_junit(report, file_names)
        failures = failure_texts(report, file_names) if keep_failures else {}
    finally:
        shutil.rmtree(report_host, ignore_errors=True)
    code = result.returncode
    problem = None
    if result.killed:
        problem = f"the test run was killed: {result.killed}"
    elif statuses is None:
        problem = f"pytest wrote no report (exit code {code})"
    elif not statuses:
        problem = "no test ran"
    else:
        failed = any(s in ("FAILED", "ERROR") for s in statuses.values())
        if code not in (0, 1):
            problem = f"pytest exited with code {code} (interrupted or a usage error)"
        elif code == 1 and not failed:
            problem = "pytest exited with code 1 but reported no failed test"
        elif code == 0 and failed:
            problem = "pytest exited with code 0 but reported failed tests"
    return TestRun(statuses or {}, code, problem is None, problem, result, failures)


def status_of(test_id: str, statuses: Mapping[str, str]) -> str | None:
    """A test's status; truncated parametrised ids (SWE-bench logs) are prefix-matched."""
    if test_id in statuses:
        return statuses[test_id]
    if "[" in test_id:
        matches = [s for node, s in statuses.items() if node.startswith(test_id)]
        if matches:
            return max(matches, key=["PASSED", "XFAIL", "SKIPPED", "FAILED", "ERROR"].index)
    return None


@dataclasses.dataclass
class Grade:
    """SWE-bench's verdict on one run: per-test results, pass fractions, resolved."""

    fail_to_pass: dict[str, bool]
    pass_to_pass: dict[str, bool]
    valid: bool
    problem: str | None

    @property
    def f2p_fraction(self) -> float:
        return sum(self.fail_to_pass.values()) / max(len(self.fail_to_pass), 1)

    @property
    def p2p_fraction(self) -> float:
        return sum(self.pass_to_pass.values()) / len(self.pass_to_pass) if self.pass_to_pass else 1.0

    @property
    def fraction(self) -> float:
        """Fraction of all graded tests (FAIL_TO_PASS and PASS_TO_PASS) that pass."""
        total = len(self.fail_to_pass) + len(self.pass_to_pass)
        return (sum(self.fail_to_pass.values()) + sum(self.pass_to_pass.values())) / max(total, 1) if self.valid else 0.0

    @property
    def resolved(self) -> bool:
        return self.valid and all(self.fail_to_pass.values()) and all(self.pass_to_pass.values())

    @property
    def status(self) -> str:
        """SWE-bench's resolution: ``FULL``, ``PARTIAL`` or ``NO``."""
        if self.resolved:
            return "FULL"
        if self.valid and all(self.pass_to_pass.values()) and 0 < self.f2p_fraction < 1:
            return "PARTIAL"
        return "NO"

    def as_dict(self) -> dict[str, Any]:
        return {"resolved": self.resolved, "status": self.status, "valid": self.valid, "problem": self.problem,
                "fraction": self.fraction, "f2p_fraction": self.f2p_fraction, "p2p_fraction": self.p2p_fraction,
                "FAIL_TO_PASS": dict(self.fail_to_pass), "PASS_TO_PASS": dict(self.pass_to_pass)}


def grade(instance: Mapping[str, Any], run: TestRun) -> Grade:
    f2p = {t: status_of(t, run.statuses) in ("PASSED", "XFAIL") for t in instance["FAIL_TO_PASS"]}
    p2p = {t: status_of(t, run.statuses) in ("PASSED", "XFAIL", "SKIPPED") for t in instance["PASS_TO_PASS"]}
    return Grade(f2p, p2p, run.valid, run.problem)
