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
    yield Sandbox(
        work, limits=Limits(wall_seconds=20, cpu_seconds=10, memory_bytes=1 << 30, processes=32, file_bytes=8 << 20)
    )
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
        code = (
            f"import socket\nfor host in ('127.0.0.1', 'pypi.org'):\n"
            f"    try:\n        socket.create_connection((host, {port} if host[0] == '1' else 443), timeout=3)\n"
            f"        print('CONNECTED', host)\n    except OSError as exc:\n        print('BLOCKED', host, exc)\n"
        )
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


# ----------------------------------------------------------------------------- aggregate limits
_CHILDREN = (
    "import os, time\\n"
    "for _ in range(4):\\n"
    "    if os.fork() == 0:\\n"
    "        block = bytearray(300 << 20)\\n"
    "        for i in range(0, len(block), 4096): block[i] = 1\\n"  # touch every page: real memory
    "        print('child holds 300 MiB', flush=True); time.sleep(30); os._exit(0)\\n"
    "time.sleep(30)\\n"
)


def test_forked_children_over_the_aggregate_memory_cap_are_killed(tmp_path):
    """4 children x 300 MiB pass a per-process 1 GiB address-space limit but not a 700 MiB total."""
    before = _children()
    box = Sandbox(tmp_path, limits=Limits(wall_seconds=25, memory_bytes=1 << 30, total_memory_bytes=700 << 20))
    start = time.monotonic()
    result = box.run([PY, "-c", _CHILDREN.encode().decode("unicode_escape")])
    assert result.exceeded == "memory" and "memory limit exceeded" in result.killed, result
    assert not result.timed_out and time.monotonic() - start < 20
    assert "memory limit exceeded" in result.describe()
    assert box.run("echo alive").output.strip() == "alive"
    assert _children() - before == set()
    # without the aggregate cap the same command is only stopped by the wall clock
    free = box.run(
        [
            PY,
            "-c",
            "import os\nfor _ in range(2):\n    if os.fork() == 0:\n"
            "        b = bytearray(200 << 20)\n        os._exit(0)\nos.wait(); os.wait(); print('ok')",
        ]
    )
    assert free.ok and free.exceeded is None


def test_a_big_write_is_stopped_by_the_disk_quota(tmp_path):
    box = Sandbox(tmp_path, limits=Limits(wall_seconds=30, file_bytes=64 << 20, disk_bytes=100 << 20))
    start = time.monotonic()
    result = box.run("for i in $(seq 1 40); do head -c 60M /dev/zero > f$i; done; echo finished")
    assert result.exceeded == "disk" and "disk quota exceeded" in result.killed
    assert "finished" not in result.output and time.monotonic() - start < 20
    from agentgym.sandbox import tree_usage

    assert tree_usage(tmp_path) < 400 << 20  # stopped within a poll or two of the quota
    # many empty files count too (each entry is at least one block)
    (tmp_path / "keep").mkdir()
    for f in tmp_path.glob("f*"):
        f.unlink()
    small = box.run("mkdir many && cd many && seq 1 30000 | xargs touch; echo done", timeout=30)
    assert small.exceeded == "disk", small
    # a write that finishes between two polls is still reported (checked once after the command)
    quick = Sandbox(tmp_path / "keep", limits=Limits(disk_bytes=1 << 20))
    assert quick.run("head -c 2M /dev/zero > x").exceeded == "disk"


def test_pass_fds_gives_a_channel_without_a_path(tmp_path):
    import tempfile

    box = Sandbox(tmp_path / "w" if (tmp_path / "w").mkdir() is None else None)
    with tempfile.TemporaryFile() as channel:  # unlinked: no path anywhere, let alone inside
        fd = channel.fileno()
        result = box.run([PY, "-c", f"import os; os.write({fd}, b'report'); print(os.getuid())"], pass_fds=[fd])
        assert result.ok, result.output
        channel.seek(0)
        assert channel.read() == b"report"
    assert box.run([PY, "-c", f"import os; os.write({fd}, b'x')"]).returncode != 0  # not passed: not open


def test_devices_are_bound_only_when_named(tmp_path):
    from agentgym.error import InvalidArgumentError

    # a host device node that bwrap's minimal /dev lacks (the NVIDIA nodes play this part on a GPU machine)
    device = next((d for d in ("/dev/loop-control", "/dev/kmsg", "/dev/vcs", "/dev/fuse") if os.path.exists(d)), None)
    if device is None:
        pytest.skip("no host device node outside bwrap's minimal /dev to bind")
    probe = f"test -e {device} && echo present || echo absent; test -e /dev/null && echo null"
    assert Sandbox(tmp_path).run(probe).output.split() == ["absent", "null"]
    assert Sandbox(tmp_path, devices=[device]).run(probe).output.split() == ["present", "null"]
    with pytest.raises(InvalidArgumentError, match="under /dev/"):
        Sandbox(tmp_path, devices=["/etc/passwd"])
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        Sandbox(tmp_path, devices=["/dev/agentgym-no-such-device"])
