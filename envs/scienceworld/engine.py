"""One ScienceWorld simulator process (a JVM reached through py4j), with a watchdog and a clean end.

:class:`Simulator` (the fast path, the default) talks to the simulator's ``PythonInterface`` directly
instead of going through ``scienceworld.ScienceWorldEnv``: it starts the JVM with the flags that make
the engine reproducible and small, makes the few calls a step needs, and leaves the costly listing of
valid actions to the caller. :class:`StockSimulator` (``exact_stock=True``) runs the unmodified
``scienceworld.ScienceWorldEnv`` (its own JVM launch, ``load``, ``reset`` and ``step``, which lists the
valid actions at every step) under the same watchdog, so any result of the fast path can be checked.

* **Reproducibility**: the JVM runs with ``-XX:+UnlockExperimentalVMOptions -XX:hashCode=2``. Under
  default flags the engine's HashSet orders follow identity hash codes, which every call advances, so
  observations, valid actions and even trajectories depend on what the JVM did before
  (``specs/engine-perf.md`` §2.4). With constant identity hashes a replay is identical whatever the
  call history.
* **Speed**: TCP_NODELAY on both ends of the py4j socket (otherwise every reply over 8 KiB waits
  ~40 ms for a delayed ACK), the valid-action list comes back as one joined string instead of one
  round trip per element, a step makes 6 calls (plus an unsent listing when the state before was not
  listed) instead of stock's 8 plus one round trip per listed action, and an episode starts with
  ``load`` + "look around" (stock's ``reset`` rebuilds the world ``load`` just built).
* **Identity with stock whether or not the listing is asked for**: listing the valid actions draws from the simulator's
  global random number generator (``InputParser.chooseUniqueReferents`` breaks ties between object
  names with ``scala.util.Random.nextInt``), which random events (genetics, wandering animals, bees,
  plant growth) draw from too. Stock lists at every step, so before each step whose state was not
  listed, :meth:`Simulator.step` lists it in the JVM without sending the list
  (:meth:`Simulator._draw_as_listing`): the same draws, and most of a listing's cost. A state is
  listed at most once (the listing is kept until the next step): a second listing would draw again.
* **Size**: a serial-GC JVM with a small heap, code cache and compiler pool
  (:data:`DEFAULT_JAVA_OPTIONS`): ~150 MB RSS instead of the ~1.2 GB a default JVM grows to.
* **Faults**: every call runs under a deadline; a watchdog thread kills the JVM when a call overruns.
  A dead JVM (killed, crashed or timed out) raises :class:`SimulatorDied`; the env turns it into
  :class:`agentgym.error.EngineFault`.
* **Life**: :meth:`close` shuts the gateway down, closes the JVM's stdin (py4j's die-on-exit) and
  reaps the process; a ``weakref.finalize`` does the same at interpreter exit or garbage collection.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from agentgym.error import DependencyNotInstalled

#: Passed to the JVM unless ``reproducible=False``: constant identity hashes make the engine independent of
#: its call history.
REPRODUCIBLE_JAVA_OPTIONS: tuple[str, ...] = ("-XX:+UnlockExperimentalVMOptions", "-XX:hashCode=2")
#: Default extra JVM options of the fast path: serial GC, a bounded heap that gives memory back, a
#: small code cache and two JIT threads (~150 MB RSS per simulator instead of ~1.2 GB).
DEFAULT_JAVA_OPTIONS: tuple[str, ...] = (
    "-XX:+UseSerialGC",
    "-Xms32m",
    "-Xmx512m",
    "-XX:MaxHeapFreeRatio=40",
    "-XX:MinHeapFreeRatio=10",
    "-XX:ReservedCodeCacheSize=64m",
    "-XX:CICompilerCount=2",
)

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
    # From now on py4j must not talk to this JVM: its proxies' finalizers (run by the garbage collector
    # inside any allocation) would try to connect and log a traceback, and on Python 3.11 formatting a
    # traceback there breaks an ast.parse in progress ("AST constructor recursion depth mismatch").
    client = getattr(gateway, "_gateway_client", None)
    if client is not None:
        client.is_connected = False
    if proc.poll() is None:
        try:
            gateway.close(keep_callback_server=True)  # our sockets only; closing stdin below ends the JVM
        except Exception:
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


#: A step's answer: (observation, score in -100..100, completed, moves, valid actions or None when
#: they were not listed, the state's anchor: its look-around text and the inventory).
Reply = tuple[str, int, bool, int, "list[str] | None", str]

_ENVIRON_LOCK = threading.Lock()


@contextlib.contextmanager
def _java_tool_options(options: Sequence[str]) -> Iterator[None]:
    """Add JVM options through ``JAVA_TOOL_OPTIONS`` while a stock env launches its JVM (it takes none)."""
    if not options:
        yield
        return
    with _ENVIRON_LOCK:
        before = os.environ.get("JAVA_TOOL_OPTIONS")
        os.environ["JAVA_TOOL_OPTIONS"] = " ".join([*([before] if before else []), *options])
        try:
            yield
        finally:
            if before is None:
                del os.environ["JAVA_TOOL_OPTIONS"]
            else:
                os.environ["JAVA_TOOL_OPTIONS"] = before


def _unique(actions: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(action for action in actions if action))


def state_anchor(look: str, inventory: str) -> str:
    """A key of the engine state: the room as "look around" describes it and the inventory (no counters)."""
    return f"{look.strip()}\n\n{inventory.strip()}"


class Simulator:
    """A started ScienceWorld JVM, driven through the fast path.

    Args:
        jar_path: the simulator jar (default: the one in the ``scienceworld`` wheel).
        java_options: extra JVM options, after :data:`REPRODUCIBLE_JAVA_OPTIONS`.
        timeout: seconds one call may take before the JVM is killed.
        reproducible: add :data:`REPRODUCIBLE_JAVA_OPTIONS` (False: the JVM's default identity hashes,
            under which results depend on the JVM's call history).
    """

    def __init__(
        self,
        jar_path: str | None = None,
        java_options: Sequence[str] = DEFAULT_JAVA_OPTIONS,
        timeout: float = 60.0,
        reproducible: bool = True,
    ):
        self.timeout = float(timeout)
        self.java_options = (*(REPRODUCIBLE_JAVA_OPTIONS if reproducible else ()), *java_options)
        try:
            self.gateway, self.proc = self._launch(jar_path, self.java_options)
        except FileNotFoundError as exc:
            raise DependencyNotInstalled(
                "agentgym/ScienceWorld-v0 needs Java 11 or newer on PATH "
                "(Debian: `apt-get install openjdk-17-jre-headless`, or `make venv`)"
            ) from exc
        self._deadline: float | None = None
        self._timed_out = False
        self._listing: list[str] | None = None  # the current state's valid actions, once listed
        self._draws_owed = False  # the current state's listing draws are not made yet (see the module doc)
        self._stop = threading.Event()
        self._finalizer = weakref.finalize(self, _shutdown, self.gateway, self.proc, self._stop)
        threading.Thread(
            target=self._watch, args=(weakref.ref(self),), name=f"scienceworld-watchdog-{self.pid}", daemon=True
        ).start()
        self._connect()

    def _launch(self, jar_path: str | None, options: Sequence[str]) -> tuple[Any, subprocess.Popen]:
        from py4j.java_gateway import GatewayParameters, JavaGateway, launch_gateway
        from scienceworld.constants import BASEPATH, JAR_PATH

        port, proc = launch_gateway(
            classpath=jar_path or JAR_PATH, javaopts=list(options), die_on_exit=True, cwd=BASEPATH, return_proc=True
        )
        return JavaGateway(gateway_parameters=GatewayParameters(auto_field=True, port=port), java_process=proc), proc

    def _connect(self) -> None:
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
            self.close()
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
            self.close()
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
        """Build the world of one task variation (``gold`` also plans the gold action sequence).

        Loading reseeds the simulator's random number generator, so no listing draws are owed."""
        self._listing, self._draws_owed = None, False
        self._call(lambda: self.server.load(task, variation, simplifications, gold), timeout=10 * self.timeout)

    def start(self) -> Reply:
        """The first answer of the loaded task ("look around"; ``load`` has just built the world)."""
        return self.step("look around")

    @property
    def listed(self) -> bool:
        """The current state's valid actions were listed (so its listing draws are made)."""
        return self._listing is not None

    def step(self, action: str) -> Reply:
        """Apply an action (the valid actions are not listed: :meth:`valid_actions`).

        First makes the random draws that stock's listing of the state before would have made, when that
        state was not listed. Raises ``Py4JJavaError`` when the engine throws on the action (stock lists
        nothing then either).
        """
        if self._draws_owed:
            self._call(self._draw_as_listing)
        self._listing, self._draws_owed = None, False

        def call() -> Reply:
            observation = self.server.step(action)
            score = int(round(100 * self.server.getScore()))
            completed, moves = bool(self.server.getCompleted()), int(self.server.getNumMoves())
            anchor = state_anchor(self.server.freeActionLook(), self.server.freeActionInventory())
            return observation, score, completed, moves, None, anchor

        reply = self._call(call)
        self._draws_owed = True
        return reply

    def valid_actions(self) -> list[str]:
        """The engine's valid action-object combinations (one transfer), deduplicated, in engine order.

        Listed once per state (a second listing would draw from the random number generator again)."""
        if self._listing is None:
            joined = self._call(lambda: self._join(_SEPARATOR, self.server.getValidActionObjectCombinations()))
            self._listing, self._draws_owed = _unique(joined.split(_SEPARATOR)), False
        return list(self._listing)

    def _draw_as_listing(self) -> None:
        """List the valid actions in the JVM without sending them: the listing's random draws, nothing more.

        The draws come from the listing's two name resolutions (``InputParser$.chooseUniqueReferents``
        over the visible objects, then over all objects), and those are nearly all of its cost (building
        the actions is cheap; only sending them costs more); running them alone through py4j took 12
        round trips and was no faster. Listing itself also makes exactly the engine's draws whatever
        its version.
        """
        self.server.getValidActionObjectCombinations()

    def task_description(self) -> str:
        return self._call(lambda: self.server.getTaskDescription())

    def gold_actions(self) -> list[str]:
        """The gold action sequence (needs ``load(..., gold=True)``)."""
        return list(self._call(lambda: self._join(_SEPARATOR, self.server.getGoldActionSequence())).split(_SEPARATOR))

    def call(self, name: str, *args: Any) -> Any:
        """Any other ``PythonInterface`` method, under the same deadline."""
        return self._call(lambda: getattr(self.server, name)(*args))

    def replay(self, task: str, variation: int, simplifications: str, commands: Sequence[str], listed: bool) -> str:
        """Rebuild an episode's state: reload the task and replay its commands; the last observation.

        The replay makes the same random draws as the episode did: every state before the current one had
        its listing draws made (listed or not, :meth:`step` sees to it), and the current one has them only
        when it was ``listed``, so it is listed again then. A command the engine threw on in the episode
        throws again and changes nothing (the observation stays the one before).
        """
        from py4j.protocol import Py4JJavaError

        self.load(task, variation, simplifications, False)
        observation, *_ = self.start()
        for command in commands:
            try:
                observation, *_ = self.step(command)
            except Py4JJavaError:
                pass
        if listed:
            self.valid_actions()
        return observation


class StockSimulator(Simulator):
    """The unmodified ``scienceworld.ScienceWorldEnv`` path, under the same watchdog and clean end.

    The stock env launches its own JVM (default flags: ``java_options`` defaults to none here, and the
    options given reach the JVM through ``JAVA_TOOL_OPTIONS``); ``start`` is its ``reset`` and ``step``
    its ``step``, which makes 8 calls and lists the valid actions one element per round trip.
    """

    def __init__(
        self,
        jar_path: str | None = None,
        java_options: Sequence[str] = (),
        timeout: float = 60.0,
        reproducible: bool = True,
    ):
        super().__init__(jar_path, java_options, timeout, reproducible)

    def _launch(self, jar_path: str | None, options: Sequence[str]) -> tuple[Any, subprocess.Popen]:
        from scienceworld import ScienceWorldEnv

        with _java_tool_options(options):
            self.env = ScienceWorldEnv(serverPath=jar_path, envStepLimit=sys.maxsize)
        return self.env._gateway, self.env._gateway.java_process

    def _connect(self) -> None:
        self.server = self.env.server

    def load(self, task: str, variation: int, simplifications: str, gold: bool) -> None:
        self._listing = None
        self._call(lambda: self.env.load(task, variation, simplifications, gold), timeout=10 * self.timeout)

    def _reply(self, observation: str, done: bool, info: dict[str, Any]) -> Reply:
        score = int(info["score"])
        self._listing = _unique(info["valid"])
        # The stock env also reports done when the score went negative (a failed task): not completed.
        return (
            observation,
            score,
            bool(done) and score >= 0,
            int(info["moves"]),
            list(self._listing),
            state_anchor(info["look"], info["inv"]),
        )

    def start(self) -> Reply:
        self._listing = None
        observation, info = self._call(self.env.reset)
        return self._reply(observation, False, info)

    def step(self, action: str) -> Reply:
        self._listing = None
        observation, _, done, info = self._call(lambda: self.env.step(action))
        return self._reply(observation, done, info)

    def valid_actions(self) -> list[str]:
        """The listing stock's step made (listed again only after an engine exception, as stock would)."""
        if self._listing is None:
            self._listing = _unique(self._call(self.env.get_valid_action_object_combinations))
        return list(self._listing)

    def task_description(self) -> str:
        return self._call(self.env.get_task_description)

    def gold_actions(self) -> list[str]:
        return list(self._call(self.env.get_gold_action_sequence))
