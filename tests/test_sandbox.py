"""The bubblewrap sandbox (agentgym.sandbox): each escape attempt must be contained and reported."""

from __future__ import annotations

import os
import socket
import sys
import time

import pytest

from agentgym.error import EngineFault
from agentgym.sandbox import Limits, Sandbox, SandboxError, SandboxKilled, available
from agentgym.testing import _children

pytestmark = pytest.mark.skipif(not available(), reason="bubblewrap is not installed (bash scripts/system-deps.sh)")

PY = sys.executable


@pytest.fixture
def box(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    before = _children()
    yield Sandbox(work, limits=Limits(wall_seconds=20, cpu_seconds=10, memory_bytes=1 << 30, processes=32,
                                      file_bytes=8 << 20))
    assert _children() - before == set(), "a sandboxed command left a child process behind"


def test_runs_in_the_work_dir_and_writes_there(box):
    result = box.run("pwd; echo hello > note.txt; cat note.txt")
    assert result.ok and result.output.split() == ["/tmp/repo", "hello"]
    assert (box.workdir / "note.txt").read_text() == "hello\n"
    argv = box.run([PY, "-c", "import os; print(os.getuid() != 0)"])
    assert argv.output.strip() == "True"


def test_writing_outside_the_work_dir_fails(box):
    outside = f"/var/tmp/agentgym-sandbox-test-{os.getpid()}"  # writable on the host, read-only inside
    result = box.run(f"touch /etc/agentgym-x; touch {outside}; echo done")
    assert result.output.count("Read-only file system") == 2
    assert not os.path.exists("/etc/agentgym-x") and not os.path.exists(outside)


def test_reading_root_fails(box):
    result = box.run("ls -A /root; cat /root/.bashrc /etc/shadow")
    assert result.returncode != 0
    assert ".bashrc" not in result.output.split()
    assert "No such file" in result.output or "Permission denied" in result.output


def test_network_is_unreachable(box):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        code = (f"import socket\nfor host in ('127.0.0.1', 'pypi.org'):\n"
                f"    try:\n        socket.create_connection((host, {port} if host[0] == '1' else 443), timeout=3)\n"
                f"        print('CONNECTED', host)\n    except OSError as exc:\n        print('BLOCKED', host, exc)\n")
        result = box.run([PY, "-c", code])
    finally:
        server.close()
    assert "CONNECTED" not in result.output
    assert result.output.count("BLOCKED") == 2


def test_fork_bomb_is_stopped(box):
    start = time.monotonic()
    result = box.run(f"{PY} -c 'import os\nwhile True:\n    os.fork()'", timeout=15)
    assert time.monotonic() - start < 15
    assert "Resource temporarily unavailable" in result.output or "BlockingIOError" in result.output
    assert box.run("echo alive").output.strip() == "alive"  # the next command runs normally


def test_memory_bomb_is_stopped(box):
    result = box.run([PY, "-c", "x = bytearray(4 << 30)"])
    assert result.returncode != 0 and "MemoryError" in result.output


def test_infinite_loop_hits_the_cpu_limit(box):
    result = box.run([PY, "-c", "while True: pass"], limits=Limits(cpu_seconds=1, wall_seconds=20))
    assert result.killed is not None and "CPU" in result.killed
    assert result.duration < 10
    with pytest.raises(SandboxKilled, match="CPU") as caught:
        result.raise_if_killed("test run")
    assert isinstance(caught.value, EngineFault)


def test_wall_clock_timeout_kills_the_process_tree(box):
    result = box.run("sleep 1000 & sleep 1000", timeout=1)
    assert result.timed_out and "timed out" in result.describe()
    assert result.duration < 5


def test_ten_gigabyte_file_is_stopped(box):
    result = box.run("head -c 10G /dev/zero > big; echo rc=$?")
    assert "File size limit exceeded" in result.output or "File too large" in result.output
    assert (box.workdir / "big").stat().st_size <= 8 << 20
    tmp = box.run("head -c 1G /dev/zero > /tmp/big; echo rc=$?")  # the private /tmp is small too
    assert "rc=0" not in tmp.output


def test_no_process_survives_the_command(box):
    marker = box.workdir / "late.txt"
    result = box.run("(sleep 2; echo late > late.txt) & echo started")
    assert result.ok and result.output.strip() == "started" and result.duration < 2
    time.sleep(3)
    assert not marker.exists(), "a background process outlived its command"


def test_huge_output_is_capped(box):
    result = box.run("yes | head -c 5000000", limits=Limits(output_bytes=10_000))
    assert result.output_truncated and result.output_bytes == 5_000_000
    assert len(result.output) < 11_000 and "bytes of output cut" in result.output


def test_missing_work_dir_is_an_engine_fault(tmp_path):
    work = tmp_path / "gone"
    work.mkdir()
    box = Sandbox(work)
    work.rmdir()
    with pytest.raises(SandboxError, match="disappeared"):
        box.run("true")
