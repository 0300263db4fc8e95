"""ScienceWorld's fast engine path gives exactly what the stock ``scienceworld.ScienceWorldEnv`` gives.

The fast path (the default) skips listing valid actions unless ``info_keys`` ask for them, lists them in one
transfer, and starts an episode without stock's second world build; ``exact_stock=True`` runs the
unmodified stock env. Both JVMs run with ``-XX:hashCode=2``: under default flags the stock engine is
not even identical to itself once its call history changes (see the env card), so a comparison
between two call patterns is only well-defined with constant identity hashes.

Stock lists the valid actions at every step, and listing draws from the simulator's global random number
generator (which random events such as genetics and wandering animals use too), so the fast path makes the
listing's draws before each step whose state was not listed. The gold-path tests check that: both read
patterns (listing read every step, never read) against stock, on every task type.

Each test holds at most two JVMs.
"""

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from agentgym.envs.scienceworld import ScienceWorldEnv
from agentgym.envs.scienceworld import tasks as sw_tasks
from agentgym.envs.scienceworld.engine import REPRODUCIBLE_JAVA_OPTIONS, Simulator, StockSimulator
from agentgym.error import EngineFault

#: Task types with short gold sequences (4-19 actions), so planning them stays cheap.
TASK_TYPES = [
    "lifespan-longest-lived",
    "lifespan-shortest-lived",
    "chemistry-mix-paint-secondary-color",
    "find-non-living-thing",
    "power-component",
    "find-plant",
    "identify-life-stages-2",
    "chemistry-mix-paint-tertiary-color",
    "use-thermometer",
    "test-conductivity",
    "find-animal",
    "chemistry-mix",
]
MIN_STATES = 500
RANDOM_STEPS = 24  # per random episode, after half of the gold sequence


def _first_test_task(task_type: str) -> str:
    return f"{task_type}/{sw_tasks.official_variations(task_type, 'test')[0]}"


def _state(obs, info, reward=0.0, terminated=False, truncated=False, read=True) -> tuple:
    """Everything a user sees of one state (the admissible actions only when ``read``)."""
    return (
        obs,
        reward,
        terminated,
        truncated,
        info["admissible_actions"] if read else "-",
        info["won"],
        info["score"],
        info["action_valid"],
        info["anchor_obs"],
        info["goal"],
        info["turn"],
        dict(info["scienceworld"]),
    )


def _record(env: ScienceWorldEnv, task_id: str, prefix: list[str], random_steps: int, rng) -> tuple[list, list]:
    """Play ``prefix`` then ``random_steps`` random admissible actions; (actions, states) of the episode."""
    obs, info = env.reset(options={"task_id": task_id})
    states, actions = [_state(obs, info)], []
    for step in range(len(prefix) + random_steps):
        admissible = info["admissible_actions"]
        action = prefix[step] if step < len(prefix) else admissible[int(rng.integers(len(admissible)))]
        obs, reward, terminated, truncated, info = env.step(action)
        actions.append(action)
        states.append(_state(obs, info, reward, terminated, truncated))
        if terminated or truncated:
            break
    return actions, states


def _replay(env: ScienceWorldEnv, task_id: str, actions: list[str], read: bool = True) -> list:
    env.set_info_keys(None if read else ())
    obs, info = env.reset(options={"task_id": task_id})
    states = [_state(obs, info, read=read)]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        states.append(_state(obs, info, reward, terminated, truncated, read=read))
    return states


def _unread(states: list) -> list:
    return [state[:4] + ("-",) + state[5:] for state in states]


def _first_difference(expected: list, got: list) -> str:
    for index, (a, b) in enumerate(zip(expected, got)):
        if a != b:
            fields = [n for n, (x, y) in enumerate(zip(a, b)) if x != y]
            return f"state {index} differs in fields {fields}: {a!r:.300} vs {b!r:.300}"
    return f"{len(expected)} vs {len(got)} states"


