"""The public conformance test every agentgym env passes (like PettingZoo's ``api_test``).

``check_env("agentgym/<Family>-v0", split="test")`` makes the env and checks, raising
:class:`ConformanceError` with a message that names the likely cause (explicit checks, not ``assert``:
they hold under ``python -O`` too):

1. reset/step return types and the observation and action spaces;
2. the standard info keys (:data:`agentgym.core.INFO_KEYS`) and their types;
3. determinism: the same seed picks the same task and gives the same episode; ``task_id`` options work;
4. bad actions (empty, 1 MB, control characters, unpaired surrogates, ``None``, bytes) are answered
   with ``action_valid=False`` and a str observation, without raising, and the episode goes on;
5. the task list and manifest (hash, engine version);
6. ``close()`` twice is fine and leaves no child process behind.

:func:`fuzz_env` is the fuzzing pass (hypothesis strategies of hostile actions, :func:`fuzz_actions`):
no exception but :class:`~agentgym.error.EngineFault`, str observations, the standard info keys, and the
env alive afterwards; it returns its counts (:class:`FuzzCounts`).

The ecosystem checks run Gymnasium's own tools on one env, as a new user would (issue 20):
:func:`check_vectorization` (``gym.make_vec(..., vectorization_mode="async")``, shared memory on),
:func:`check_gymnasium` (Gymnasium's ``check_env`` on ``env.unwrapped``, with the passive checker on in
``gym.make``) and :func:`check_copy_and_clone` (``copy.deepcopy``/``pickle`` give an independent env or
raise :class:`~agentgym.error.NotCopyableError`; ``clone_state``/``restore_state`` replay exactly or raise
:class:`~agentgym.error.StateCloningUnsupported`). :func:`check_ecosystem` runs all three.

A family that cannot meet a check declares it in ``metadata["conformance_exempt"]`` (a tuple of check
names with a reason in the env card); the checker never keeps per-env lists.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import pickle
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from agentgym.core import INFO_KEYS
from agentgym.error import AgentGymError


class ConformanceError(AgentGymError, AssertionError):
    """An env fails a conformance check; the message says which and the likely cause. An AssertionError
    too, so test runners report it as a failed check, as Gymnasium's checker does."""


def _expect(condition: object, message: str) -> None:
    if not condition:
        raise ConformanceError(message)


#: The bad actions every env must answer without raising.
BAD_ACTIONS: dict[str, Any] = {
    "empty": "",
    "whitespace": "   \n\t ",
    "huge": "go north " * 116_509,  # ~1 MB
    "control characters": "look\x00\x1b[2J\x07",
    "unpaired surrogate": "take \ud800 lamp",
    "None": None,
    "bytes": b"look",
    "int": 42,
}


def _children() -> set[int]:
    """Pids of this process's live (non-zombie) child processes, read from /proc."""
    me, children = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] != "Z":
            children.add(int(entry))
    return children


def _check_info(info: Any, where: str) -> None:
    _expect(isinstance(info, dict), f"{where}: info must be a dict, got {type(info).__name__}")
    missing = [key for key in INFO_KEYS if key not in info]
    _expect(not missing, f"{where}: info lacks the standard keys {missing} (see agentgym.core.INFO_KEYS)")
    _expect(isinstance(info["task_id"], str), f"{where}: info['task_id'] must be a str")
    _expect(isinstance(info["action_valid"], bool), f"{where}: info['action_valid'] must be a bool")
    _expect(isinstance(info["won"], bool), f"{where}: info['won'] must be a bool")
    score = info["score"]
    _expect(
        isinstance(score, float) and 0.0 <= score <= 1.0,
        f"{where}: info['score'] must be a float in [0, 1], got {score!r}",
    )
    _expect(isinstance(info["turn"], int), f"{where}: info['turn'] must be an int")
    admissible = info["admissible_actions"]
    _expect(
        admissible is None or (isinstance(admissible, list) and all(isinstance(a, str) for a in admissible)),
        f"{where}: info['admissible_actions'] must be None or a list of str",
    )
    for key in ("goal", "expert_action", "ground_truth", "anchor_obs"):
        _expect(info[key] is None or isinstance(info[key], str), f"{where}: info[{key!r}] must be None or a str")


