"""Shared test setup: one CPU thread per process (parallelism comes from pytest-xdist and env workers)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_terminal_summary(terminalreporter):
    """Print the fuzzing pass's counts per env id (``tests/test_fuzz.py`` records them as ``fuzz``)."""
    lines = [
        value
        for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", [])
        for name, value in getattr(report, "user_properties", ())
        if name == "fuzz"
    ]
    if lines:
        terminalreporter.section("fuzzing pass (issue 17)")
        for line in sorted(lines):
            terminalreporter.write_line(line)