@pytest.mark.slow
def test_fast_and_stock_paths_give_identical_states():
    """>= 500 states over 12 task types: gold sequences, then gold prefixes followed by random actions."""
    rng = np.random.default_rng(20261127)
    fast = ScienceWorldEnv(split="test", max_turns=200)
    episodes = []  # (task_id, actions, states)
    try:
        assert isinstance(fast._simulator(), Simulator) and not isinstance(fast._sim, StockSimulator)
        golds = {task_type: fast.gold_actions(_first_test_task(task_type)) for task_type in TASK_TYPES}
        for task_type in TASK_TYPES:  # the whole gold sequence: every episode ends won
            task_id = _first_test_task(task_type)
            actions, states = _record(fast, task_id, golds[task_type], 0, rng)
            assert states[-1][5] is True and states[-1][6] == 1.0, task_id
            episodes.append((task_id, actions, states))
        round_ = 0
        while sum(len(states) for _, _, states in episodes) < MIN_STATES:
            task_type = TASK_TYPES[round_ % len(TASK_TYPES)]
            gold = golds[task_type]
            actions, states = _record(fast, _first_test_task(task_type), gold[: len(gold) // 2], RANDOM_STEPS, rng)
            episodes.append((_first_test_task(task_type), actions, states))
            round_ += 1
    finally:
        fast.close()
    total = sum(len(states) for _, _, states in episodes)
    assert total >= MIN_STATES and len({task_id for task_id, _, _ in episodes}) >= 10

    stock = ScienceWorldEnv(split="test", max_turns=200, expert=False, exact_stock=True)
    try:
        for task_id, actions, states in episodes:
            got = _replay(stock, task_id, actions)
            assert got == states, f"{task_id}: {_first_difference(states, got)}"
        assert isinstance(stock._sim, StockSimulator)
    finally:
        stock.close()


def test_fast_path_is_independent_of_the_jvms_call_history():
    """Episodes recorded on a fresh JVM replay identically on a JVM with another history, read or not."""
    rng = np.random.default_rng(7)
    tasks = [_first_test_task("find-animal"), _first_test_task("chemistry-mix")]
    fresh = ScienceWorldEnv(split="test", expert=False)
    try:
        recorded = [(task_id, *_record(fresh, task_id, [], 12, rng)) for task_id in tasks]
    finally:
        fresh.close()
    used = ScienceWorldEnv(split="test", expert=False)
    try:
        for task_id in ["boil/21", tasks[1]]:  # another history first
            obs, info = used.reset(options={"task_id": task_id})
            admissible: list[str] = []  # listed at steps 0, 3, 6, 9
            for step in range(10):
                admissible = used._sim.valid_actions() if step % 3 == 0 else admissible
                used.set_info_keys(("admissible_actions",) if step % 2 else ())
                obs, _, terminated, _, info = used.step(admissible[int(rng.integers(len(admissible)))])
                if terminated:
                    break
            used._sim.call("getPossibleObjects")
        for task_id, actions, states in recorded:
            assert _replay(used, task_id, actions, read=False) == _unread(states), task_id  # listing skipped
            assert _replay(used, task_id, actions) == states, task_id
    finally:
        used.close()


def test_stock_path_flags_and_engine_fault():
    before = os.environ.get("JAVA_TOOL_OPTIONS")
    env = ScienceWorldEnv(split="test", expert=False, exact_stock=True)
    task_id = _first_test_task("lifespan-longest-lived")
    try:
        seen_obs, info = env.reset(options={"task_id": task_id})
        seen = (seen_obs, info["admissible_actions"])
        assert isinstance(env._sim, StockSimulator) and type(info) is dict  # listed at every step
        pid = env.jvm_pid
        with open(f"/proc/{pid}/environ", "rb") as handle:
            environ = handle.read().decode(errors="replace")
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read().decode(errors="replace")
        assert all(option in environ for option in REPRODUCIBLE_JAVA_OPTIONS)  # through JAVA_TOOL_OPTIONS
        assert "-Xmx" not in cmdline and "UseSerialGC" not in environ  # otherwise the JVM's default flags
        assert os.environ.get("JAVA_TOOL_OPTIONS") == before  # set only while the stock env launched its JVM
        obs, reward, terminated, _, info = env.step(info["admissible_actions"][0])
        assert isinstance(info["admissible_actions"], list) and info["action_valid"]
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(EngineFault, match=task_id) as caught:
            env.step("look around")
        assert caught.value.task_id == task_id and env.jvm_pid is None
        obs, info = env.reset(options={"task_id": task_id})
        assert env.jvm_pid not in (None, pid) and (obs, info["admissible_actions"]) == seen

        env.step_timeout = 2.0
        pid = env.jvm_pid
        os.kill(pid, signal.SIGSTOP)  # the JVM stops answering: the watchdog kills it
        with pytest.raises(EngineFault, match="timed out after 2 s"):
            env.step("look around")
    finally:
        env.close()
    plain = ScienceWorldEnv(split="test", exact_stock=True, reproducible=False)
    assert plain.engine_version != env.engine_version == ScienceWorldEnv(split="test").engine_version
    assert plain.java_options == () and env.java_options == ()


#: Test variations per task type for the gold-path identity test (69 in all, ~2,300 states): 1-3 per type,
#: the first test variation where it is cheap, variations whose gold sequences pass 100 steps (boil/23,
#: melt/22, freeze/24, change-the-state-of-matter-of/22, inclined-plane-friction-named-surfaces/1038,
#: the two genetics types: 111-148), more where they are short; one for the slowest types per step.
GOLD_VARIATIONS: dict[str, tuple[int, ...]] = {
    "boil": (23, 25),
    "melt": (21, 22),
    "freeze": (24, 28),
    "change-the-state-of-matter-of": (21, 22),
    "use-thermometer": (405, 439, 472),
    "measure-melting-point-known-substance": (327, 354),
    "measure-melting-point-unknown-substance": (243, 281),
    "power-component": (15, 16, 17),
    "power-component-renewable-vs-nonrenewable-energy": (15, 16, 17),
    "test-conductivity": (675, 731),
    "test-conductivity-of-unknown-substances": (450, 487),
    "find-living-thing": (225, 243, 262),
    "find-non-living-thing": (225, 243, 262),
    "find-plant": (225, 243, 262),
    "find-animal": (225, 243, 262),
    "grow-plant": (93,),
    "grow-fruit": (93,),
    "chemistry-mix": (24, 25, 26),
    "chemistry-mix-paint-secondary-color": (27, 28, 29),
    "chemistry-mix-paint-tertiary-color": (27, 28, 29),
    "lifespan-longest-lived": (93, 101, 109),
    "lifespan-shortest-lived": (93, 101, 109),
    "lifespan-longest-lived-then-shortest-lived": (93, 101, 109),
    "identify-life-stages-1": (9, 13),
    "identify-life-stages-2": (6, 7, 8),
    "inclined-plane-determine-angle": (126,),
    "inclined-plane-friction-named-surfaces": (1038, 1385),
    "inclined-plane-friction-unnamed-surfaces": (140, 161),
    "mendelian-genetics-known-plant": (90,),
    "mendelian-genetics-unknown-plant": (360,),
}


def _gold_episode(env: ScienceWorldEnv, task_id: str, gold: list[str], read: bool) -> list[tuple]:
    """Play the gold sequence to the end; per state what a user sees (the listing only when ``read``)."""

    def seen(obs, reward, terminated, truncated, info) -> tuple:
        return (
            obs,
            reward,
            terminated,
            truncated,
            info["score"],
            info["won"],
            info["scienceworld"]["score"],
            info["anchor_obs"],
            info["admissible_actions"] if read else "-",
        )

    env.set_info_keys(None if read else ())
    obs, info = env.reset(options={"task_id": task_id})
    states = [seen(obs, 0.0, False, False, info)]
    for action in gold:
        obs, reward, terminated, truncated, info = env.step(action)
        states.append(seen(obs, reward, terminated, truncated, info))
        if terminated or truncated:
            break
    return states


@pytest.mark.slow
def test_gold_paths_of_all_task_types_are_identical_to_stock_read_or_not():
    """Every task type's gold paths to the end (69 test variations, see GOLD_VARIATIONS; 1-3 per type), on
    the fast path with the listing
    read every step and never read, against ``exact_stock=True``: observation, reward, done flags, scores,
    won and anchor at every state (and the listing itself when read). The stock episode runs in a thread
    beside the two fast ones (two JVMs). About 6 minutes on 2 busy cores."""
    assert set(GOLD_VARIATIONS) == set(sw_tasks.TASK_TYPES)
    fast = ScienceWorldEnv(split="test", max_turns=400)
    stock = ScienceWorldEnv(split="test", max_turns=400, expert=False, exact_stock=True)
    started, steps = time.monotonic(), 0
    try:
        with ThreadPoolExecutor(1) as pool:
            for task_type, variations in GOLD_VARIATIONS.items():
                for variation in variations:
                    task_id = f"{task_type}/{variation}"
                    assert task_id in fast.task_ids
                    gold = fast.gold_actions(task_id)
                    expected = pool.submit(_gold_episode, stock, task_id, gold, True)
                    read = _gold_episode(fast, task_id, gold, read=True)
                    unread = _gold_episode(fast, task_id, gold, read=False)
                    expected = expected.result()
                    assert expected[-1][5] is True, f"{task_id}: the gold sequence did not win on stock"
                    assert read == expected, f"{task_id}, read every step: {_first_difference(expected, read)}"
                    unread_expected = [state[:-1] + ("-",) for state in expected]
                    assert unread == unread_expected, (
                        f"{task_id}, never read: {_first_difference(unread_expected, unread)}"
                    )
                    steps += len(expected)
    finally:
        fast.close()
        stock.close()
    print(f"{steps} states per pattern, {time.monotonic() - started:.0f} s")


def test_skipping_the_listing_does_not_change_a_genetics_episode():
    """The bug this family had: on a genetics task, the same gold actions gave other observations and scores
    from step ~50 on when the listing was never read (the listing's random draws were skipped). The first 50
    gold actions of mendelian-genetics-known-plant/0 give identical states read or not; without the draws
    (the old fast path) they do not (from step 47), so this test fails for that bug."""
    task_id = "mendelian-genetics-known-plant/0"
    env = ScienceWorldEnv(split="train", max_turns=200)  # above its 145 gold actions: no warning
    try:
        gold = env.gold_actions(task_id)[:50]
        read = [state[:-1] for state in _gold_episode(env, task_id, gold, read=True)]
        unread = [state[:-1] for state in _gold_episode(env, task_id, gold, read=False)]
        assert len(read) == 51 and unread == read, _first_difference(read, unread)
        sim = env._sim
        # the old fast path: a state not listed draws nothing (no listing in the JVM before the next step)
        sim._draw_as_listing = lambda: None
        old = [state[:-1] for state in _gold_episode(env, task_id, gold, read=False)]
        assert old != read and old[:40] == read[:40]  # diverges late, as the bug did
    finally:
        env.close()


def _next_random(env: ScienceWorldEnv) -> int:
    """The simulator's next global random number (draws it: call on both envs compared, at the same point)."""
    klass = env._sim.gateway.jvm.java.lang.Class
    return klass.forName("scala.util.Random$").getField("MODULE$").get(None).nextInt()


@pytest.mark.parametrize("listed", [True, False], ids=["current-state-listed", "current-state-not-listed"])
def test_planning_gold_mid_episode_restores_the_random_state(tmp_path, monkeypatch, listed):
    """Planning the gold sequence mid-episode reloads the task and replays the episode; the replay must leave
    the simulator's random number generator where the episode had it (listing draws included)."""
    monkeypatch.setenv("AGENTGYM_CACHE", str(tmp_path))  # nothing cached: asking for the expert action plans
    task_id, actions = _first_test_task("find-animal"), ["look around", "open door to hallway", "xyzzy"]
    planned = ScienceWorldEnv(split="test")
    plain = ScienceWorldEnv(split="test", expert=False)
    try:
        infos = []
        for env in (planned, plain):
            env.set_info_keys(["admissible_actions"])  # the first state listed
            env.reset(options={"task_id": task_id})
            env.set_info_keys(())
            for action in actions[:-1]:
                env.step(action)
            env.set_info_keys((["admissible_actions"] if listed else []) + ["expert_action"])
            infos.append(env.step(actions[-1])[4])  # listed (or not), then the expert action planned
        assert infos[0]["expert_action"] is None  # strayed; planning (reload + replay) happened here
        assert list(tmp_path.rglob("gold.json"))
        assert _next_random(planned) == _next_random(plain)  # not listed: both still owe the listing's draws
        after = [env.step("go to hallway")[0] for env in (planned, plain)]
        assert after[0] == after[1] and _next_random(planned) == _next_random(plain)
    finally:
        planned.close()
        plain.close()