def _check_step(env: gym.Env, result: Any, where: str) -> tuple[str, dict]:
    _expect(isinstance(result, tuple) and len(result) == 5, f"{where}: step must return a 5-tuple")
    obs, reward, terminated, truncated, info = result
    _expect(isinstance(obs, str), f"{where}: observation must be a str, got {type(obs).__name__}")
    _expect(env.observation_space.contains(obs), f"{where}: observation not in observation_space")
    _expect(isinstance(reward, float), f"{where}: reward must be a float, got {type(reward).__name__}")
    _expect(isinstance(terminated, bool) and isinstance(truncated, bool), f"{where}: terminated/truncated must be bool")
    _check_info(info, where)
    return obs, info


def _first_action(info: dict) -> str:
    return (info.get("admissible_actions") or [None])[0] or info.get("expert_action") or "look"


def _play(env: gym.Env, seed: int, turns: int) -> list[tuple[str, float, bool]]:
    obs, info = env.reset(seed=seed)
    trace = [(obs, 0.0, False)]
    for _ in range(turns):
        obs, reward, terminated, truncated, info = env.step(_first_action(info))
        trace.append((obs, reward, info["won"]))
        if terminated or truncated:
            break
    return trace


def check_env(env_id: str | Callable[[], gym.Env], seed: int = 0, turns: int = 3, **kwargs: Any) -> None:
    """Run every conformance check on ``env_id`` (an id plus constructor ``kwargs``, or a factory)."""
    make = env_id if callable(env_id) else (lambda: gym.make(env_id, **kwargs))
    before = _children()
    env = make()
    exempt = set(env.unwrapped.metadata.get("conformance_exempt", ()))
    try:
        base = env.unwrapped
        _expect(isinstance(env.observation_space, gym.spaces.Text), "observation_space must be a text space")
        _expect(isinstance(env.action_space, gym.spaces.Text), "action_space must be a text space")

        task_ids = base.task_ids
        _expect(
            isinstance(task_ids, list) and task_ids and all(isinstance(t, str) for t in task_ids),
            "env.unwrapped.task_ids must be a non-empty list of str",
        )
        manifest = base.manifest
        _expect(
            len(manifest.hash) == 64 and manifest.engine_version, "manifest needs a sha256 hash and an engine version"
        )

        # 1-2. types and info keys
        result = env.reset(seed=seed)
        _expect(isinstance(result, tuple) and len(result) == 2, "reset must return (observation, info)")
        obs, info = result
        _expect(isinstance(obs, str) and env.observation_space.contains(obs), "reset observation must be a str")
        _check_info(info, "reset")
        _expect(info["task_id"] in task_ids, f"reset picked {info['task_id']!r}, which is not in task_ids")
        _expect(info["turn"] == 0, "info['turn'] must be 0 after reset")
        _, info = _check_step(env, env.step(_first_action(info)), "step")
        _expect(info["turn"] == 1, "info['turn'] must count steps")

        # 4. bad actions
        if "bad_actions" not in exempt:
            env.reset(seed=seed)
            for name, action in BAD_ACTIONS.items():
                result = env.step(action)
                obs, info = _check_step(env, result, f"bad action ({name})")
                _expect(info["action_valid"] is False, f"bad action ({name}) must give info['action_valid'] = False")
                _expect(obs, f"bad action ({name}) must be answered with an observation saying what was wrong")
                _expect(not result[2], f"bad action ({name}) must not end the episode")
                if result[3]:  # turn limit reached: start again
                    env.reset(seed=seed)

        # 3. determinism under a seed, and task_id options
        if "determinism" not in exempt:
            other = make()
            try:
                first, second = _play(env, seed, turns), _play(other, seed, turns)
                _expect(first == second, "the same seed must give the same episode (observations, rewards, won)")
                for task_id in (task_ids[0], task_ids[-1]):
                    _, info = other.reset(seed=seed, options={"task_id": task_id})
                    _expect(info["task_id"] == task_id, "reset(options={'task_id': ...}) must select that task")
                picks = {other.reset(seed=s)[1]["task_id"] for s in range(3)}
                again = {other.reset(seed=s)[1]["task_id"] for s in range(3)}
                _expect(picks == again, "the same seed must pick the same task")
            finally:
                other.close()
    finally:
        env.close()
        env.close()  # twice must be fine
    leaked = _children() - before
    _expect(not leaked, f"close() left child processes behind: pids {sorted(leaked)}")


