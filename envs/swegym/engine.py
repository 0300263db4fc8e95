"""SWE-bench-style instances, test runs in the sandbox, and grading.

An *instance* follows SWE-bench's schema (``instance_id, repo, base_commit, patch, test_patch,
problem_statement, FAIL_TO_PASS, PASS_TO_PASS`` plus the optional ``hints_text, created_at, version,
environment_setup_commit``). agentgym reads two optional extra fields: ``test_cmd`` (default
``python -m pytest -rA``; ``python`` is replaced by the env's interpreter) and ``test_env`` (extra
environment variables, e.g. ``{"PYTHONPATH": "src"}``). Real SWE-Gym / SWE-bench JSONL files and the
embedded synthesized tasks go through this one module.

Test runs go through :class:`agentgym.sandbox.Sandbox` and :mod:`.runner` (an isolated interpreter
whose report reaches the host through a private, nonce-checked channel, never through a file the
tests can reach or stdout, which code under test can print). Grading follows SWE-bench: a
FAIL_TO_PASS test passes on PASSED or XFAIL; a PASS_TO_PASS test on PASSED, XFAIL or SKIPPED;
*resolved* when every one passes and the run is valid (a genuine report exists, tests ran, and the
exit code agrees with the statuses). Which of the agent's changes a graded run sees is decided by
:mod:`.grading`.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import os
import re
import secrets
import shlex
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agentgym.error import TaskFileError
from agentgym.sandbox import Limits, Sandbox, SandboxResult

#: Required SWE-bench fields.
REQUIRED = (
    "instance_id",
    "repo",
    "base_commit",
    "patch",
    "test_patch",
    "problem_statement",
    "FAIL_TO_PASS",
    "PASS_TO_PASS",
)
DEFAULT_TEST_CMD = "python -m pytest -rA"
#: The runner's source, passed to the sandboxed interpreter with ``-c``.
RUNNER_SOURCE = (Path(__file__).parent / "runner.py").read_text(encoding="utf-8")
#: Largest test report read back (bytes).
REPORT_BYTES = 64 << 20
#: Test statuses, best to worst (SWE-bench's names).
STATUSES = ("PASSED", "XFAIL", "SKIPPED", "FAILED", "ERROR")
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
            raise TaskFileError(f"{where}: expected a JSON object, got {_json_type(record)}")
        missing = [key for key in REQUIRED if key not in record]
        if missing:
            raise TaskFileError(f"{where}: missing the SWE-bench fields {missing}")
        record = _checked(f"{where} (instance {str(record.get('instance_id'))[:80]!r})", dict(record))
        if record["instance_id"] in seen:
            raise TaskFileError(f"{where}: duplicate instance_id {record['instance_id']!r}")
        seen.add(record["instance_id"])
        instances.append(record)
    if not instances:
        raise TaskFileError(f"{path}: no instances")
    return instances


def _json_type(value: Any) -> str:
    names = {
        type(None): "null",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }
    return names.get(type(value), type(value).__name__)


def _checked(where: str, record: dict[str, Any]) -> dict[str, Any]:
    """One instance with every field it is used by checked; errors name the field and what it must be."""

    def bad(field: str, expected: str) -> TaskFileError:
        value = record.get(field)
        shown = f"{_json_type(value)} {value!r:.60}" if isinstance(value, (str, int, float)) else _json_type(value)
        return TaskFileError(f"{where}: field {field!r} must be {expected}, got {shown}")

    for field in ("instance_id", "problem_statement", "patch"):
        if not isinstance(record[field], str) or not record[field].strip():
            raise bad(field, "a non-empty string")
    if not isinstance(record["test_patch"], str):
        raise bad("test_patch", "a string (a unified diff, or empty)")
    if not isinstance(record["repo"], str) or not re.fullmatch(r"[\w.-]+/[\w.-]+", record["repo"]):
        raise bad("repo", "a string like 'owner/name'")
    if not isinstance(record["base_commit"], str) or not re.fullmatch(r"[0-9a-fA-F]{7,40}", record["base_commit"]):
        raise bad("base_commit", "a git commit hash (7 to 40 hex digits)")
    for field in ("FAIL_TO_PASS", "PASS_TO_PASS"):
        value = record[field]
        if isinstance(value, str):  # SWE-bench's HF export stores these lists as JSON strings
            try:
                value = json.loads(value)
            except ValueError:
                raise bad(field, "a list of test ids (or a JSON string of one)") from None
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise bad(field, "a list of test ids (non-empty strings)")
        record[field] = value
    if not record["FAIL_TO_PASS"]:
        raise TaskFileError(f"{where}: field 'FAIL_TO_PASS' is empty, so the instance cannot be graded")
    if record.get("test_cmd") is not None:
        if not isinstance(record["test_cmd"], str):
            raise bad("test_cmd", "a pytest command line")
        try:
            pytest_arguments(record["test_cmd"])
        except ValueError as exc:
            raise TaskFileError(f"{where}: field 'test_cmd' {exc}") from None
    env = record.get("test_env")
    if env is not None and not (
        isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
    ):
        raise bad("test_env", "an object of string environment variables")
    return record


def pytest_arguments(test_cmd: str) -> list[str]:
    """pytest's arguments in ``test_cmd`` (``pytest ARGS`` or ``python -m pytest ARGS``); grading
    always runs pytest itself, under :mod:`.runner`, so any other command is refused."""
    try:
        argv = shlex.split(test_cmd)
    except ValueError as exc:
        raise ValueError(f"cannot be split into arguments ({exc})") from None
    if argv[:1] in (["pytest"], ["py.test"]):
        return argv[1:]
    if len(argv) >= 3 and os.path.basename(argv[0]).startswith("python") and argv[1:3] == ["-m", "pytest"]:
        return argv[3:]
    raise ValueError(f"must be a pytest command ('pytest ARGS' or 'python -m pytest ARGS'), got {test_cmd!r:.80}")


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


# ----------------------------------------------------------------------------- test runs
@dataclasses.dataclass
class TestRun:
    """One sandboxed pytest run: per-test statuses, whether the run is trustworthy, output.

    ``problem`` says why a run is not valid (killed, no report, no test ran, exit code and statuses
    disagree); ``tampered`` is set when the run shows that code in the tree interfered with the runner
    (a forged or garbled report, replaced reporting functions, foreign reporting hooks): grading voids
    such a run.
    """

    statuses: dict[str, str]
    exit_code: int
    valid: bool
    problem: str | None
    result: SandboxResult
    failures: dict[str, str] = dataclasses.field(default_factory=dict)
    tampered: str | None = None

    @property
    def output(self) -> str:
        return self.result.output


def _read_report(channel: Any, nonce: str) -> tuple[dict[str, Any] | None, str | None]:
    """The runner's JSON report from its channel: ``(report, None)``, ``(None, None)`` when there is
    none, or ``(None, why)`` when it is not one the runner wrote."""
    channel.seek(0)
    data = channel.read(REPORT_BYTES + 1)
    if not data:
        return None, None
    if len(data) > REPORT_BYTES:
        return None, f"the test report is larger than {REPORT_BYTES} bytes"
    try:
        report = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, "the test report is garbled (something else wrote to the runner's channel)"
    if not isinstance(report, dict) or not hmac.compare_digest(str(report.get("nonce")), nonce):
        return None, "the test report does not carry the runner's nonce (forged)"
    tests, failures = report.get("tests"), report.get("failures")
    if (
        not isinstance(tests, dict)
        or not all(isinstance(s, str) and s in STATUSES for s in tests.values())
        or not isinstance(failures, dict)
        or not isinstance(report.get("exit_code"), int)
    ):
        return None, "the test report is malformed"
    return report, None


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
    changed: Sequence[str] = (),
) -> TestRun:
    """Run ``files`` (paths or node ids relative to the work dir) with pytest in the sandbox.

    pytest runs under :mod:`.runner` (isolated interpreter, report through a private channel, tamper
    check); ``changed`` lists the files the agent changed, whose reporting hooks count as tampering.
    The relative entries of ``PYTHONPATH`` (from ``env``, else the sandbox's environment) are put on
    ``sys.path`` by the runner, since ``-I`` ignores the variable.
    """
    env = dict(env or {})
    pythonpath = env.get("PYTHONPATH", sandbox.env.get("PYTHONPATH", ""))
    extra_paths = [p for p in pythonpath.split(":") if p and not os.path.isabs(p)]
    nonce = secrets.token_hex(16)
    with tempfile.TemporaryFile() as channel:  # unlinked at once: no path on the host, none inside
        channel.write(nonce.encode() + b"\n")
        channel.flush()
        config = {
            "fd": channel.fileno(),
            "repo": sandbox.mount_point,
            "paths": extra_paths,
            "keep_failures": keep_failures,
            "changed": list(changed),
        }
        argv = [
            python,
            "-I",
            "-c",
            RUNNER_SOURCE,
            json.dumps(config),
            *pytest_arguments(test_cmd),
            "-p",
            "no:cacheprovider",
            f"--rootdir={sandbox.mount_point}",
            "--continue-on-collection-errors",
            "--tb=short",
            *extra_args,
            "--",
            *files,
        ]
        result = sandbox.run(argv, limits=limits, env=env, pass_fds=[channel.fileno()])
        report, forged = _read_report(channel, nonce)
    code = result.returncode
    tampered = forged or (
        f"the test run tampered with pytest: {'; '.join(report['tampered'])[:500]}"
        if report and report.get("tampered")
        else None
    )
    if report is not None and not tampered and report["exit_code"] != code:
        tampered = f"the runner reported exit code {report['exit_code']} but the process exited with {code}"
    statuses = dict(report["tests"]) if report and not tampered else {}
    problem = tampered
    if problem is None and result.killed:
        problem = f"the test run was killed: {result.killed}"
    elif problem is None and report is None:
        problem = f"pytest wrote no report (exit code {code})"
    elif problem is None and not statuses:
        problem = "no test ran"
    elif problem is None:
        failed = any(s in ("FAILED", "ERROR") for s in statuses.values())
        if code not in (0, 1):
            problem = f"pytest exited with code {code} (interrupted or a usage error)"
        elif code == 1 and not failed and not report.get("collect_errors"):
            problem = "pytest exited with code 1 but reported no failed test"
        elif code == 0 and failed:
            problem = "pytest exited with code 0 but reported failed tests"
    failures = {k: str(v) for k, v in report["failures"].items()} if report and not tampered else {}
    return TestRun(statuses, code, problem is None, problem, result, failures, tampered)


#: pytest's "in 0.12s" in its summary lines, and object addresses: they differ between equal runs.
_PYTEST_TIME = re.compile(r"^(=+ .*?) in (\d+(?:\.\d+)?)s(?: \(\d+:\d\d:\d\d\))? (=+)$", re.MULTILINE)
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")


def stable_test_output(text: str) -> tuple[str, float | None]:
    """pytest output without what changes between identical runs (its wall time, object addresses);
    also returns the wall time pytest reported (``None`` if none)."""
    seconds = [float(m.group(2)) for m in _PYTEST_TIME.finditer(text)]
    text = _ADDRESS.sub("0x?", _PYTEST_TIME.sub(r"\1 \3", text))
    return text, seconds[-1] if seconds else None


def status_of(test_id: str, statuses: Mapping[str, str]) -> str | None:
    """A test's status; truncated parametrised ids (SWE-bench logs) are prefix-matched."""
    if test_id in statuses:
        return statuses[test_id]
    if "[" in test_id:
        matches = [s for node, s in statuses.items() if node.startswith(test_id)]
        if matches:
            return max(matches, key=STATUSES.index)
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
        return (
            (sum(self.fail_to_pass.values()) + sum(self.pass_to_pass.values())) / max(total, 1) if self.valid else 0.0
        )

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
        return {
            "resolved": self.resolved,
            "status": self.status,
            "valid": self.valid,
            "problem": self.problem,
            "fraction": self.fraction,
            "f2p_fraction": self.f2p_fraction,
            "p2p_fraction": self.p2p_fraction,
            "FAIL_TO_PASS": dict(self.fail_to_pass),
            "PASS_TO_PASS": dict(self.pass_to_pass),
        }


def grade(instance: Mapping[str, Any], run: TestRun) -> Grade:
    f2p = {t: status_of(t, run.statuses) in ("PASSED", "XFAIL") for t in instance["FAIL_TO_PASS"]}
    p2p = {t: status_of(t, run.statuses) in ("PASSED", "XFAIL", "SKIPPED") for t in instance["PASS_TO_PASS"]}
    return Grade(f2p, p2p, run.valid, run.problem)
