"""The pytest runner started inside the sandbox for every test run (``python -I -c <this source> ...``).

agentgym never imports this module: :func:`agentgym.envs.swegym.engine.run_tests` passes its source
to the sandboxed interpreter with ``-c``, so it needs no path inside the sandbox and nothing the agent
wrote can stand in for it. What each step defends against:

* ``-I`` (isolated mode): neither the current directory nor a script directory is on ``sys.path``, and
  ``PYTHON*`` variables and the user site are ignored, so an agent's ``pytest.py``, ``sitecustomize.py``
  or ``PYTHONPATH`` is not what runs when pytest starts.
* pytest and its installed plugins are imported from the interpreter's own paths before the repository
  is put on ``sys.path``; the repository root (first, as ``python -m pytest`` puts the current
  directory) and the instance's ``PYTHONPATH`` entries are added when pytest loads the initial
  conftests, after its plugins.
* the result is the runner's own record of pytest's reports (``pytest_runtest_logreport``), written
  as one JSON document through an inherited file descriptor. Its file has no path inside the sandbox
  (the host opened it, unlinked, outside); the host wrote a nonce into it, which the runner read and
  erased before any repository code ran, and the report must carry it back. Code under test that
  writes to the descriptor garbles the document, which the host treats as a broken run.
* a tamper check: pytest's and pluggy's reporting functions are taken before any repository code runs
  and compared after the session; a replaced one, or an implementation of a reporting hook defined in
  a file the agent changed (or in code with no source file), is listed in the report's ``tampered``
  and voids the run.
* it ends with ``os._exit``: exit handlers that code under test registered never run after the report.

Residual risk, as with SWE-bench's log parsing: code under test runs in the same interpreter as
pytest, so a purpose-built attack that reads the nonce out of the runner's memory can still forge a
report. Grading (:mod:`.grading`) removes the easy routes to the interpreter before this runs.

Command line: ``CONFIG PYTEST_ARGS...``, ``CONFIG`` a JSON object: ``fd`` (the report descriptor),
``repo`` (the tree's path inside), ``paths`` (extra ``sys.path`` entries, relative to it),
``keep_failures`` (include failure texts) and ``changed`` (the files the agent changed, relative).
"""

import json
import os
import sys

#: Reporting machinery the tamper check watches: (module, dotted attribute).
WATCHED = (
    ("_pytest.runner", "call_and_report"),
    ("_pytest.runner", "runtestprotocol"),
    ("_pytest.runner", "call_runtest_hook"),
    ("_pytest.runner", "CallInfo.from_call"),
    ("_pytest.runner", "pytest_runtest_makereport"),
    ("_pytest.reports", "TestReport.from_item_and_call"),
    ("_pytest.reports", "TestReport.__init__"),
    ("_pytest.reports", "BaseReport.passed"),
    ("_pytest.reports", "BaseReport.failed"),
    ("_pytest.reports", "BaseReport.skipped"),
    ("_pytest.python", "pytest_pyfunc_call"),
    ("_pytest.python", "Function.runtest"),
    ("_pytest.skipping", "pytest_runtest_makereport"),
    ("_pytest.skipping", "pytest_runtest_call"),
    ("_pytest.main", "pytest_runtestloop"),
    ("_pytest.outcomes", "fail"),
    ("_pytest.outcomes", "skip"),
    ("_pytest.outcomes", "xfail"),
    ("pluggy._callers", "_multicall"),
    ("pluggy._hooks", "HookCaller.__call__"),
    ("pluggy._hooks", "_HookCaller.__call__"),
    ("pluggy._manager", "PluginManager._hookexec"),
)
#: Hooks whose implementations decide or carry a test's outcome.
REPORTING_HOOKS = (
    "pytest_runtest_makereport",
    "pytest_runtest_logreport",
    "pytest_runtest_protocol",
    "pytest_runtest_call",
    "pytest_pyfunc_call",
    "pytest_report_teststatus",
    "pytest_runtestloop",
    "pytest_collectreport",
)
ORDER = ("PASSED", "XFAIL", "SKIPPED", "FAILED", "ERROR")


def _lookup(module, dotted):
    obj = sys.modules.get(module)
    for name in dotted.split("."):
        obj = None if obj is None else obj.__dict__.get(name) if hasattr(obj, "__dict__") else None
    return obj


def main(argv):
    config, args = json.loads(argv[0]), argv[1:]
    fd, repo, keep_failures = int(config["fd"]), config["repo"], bool(config["keep_failures"])
    changed = {os.path.join(repo, path) for path in config["changed"]}
    nonce = os.pread(fd, 128, 0).decode("ascii", "replace").strip()
    os.ftruncate(fd, 0)
    pwrite, dumps, exit_now = os.pwrite, json.dumps, os._exit  # kept before code under test can patch them

    import _pytest.main  # noqa: E401,F401
    import pluggy  # noqa: F401
    import pytest

    watched = {(m, a): _lookup(m, a) for m, a in WATCHED if _lookup(m, a) is not None}

    class Recorder:
        def __init__(self):
            self.tests, self.failures, self.collect_errors, self.config = {}, {}, {}, None

        @pytest.hookimpl(tryfirst=True)
        def pytest_load_initial_conftests(self, early_config, parser, args):
            paths = [repo] + [os.path.join(repo, p) for p in config["paths"]]
            sys.path[:0] = [p for p in paths if p not in sys.path]

        def pytest_configure(self, config):
            self.config = config

        def pytest_collectreport(self, report):
            if report.failed:
                self.collect_errors[report.nodeid] = str(report.longreprtext)[-2000:]

        def pytest_runtest_logreport(self, report):
            if report.when == "call":
                status = (
                    "XFAIL"
                    if report.skipped and hasattr(report, "wasxfail")
                    else "SKIPPED"
                    if report.skipped
                    else "PASSED"
                    if report.passed
                    else "FAILED"
                )
            elif report.failed:
                status = "ERROR"
            elif report.skipped:
                status = "XFAIL" if hasattr(report, "wasxfail") else "SKIPPED"
            else:
                return
            old = self.tests.get(report.nodeid)
            self.tests[report.nodeid] = status if old is None else max(old, status, key=ORDER.index)
            if keep_failures and report.failed:
                self.failures[report.nodeid] = str(report.longreprtext)[-4000:]

        def foreign_hooks(self):
            """Reporting-hook implementations defined in a file the agent changed, or in no file."""
            found = []
            if self.config is None:
                return found
            for name in REPORTING_HOOKS:
                caller = getattr(self.config.hook, name, None)
                for impl in caller.get_hookimpls() if caller is not None else ():
                    if impl.plugin is self:
                        continue
                    code = getattr(impl.function, "__code__", None)
                    where = code.co_filename if code is not None else "<no code>"
                    if not os.path.isabs(where) or os.path.abspath(where) in changed:
                        found.append(f"{name} implemented in {where}")
            return found

    recorder = Recorder()
    code = int(pytest.main(args, plugins=[recorder]))
    tampered = [f"{m}.{a} was replaced" for (m, a), obj in watched.items() if _lookup(m, a) is not obj]
    tampered += recorder.foreign_hooks()
    for stream in (sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed or replaced stream must not stop the report
            pass
    report = {
        "nonce": nonce,
        "exit_code": code,
        "tests": recorder.tests,
        "failures": recorder.failures,
        "collect_errors": recorder.collect_errors,
        "tampered": tampered,
    }
    pwrite(fd, dumps(report).encode("utf-8", "replace"), 0)
    exit_now(code)


if __name__ == "__main__":
    main(sys.argv[1:])