# ----------------------------------------------------------------- ecosystem checks
#: A move every family answers cheaply (a plain look, or an invalid move); an expert move may be costly
#: (KernelGym compiles a kernel).
CHEAP_ACTION = "look"


def _maker(env_id: str | Callable[[], gym.Env], kwargs: dict[str, Any]) -> Callable[[], gym.Env]:
    return env_id if callable(env_id) else (lambda: gym.make(env_id, **kwargs))


def check_vectorization(env_id: str, seed: int = 0, **kwargs: Any) -> None:
    """``gym.make_vec(env_id, num_envs=2, vectorization_mode="async")`` with its defaults (shared memory on)
    gives the texts one env gives under the same seed and actions, at reset and at the next step."""
    single = gym.make(env_id, **kwargs)
    try:
        first, _ = single.reset(seed=seed)
        then = single.step(CHEAP_ACTION)[0]
    finally:
        single.close()
    envs = gym.make_vec(env_id, num_envs=2, vectorization_mode="async", **kwargs)
    try:
        obs, infos = envs.reset(seed=seed)  # sub-env i is seeded with seed + i
        _expect(isinstance(obs, tuple) and len(obs) == 2, f"async reset must give a tuple of 2 texts, got {obs!r:.200}")
        _expect(obs[0] == first, "async sub-env 0 must reset to the text one env gives under the same seed")
        stepped, _, _, _, infos = envs.step((CHEAP_ACTION, CHEAP_ACTION))
        _expect(all(isinstance(o, str) and o for o in stepped), "async steps must give non-empty texts")
        _expect(stepped[0] == then, "async sub-env 0 must step to the text one env gives (not a stale buffer)")
        _expect(list(infos["turn"]) == [1, 1], "the vector info must carry each sub-env's turn")
    finally:
        envs.close()


def check_gymnasium(env_id: str, **kwargs: Any) -> None:
    """Gymnasium's :func:`~gymnasium.utils.env_checker.check_env` passes on ``env.unwrapped``, and ``gym.make``
    keeps Gymnasium's passive env checker on."""
    from gymnasium.utils.env_checker import check_env as gymnasium_check_env

    _expect(gym.spec(env_id).disable_env_checker is False, f"{env_id} is registered with the passive checker off")
    env = gym.make(env_id, **kwargs)
    try:
        gymnasium_check_env(env.unwrapped)
    finally:
        env.close()


def check_copy_and_clone(env_id: str | Callable[[], gym.Env], seed: int = 0, **kwargs: Any) -> None:
    """``copy.deepcopy`` and ``pickle`` either give an env that plays on independently (closing it leaves the
    original playing) or raise :class:`~agentgym.error.NotCopyableError` naming what to do instead; and
    ``clone_state``/``restore_state`` either replay the same steps after a restore or raise
    :class:`~agentgym.error.StateCloningUnsupported`."""
    from agentgym.error import NotCopyableError, StateCloningUnsupported

    env = _maker(env_id, kwargs)()
    try:
        env.reset(seed=seed)
        base = env.unwrapped
        for what, duplicate in (("deep-copied", copy.deepcopy), ("pickled", lambda e: pickle.loads(pickle.dumps(e)))):
            try:
                twin = duplicate(env)
            except NotCopyableError as error:
                message = str(error)
                _expect(f"cannot be {what}" in message and "gym.make(" in message, f"unclear refusal: {message}")
                _expect("clone_state()" in message, f"the refusal must say whether clone_state() is offered: {message}")
                continue
            try:
                _expect(twin.unwrapped is not base, f"{what} env is the original")
                _expect(twin.step(CHEAP_ACTION)[:4] == env.step(CHEAP_ACTION)[:4], f"the {what} env plays differently")
            finally:
                twin.close()
            _expect(isinstance(env.step(CHEAP_ACTION)[0], str), f"closing the {what} env broke the original")
            env.reset(seed=seed)
        try:
            snapshot = base.clone_state()
        except StateCloningUnsupported:
            _expect(not base.offers_clone_state(), "offers_clone_state() is True but clone_state() is unsupported")
            return
        after = [env.step(CHEAP_ACTION)[:4] for _ in range(2)]
        base.restore_state(snapshot)
        _expect([env.step(CHEAP_ACTION)[:4] for _ in range(2)] == after, "restore_state() must replay the same steps")
    finally:
        env.close()


