"""Env worker processes: :class:`EnvPool` keeps one env per process and lets the caller reset and step each one.

Processes start with ``spawn`` (safe beside threads and torch). Each worker's env computes only the costly info
values its agent reads (:func:`request_info_keys`). A script that starts a pool without a main guard gets
:class:`~agentgym.error.WorkerStartError` saying what to do, instead of a bare "worker died".
:mod:`agentgym.rollout` drives a pool with agents.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import traceback
from collections.abc import Callable, Collection, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

import gymnasium as gym

from agentgym.error import EngineFault, WorkerStartError

EnvFactory = Callable[[], gym.Env]


def request_info_keys(env: gym.Env, info_keys: Collection[str] | None) -> None:
    """Ask an agentgym env to compute, of its costly info values, only those in ``info_keys`` (None: leave
    the env as it was made). Names the env does not know (another family's keys, a hook's) are skipped: an
    agent's ``info_keys`` may name keys of several families."""
    base = getattr(env, "unwrapped", env)
    if info_keys is not None and hasattr(base, "set_info_keys"):  # a TextEnv or a TurnGame's PettingZoo view
        base.set_info_keys(frozenset(info_keys) & base.info_key_names)


def _worker(env_fn: EnvFactory, conn: Connection, info_keys: Collection[str] | None = None) -> None:
    """Serve one env: ("reset", kwargs) / ("step", action) / ("close", None) -> ("ok" | "error", payload)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it closes us
    env = None
    try:
        env = env_fn()
        request_info_keys(env, info_keys)
        conn.send(("ok", None))
        while True:
            try:
                command, payload = conn.recv()
            except EOFError:  # the parent is gone (even after kill -9): stop quietly
                break
            if command == "close":
                break
            try:
                result = env.reset(**payload) if command == "reset" else env.step(payload)
                conn.send(("ok", result))
            except Exception as exc:  # reported to the parent, which raises it there
                conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    except Exception as exc:
        try:
            conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
        except OSError:
            pass
    finally:
        if env is not None:
            env.close()
        conn.close()


#: Exit code of a worker that found itself re-running the main script's pool creation (no main guard).
_MAIN_GUARD_EXIT = 86
_MAIN_GUARD_HELP = (
    "env worker processes could not start: the script makes an EnvPool (rollout with workers, evaluate with "
    "num_workers) at import time. Workers start with 'spawn', which re-imports the main script in each worker, "
    "so the pool creation ran again there. Put the script's top-level code under "
    '`if __name__ == "__main__":`, or pass in_process=True'
)


def _refuse_pool_in_spawned_import() -> None:
    """In a spawned worker that is still importing the parent's main script (``_inheriting`` is set by
    multiprocessing's spawn bootstrap), creating a pool means the script has no main guard: exit with
    :data:`_MAIN_GUARD_EXIT`, which the parent turns into :data:`_MAIN_GUARD_HELP`, instead of
    multiprocessing's bootstrap error and a bare "worker died"."""
    if getattr(mp.current_process(), "_inheriting", False):
        raise SystemExit(_MAIN_GUARD_EXIT)


class EnvPool:
    """``num_envs`` envs, each in its own worker process (or all in this process with ``in_process=True``).

    Calls are split into ``send_*`` and :meth:`ready`/:meth:`receive` so the caller can keep every
    worker busy. Processes start with ``spawn`` (safe beside threads and torch); a dead worker raises
    :class:`~agentgym.error.EngineFault`. ``close()`` (or the context manager) ends every worker.

    ``info_keys`` names the costly info values (a family's ``costly_info_keys``, such as ScienceWorld's
    ``admissible_actions`` and ``expert_action``) each env computes: the others are absent from its infos,
    and never computed (:meth:`~agentgym.core.TextEnv.set_info_keys`). None (the default): the envs stay as
    ``env_fn`` made them. Keys that are not costly always arrive.

    A pool can serve many :func:`rollout` calls (a trainer's every update): its workers keep their
    processes and engines (a ScienceWorld JVM, ALFWorld's translation caches) between calls.
    """

    def __init__(
        self, env_fn: EnvFactory, num_envs: int, *, in_process: bool = False, info_keys: Collection[str] | None = None
    ):
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        self.num_envs = num_envs
        self.in_process = in_process
        self.info_keys = None if info_keys is None else frozenset(info_keys)
        self._results: dict[int, Any] = {}
        self._in_flight: set[int] = set()  # workers sent a command whose answer was not received yet
        if in_process:
            self._envs = [env_fn() for _ in range(num_envs)]
            for env in self._envs:
                request_info_keys(env, self.info_keys)
            return
        _refuse_pool_in_spawned_import()
        context = mp.get_context("spawn")
        self._conns: list[Connection] = []
        self._procs: list[mp.process.BaseProcess] = []
        for _ in range(num_envs):
            parent, child = context.Pipe()
            proc = context.Process(target=_worker, args=(env_fn, child, self.info_keys), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        try:
            for index in range(num_envs):
                self.receive(index)  # the env was built (or its error is raised here)
        except BaseException:
            self.close()  # the workers that did start
            raise

    def __enter__(self) -> EnvPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_reset(self, index: int, seed: int | None, options: dict[str, Any] | None) -> None:
        self._send(index, "reset", {"seed": seed, "options": options})

    def send_step(self, index: int, action: str) -> None:
        self._send(index, "step", action)

    def _send(self, index: int, command: str, payload: Any) -> None:
        if self.in_process:
            env = self._envs[index]
            result = env.reset(**payload) if command == "reset" else env.step(payload)
            self._results[index] = result
        else:
            self._conns[index].send((command, payload))
        self._in_flight.add(index)

    def ready(self, pending: Sequence[int]) -> list[int]:
        """The pending workers whose answer has arrived (blocks until at least one has)."""
        if self.in_process:
            return list(pending)
        by_conn = {id(self._conns[i]): i for i in pending}
        return sorted(by_conn[id(conn)] for conn in wait([self._conns[i] for i in pending]))

    def receive(self, index: int) -> Any:
        self._in_flight.discard(index)
        if self.in_process:
            return self._results.pop(index)
        try:
            status, payload = self._conns[index].recv()
        except (EOFError, ConnectionResetError):
            self._procs[index].join(timeout=5)
            if self._procs[index].exitcode == _MAIN_GUARD_EXIT:
                raise WorkerStartError(_MAIN_GUARD_HELP) from None
            raise EngineFault(f"env worker process {index} died (exit code {self._procs[index].exitcode})") from None
        if status == "error":
            raise EngineFault(f"env worker {index} failed: {payload}")
        return payload

    def drain(self) -> None:
        """Receive and drop every answer still in flight (a rollout interrupted by an exception leaves
        some), so the next caller's first answer is its own. A worker that died stays dead."""
        for index in sorted(self._in_flight):
            try:
                self.receive(index)
            except EngineFault:
                pass

    def close(self) -> None:
        if self.in_process:
            for env in self._envs:
                env.close()
            self._envs = []
            return
        for conn in self._conns:
            try:
                conn.send(("close", None))
            except OSError:
                pass
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in self._conns:
            conn.close()
        self._conns, self._procs = [], []
