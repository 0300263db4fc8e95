"""One ScienceWorld simulator process (a JVM reached through py4j), with a watchdog and a clean end.

:class:`Simulator` talks to the simulator's ``PythonInterface`` directly instead of going through
``scienceworld.ScienceWorldEnv``: it starts the JVM with the flags that make the engine reproducible,
makes the few calls a step needs, and leaves the costly listing of valid actions to the caller.

* **Reproducibility**: the JVM runs with ``-XX:+UnlockExperimentalVMOptions -XX:hashCode=2``. Under
  default flags the engine's HashSet orders follow identity hash codes, which every call advances, so
  observations, valid actions and even trajectories depend on what the JVM did before
  (``specs/engine-perf.md`` §2.4). With constant identity hashes a replay is identical whatever the
  call history.
* **Speed**: TCP_NODELAY on both ends of the py4j socket (otherwise every reply over 8 KiB waits
  ~40 ms for a delayed ACK), and the valid-action list comes back as one joined string instead of one
  round trip per element.
* **Faults**: every call runs under a deadline; a watchdog thread kills the JVM when a call overruns.
  A dead JVM (killed, crashed or timed out) raises :class:`SimulatorDied`; the env turns it into
  :class:`agentgym.error.EngineFault`.
* **Life**: :meth:`close` shuts the gateway down, closes the JVM's stdin (py4j's die-on-exit) and
  reaps the process; a ``weakref.finalize`` does the same at interpreter exit or garbage collection.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from agentgym.error import DependencyNotInstalled

#: Always passed to the JVM: constant identity hashes make the engine independent of call history.
REPRODUCIBLE_JAVA_OPTIONS: tuple[str, ...] = ("-XX:+UnlockExperimentalVMOptions", "-XX:hashCode=2")
#: Default extra JVM options: a bounded heap (~0.3-0.5 GB RSS per simulator instead of ~1.2 GB).
DEFAULT_JAVA_OPTIONS: tuple[str, ...] = ("-XX:+UseSerialGC", "-Xms64m", "-Xmx768m")

_SEPARATOR = "\x1e"  # ASCII record separator: never part of an action
_T = TypeVar("_T")


class SimulatorDied(RuntimeError):
    """The JVM is gone (killed, crashed, or stopped by the watchdog after a timeout)."""


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGKILL)
        except OSError:
            pass


def _shutdown(gateway: Any, proc: subprocess.Popen, stop: threading.Event) -> None:
    """End the JVM and reap it; safe to call more than once, and at interpreter exit."""
    stop.set()
    if proc.poll() is None:
        try:
            gateway.shutdown()
        except Exception:  # the JVM may already be dead: killing it below is enough
            pass
        try:
            if proc.stdin is not None:
                proc.stdin.close()  # py4j die-on-exit: the JVM exits when its stdin closes
        except OSError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _kill(proc)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not time out in practice
        pass
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass


class Simulator:
    """A started ScienceWorld JVM.

    Args:
        jar_path: the simulator jar (default: the one in the ``scienceworld`` wheel).
        java_options: extra JVM options, after :data:`REPRODUCIBLE_JAVA_OPTIONS`.
        timeout: seconds one call may take before the JVM is killed.
    """

    def __init__(self, jar_path: str | None = None, java_options: Sequence[str] = DEFAULT_JAVA_OPTIONS,
                 timeout: float = 60.0):
        from py4j.java_gateway import GatewayParameters, JavaGateway, launch_gateway
        from scienceworld.constants import BASEPATH, JAR_PATH

        self.timeout = float(timeout)
        options = [*REPRODUCIBLE_JAVA_OPTIONS, *java_options]
        try:
            port, proc = launch_gateway(classpath=jar_path or JAR_PATH, javaopts=options, die_on_exit=True,
                                        cwd=BASEPATH, return_proc=True)
        except FileNotFoundError as exc:
            raise DependencyNotInstalled(
                "agentgym/ScienceWorld-v0 needs Java 11 or newer on PATH "
                "(Debian: `apt-get install openjdk-17-jre-headless`, or `make venv`)"
            ) from exc
        self.proc: subprocess.Popen = proc
        self._deadline: float | None = None
        self._timed_out = False
        self._stop = threading.Event()
        self.gateway = JavaGateway(gateway_parameters=GatewayParameters(auto_field=True, port=port),
                                   java_process=proc)
        self._finalizer = weakref.finalize(self, _shutdown, self.gateway, proc, self._stop)
        threading.Thread(target=self._watch, args=(weakref.ref(self),), name=f"scienceworld-watchdog-{proc.pid}",
                         daemon=True).start()
        self.server = self._call(lambda: self.gateway.jvm.scienceworld.runtime.pythonapi.PythonInterface())
        self._join = self.gateway.jvm.java.lang.String.join
        self._call(self._set_no_delay)

    # ------------------------------------------------------------------ life
    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        """Stop the JVM and reap it (idempotent)."""
        self._finalizer()

    @staticmethod
    def _watch(ref: weakref.ref) -> None:
        """Kill the JVM when a call overruns its deadline (checked every 50 ms)."""
        while True:
            sim = ref()
            if sim is None or sim._stop.is_set() or not sim.alive:
                return
            deadline, stop = sim._deadline, sim._stop
            if deadline is not None and time.monotonic() > deadline:
                sim._timed_out = True
                _kill(sim.proc)
                return
            del sim
            if stop.wait(0.05):
                return

    def _call(self, fn: Callable[[], _T], timeout: float | None = None) -> _T:
        from py4j.protocol import Py4JError, Py4JJavaError

        if not self.alive:
            raise SimulatorDied(f"the ScienceWorld JVM (pid {self.pid}) is not running")
        limit = timeout or self.timeout
        self._deadline = time.monotonic() + limit
        try:
            return fn()
        except Py4JJavaError:
            raise  # an exception inside a live simulator, not a dead one
        except Py4JError as exc:  # the connection broke: the JVM died, or the watchdog killed it
            _kill(self.proc)  # a JVM we can no longer talk to is of no use
            try:
                code = self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover
                code = None
            why = f"timed out after {limit:g} s" if self._timed_out else f"died (exit code {code})"
            raise SimulatorDied(f"the ScienceWorld JVM (pid {self.pid}) {why}") from exc
        finally:
            self._deadline = None

    def _set_no_delay(self) -> None:
        """TCP_NODELAY on both ends of every open py4j connection (py4j issue #516)."""
        jvm = self.gateway.jvm
        field = jvm.java.lang.Class.forName("py4j.GatewayServer").getDeclaredField("connections")
        field.setAccessible(True)
        connections = field.get(self.gateway.java_gateway_server)
        for index in range(connections.size()):
            connections.get(index).getSocket().setTcpNoDelay(True)
        for connection in list(self.gateway._gateway_client.deque):
            connection.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # ------------------------------------------------------------------ engine calls
    def load(self, task: str, variation: int, simplifications: str, gold: bool) -> None:
        """Build the world of one task variation (``gold`` also plans the gold action sequence)."""
        self._call(lambda: self.server.load(task, variation, simplifications, gold), timeout=10 * self.timeout)

    def step(self, action: str) -> tuple[str, int, bool, int]:
        """Apply an action: (observation, score in -100..100, completed, moves)."""
        def call() -> tuple[str, int, bool, int]:
            observation = self.server.step(action)
            return (observation, int(round(100 * self.server.getScore())), bool(self.server.getCompleted()),
                    int(self.server.getNumMoves()))
        return self._call(call)

    def valid_actions(self) -> list[str]:
        """The engine's valid action-object combinations (one transfer), deduplicated, in engine order."""
        joined = self._call(lambda: self._join(_SEPARATOR, self.server.getValidActionObjectCombinations()))
        return list(dict.fromkeys(action for action in joined.split(_SEPARATOR) if action))

    def task_description(self) -> str:
        return self._call(lambda: self.server.getTaskDescription())

    def gold_actions(self) -> list[str]:
        """The gold action sequence (needs ``load(..., gold=True)``)."""
        return list(self._call(lambda: self._join(_SEPARATOR, self.server.getGoldActionSequence())).split(_SEPARATOR))

    def call(self, name: str, *args: Any) -> Any:
        """Any other ``PythonInterface`` method, under the same deadline."""
        return self._call(lambda: getattr(self.server, name)(*args))

