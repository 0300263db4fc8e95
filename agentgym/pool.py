"""Env worker processes: :class:`EnvPool` keeps ``num_workers`` processes of ``envs_per_worker`` envs each and
lets the caller reset and step every env on its own.

Why several envs per process: an LLM agent generates for every episode that waits for an action in one batch,
so the batch is as wide as the number of episodes in flight. One env per process would tie that width to the
process count (and to the CPU cores); with ``envs_per_worker=K`` a 2-process pool keeps ``2K`` episodes going.
A worker steps its envs one after the other, in the order the commands came, and sends each answer as soon as
it is computed, so the parent can act on the first answers while the worker still steps the rest.

Processes start with ``spawn`` (safe beside threads and torch). Each worker's envs compute only the costly info
values their agent reads (:func:`request_info_keys`). A script that starts a pool without a main guard gets
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


def _worker(env_fn: EnvFactory, conn: Connection, num_envs: int, info_keys: Collection[str] | None) -> None:
    """Serve ``num_envs`` envs: ("reset", slot, kwargs) / ("step", slot, action) / ("close", None, None), each
    answered in order by (slot, "ok" | "error", payload); the first message, (None, "ok" | "error", ...), says
    whether the envs were built."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it closes us
    envs: list[gym.Env] = []
    try:
        for _ in range(num_envs):
            envs.append(env_fn())
            request_info_keys(envs[-1], info_keys)
        conn.send((None, "ok", None))
        while True:
            try:
                command, slot, payload = conn.recv()
            except EOFError:  # the parent is gone (even after kill -9): stop quietly
                break
            if command == "close":
                break
            try:
                env = envs[slot]
                conn.send((slot, "ok", env.reset(**payload) if command == "reset" else env.step(payload)))
            except Exception as exc:  # reported to the parent, which raises it there
                conn.send((slot, "error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    except Exception as exc:
        try:
            conn.send((None, "error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
        except OSError:
            pass
    finally:
        for env in envs:
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
    """``num_workers`` worker processes holding ``envs_per_worker`` envs each (or all ``num_envs`` envs in this
    process with ``in_process=True``). Env index ``i`` lives in worker ``i // envs_per_worker``.

    Calls are split into ``send_*`` and :meth:`ready`/:meth:`receive` so the caller can keep every env busy:
    :meth:`ready` collects every answer that has arrived into a buffer and says which envs have one. A dead
    worker raises :class:`~agentgym.error.EngineFault` naming it and its envs. ``close()`` (or the context
    manager) ends every worker.

    ``info_keys`` names the costly info values (a family's ``costly_info_keys``, such as ScienceWorld's
    ``admissible_actions`` and ``expert_action``) each env computes: the others are absent from its infos,
    and never computed (:meth:`~agentgym.core.TextEnv.set_info_keys`). None (the default): the envs stay as
    ``env_fn`` made them. Keys that are not costly always arrive.

    A pool can serve many :func:`rollout` calls (a trainer's every update): its workers keep their
    processes and engines (a ScienceWorld JVM, ALFWorld's translation caches) between calls.
    """

    def __init__(
        self,
        env_fn: EnvFactory,
        num_workers: int,
        *,
        envs_per_worker: int = 1,
        in_process: bool = False,
        info_keys: Collection[str] | None = None,
    ):
        if num_workers < 1 or envs_per_worker < 1:
            raise ValueError(
                f"num_workers and envs_per_worker must be at least 1, got {num_workers} and {envs_per_worker}"
            )
        self.num_workers, self.envs_per_worker = num_workers, envs_per_worker
        self.num_envs = num_workers * envs_per_worker
        self.in_process = in_process
        self.info_keys = None if info_keys is None else frozenset(info_keys)
        self._results: dict[int, tuple[str, Any]] = {}  # env -> (status, payload) arrived, not received yet
        self._in_flight: set[int] = set()  # envs sent a command whose answer was not received yet
        if in_process:
            self._envs = [env_fn() for _ in range(self.num_envs)]
            for env in self._envs:
                request_info_keys(env, self.info_keys)
            return
        _refuse_pool_in_spawned_import()
        context = mp.get_context("spawn")
        self._conns: list[Connection] = []
        self._procs: list[mp.process.BaseProcess] = []
        for _ in range(num_workers):
            parent, child = context.Pipe()
            proc = context.Process(target=_worker, args=(env_fn, child, envs_per_worker, self.info_keys), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        try:
            for worker in range(num_workers):
                self._collect(worker)  # the envs were built (or the error is raised here)
        except BaseException:
            self.close()  # the workers that did start
            raise

    def __enter__(self) -> EnvPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids (empty in process)."""
        return [] if self.in_process else [proc.pid for proc in self._procs]

    def send_reset(self, index: int, seed: int | None, options: dict[str, Any] | None) -> None:
        self._send(index, "reset", {"seed": seed, "options": options})

    def send_step(self, index: int, action: Any) -> None:
        self._send(index, "step", action)

    def _send(self, index: int, command: str, payload: Any) -> None:
        if self.in_process:
            env = self._envs[index]  # an env's exception is raised here, as is
            self._results[index] = ("ok", env.reset(**payload) if command == "reset" else env.step(payload))
        else:
            worker, slot = divmod(index, self.envs_per_worker)
            try:
                self._conns[worker].send((command, slot, payload))
            except OSError:  # the worker is gone (a broken pipe)
                raise self._lost(worker) from None
        self._in_flight.add(index)

    def ready(self, pending: Sequence[int], timeout: float | None = None) -> list[int]:
        """The ``pending`` envs whose answer has arrived. Waits until at least one has (at most ``timeout``
        seconds: then possibly none), and takes in every answer already there, of any env."""
        if not self.in_process:  # in process, every answer is in as soon as its command is sent
            if not any(i in self._results for i in pending):
                workers = {i // self.envs_per_worker for i in pending if i in self._in_flight}
                if workers:
                    wait([self._conns[w] for w in workers], timeout)
            for worker in {i // self.envs_per_worker for i in self._in_flight if i not in self._results}:
                while self._conns[worker].poll():  # a dead worker's pipe polls ready: _collect raises
                    self._collect(worker)
        return sorted(i for i in pending if i in self._results)

    def receive(self, index: int) -> Any:
        """The answer of env ``index`` to its last command (waits for it); an env's error is raised here."""
        if index not in self._in_flight:
            raise ValueError(f"env {index} has no command in flight")
        try:
            while index not in self._results:
                self._collect(index // self.envs_per_worker)
        finally:
            self._in_flight.discard(index)
        status, payload = self._results.pop(index)
        if status == "error":
            raise EngineFault(f"env {index} (worker {index // self.envs_per_worker}) failed: {payload}")
        return payload

    def _collect(self, worker: int) -> None:
        """Take one message of ``worker`` into the answer buffer (blocks until it comes)."""
        try:
            slot, status, payload = self._conns[worker].recv()
        except (EOFError, OSError):
            raise self._lost(worker) from None
        if slot is None:  # the worker's own answer: its envs were built (ok), or it failed outside an env call
            if status == "error":
                raise EngineFault(f"env worker {worker} ({self._envs_of(worker)}) failed: {payload}")
            return
        self._results[worker * self.envs_per_worker + slot] = (status, payload)

    def _envs_of(self, worker: int) -> str:
        return f"envs {worker * self.envs_per_worker}..{(worker + 1) * self.envs_per_worker - 1}"

    def _lost(self, worker: int) -> Exception:
        """The error for a worker whose pipe broke: WorkerStartError if it hit the missing main guard."""
        self._procs[worker].join(timeout=5)
        exitcode = self._procs[worker].exitcode
        if exitcode == _MAIN_GUARD_EXIT:
            return WorkerStartError(_MAIN_GUARD_HELP)
        return EngineFault(f"env worker process {worker} ({self._envs_of(worker)}) died (exit code {exitcode})")

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
                conn.send(("close", None, None))
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