def check_ecosystem(env_id: str, seed: int = 0, **kwargs: Any) -> None:
    """Every ecosystem check on one registered id (see the module docstring)."""
    check_vectorization(env_id, seed, **kwargs)
    check_gymnasium(env_id, **kwargs)
    check_copy_and_clone(env_id, seed, **kwargs)


# ----------------------------------------------------------------- fuzzing pass
@dataclasses.dataclass
class FuzzCounts:
    """What :func:`fuzz_env` tried on one env: actions sent, refused as invalid, engine faults, raised."""

    env_id: str
    tried: int = 0
    invalid: int = 0
    engine_faults: int = 0
    raised: int = 0

    def __str__(self) -> str:
        return (
            f"{self.env_id}: {self.tried} fuzzed actions, {self.invalid} answered as invalid, "
            f"{self.engine_faults} engine faults, {self.raised} raised"
        )


def fuzz_actions() -> Any:
    """The hypothesis strategy of hostile actions: any Unicode (astral planes, unpaired surrogates, NUL,
    control characters), very long and huge-in-bytes strings, malformed JSON tool calls, non-strings."""
    from hypothesis import strategies as st

    every_char = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())
    text = st.text(every_char, max_size=64)
    repeated = st.builds(
        lambda chunk, times: chunk * times, st.text(every_char, min_size=1, max_size=4), st.integers(1, 3000)
    )
    tool_names = (
        st.sampled_from(
            ["view", "bash", "create_file", "str_replace", "run_tests", "submit", "search", "click", "evaluate"]
        )
        | text
    )
    arguments = st.dictionaries(
        st.sampled_from(["path", "command", "content", "old", "new", "query", "code"]) | text,
        text | st.integers() | st.none(),
        max_size=3,
    )
    tool_call = st.builds(
        lambda name, args: json.dumps({"name": name, "arguments": args}, ensure_ascii=False), tool_names, arguments
    )
    broken_json = st.builds(lambda call, cut: call[:cut], tool_call, st.integers(0, 40))
    fixed = st.sampled_from(
        [
            "\x00",
            "look\x00",
            "😀" * 100,
            "x" * 197 + "é",
            "\ud800",
            "\udfff\ud800",
            "{",
            "[]",
            "null",
            '{"name": null}',
            "\\",
            "\u202e",
            "\ufeff",
            "\U0010ffff",
        ]
    )
    return st.one_of(
        fixed,
        text,
        repeated,
        tool_call,
        broken_json,
        st.none(),
        st.binary(max_size=32),
        st.integers(),
        st.floats(allow_nan=True),
        st.lists(text, max_size=3),
    )


def fuzz_env(env_id: str | Callable[[], gym.Env], examples: int = 50, seed: int = 0, **kwargs: Any) -> FuzzCounts:
    """Send ``examples`` hostile actions (:func:`fuzz_actions`) to one env; return the counts.

    Deterministic (hypothesis derandomized, no example database, no shrinking). Every step must return
    a str observation and the standard info keys; the only exception allowed is
    :class:`~agentgym.error.EngineFault` (the env is reset after one). Afterwards the env must be alive: a
    reset and a step of its expert (or first admissible) action succeed. A failed check
    (:class:`ConformanceError`) or another exception fails the pass with the action that caused it.
    """
    from hypothesis import HealthCheck, Phase, given, settings

    from agentgym.error import EngineFault

    make = env_id if callable(env_id) else (lambda: gym.make(env_id, **kwargs))
    counts = FuzzCounts(env_id if isinstance(env_id, str) else getattr(env_id, "__name__", "env"))
    env = make()
    try:
        env.reset(seed=seed)

        @settings(
            max_examples=examples,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(fuzz_actions())
        def one_action(action: Any) -> None:
            counts.tried += 1
            try:
                result = env.step(action)
            except EngineFault:
                counts.engine_faults += 1
                env.reset(seed=seed)
                return
            except BaseException:
                counts.raised += 1
                raise
            obs, info = _check_step(env, result, f"fuzzed action {action!r:.200}")
            counts.invalid += not info["action_valid"]
            if result[2] or result[3]:
                env.reset(seed=seed)

        one_action()
        _, info = env.reset(seed=seed)
        _check_step(env, env.step(_first_action(info)), "a step after the fuzzing pass")
    finally:
        env.close()
    return counts
