"""ALFWorld games generated from the ``alfworld`` wheel's floor plans, in ALFWorld's own file format.

The official ALFWorld games (``json_2.1.1``) come from a download that is not available offline. The
wheel ships what is needed to make games of the same kind: the PDDL domain (``alfred.pddl``), the text
grammar (``alfred.twl2``), the receptacle layouts of the 120 AI2-THOR floor plans
(``gen/layouts/FloorPlan*-{objects,openable}.json``), the object/receptacle compatibility table
(``gen/constants.py``) and the goal library (``gen/goal_library.py``). This module turns a task id

    ``<floor plan>/<task type>/<seed>``, e.g. ``FloorPlan12/pick_heat_then_place_in_recep/3``

into a game folder with ``initial_state.pddl``, ``traj_data.json`` and ``game.tw-pddl``, exactly as
``alfworld-generate`` lays them out, so ALFWorld's own ``AlfredTWEnv`` and handcoded expert read them.

Games are **solvable by construction**: the generator places every object itself, so it writes the
walkthrough (``go to``/``open``/``take``/``clean|heat|cool``/``move``/``use``) along with the game, and it
never places an instance of the goal object in a receptacle of the goal type (no goal starts satisfied
or half satisfied). Generation is deterministic (a private ``random.Random`` seeded from the task id,
sorted inputs, stable JSON): the same task id gives byte-identical files, generated on first use in a
few milliseconds and cached under ``$AGENTGYM_CACHE/alfworld/<generator key>/`` (the key names
:data:`GENERATOR_VERSION` and the alfworld version, whose domain and grammar are copied into each game).

Splits (sizes and per-type counts as in the official ALFWorld release):

* ``train`` (3,553) and ``valid_seen`` (140) on the 96 training floor plans (7-30, 207-230, 307-330,
  407-430; ALFRED's ``TRAIN_SCENE_NUMBERS``), on disjoint seeds;
* ``valid_unseen`` (134) on the 24 held-out floor plans (1-6, 201-206, 301-306, 401-406), which no
  other split uses;
* RLVMR-style generalization levels: ``L0`` (valid_seen tasks of the five seen task types),
  ``L1`` (valid_unseen tasks of the seen types: unseen floor plans), ``L2`` (the held-out task type,
  :data:`L2_HELD_OUT`, from valid_seen and valid_unseen), with ``train_L`` (train without the held-out
  type) to train on.

Task types are drawn only in the room kinds ALFRED allows them (``constants.GOALS_VALID``) and only on
floor plans that have what they need (a sink basin to clean, a microwave to heat, a fridge to cool, a
desk lamp on a desk, side table or dresser to look at an object in the light).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import types
from pathlib import Path
from typing import Any

from agentgym.cache import cache_root, cached_folder
from agentgym.tasks import Task

#: Bump whenever the generated files change for a given task id (it keys the cache and every task definition).
GENERATOR_VERSION = 1

TASK_TYPES: tuple[str, ...] = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)

#: The task type held out of ``train_L`` and evaluated in ``L2``.
L2_HELD_OUT = "pick_two_obj_and_place"

#: Tasks per type in each base split: the official ALFWorld 0.4 counts (train 3,553; seen 140; unseen 134).
SPLIT_COUNTS: dict[str, dict[str, int]] = {
    "train": {
        "pick_and_place_simple": 790,
        "look_at_obj_in_light": 308,
        "pick_clean_then_place_in_recep": 650,
        "pick_heat_then_place_in_recep": 459,
        "pick_cool_then_place_in_recep": 533,
        "pick_two_obj_and_place": 813,
    },
    "valid_seen": {
        "pick_and_place_simple": 35,
        "look_at_obj_in_light": 13,
        "pick_clean_then_place_in_recep": 27,
        "pick_heat_then_place_in_recep": 16,
        "pick_cool_then_place_in_recep": 25,
        "pick_two_obj_and_place": 24,
    },
    "valid_unseen": {
        "pick_and_place_simple": 24,
        "look_at_obj_in_light": 18,
        "pick_clean_then_place_in_recep": 31,
        "pick_heat_then_place_in_recep": 23,
        "pick_cool_then_place_in_recep": 21,
        "pick_two_obj_and_place": 17,
    },
}

#: First seed of each base split (seeds of one split never reach the next split's range).
_SEED_BASE = {"train": 0, "valid_seen": 100_000, "valid_unseen": 200_000}

#: Receptacle types a desk lamp may stand on (the lamp is not in ALFRED's compatibility table).
_LAMP_RECEPTACLES = ("Desk", "SideTable", "Dresser")
#: The appliance each state-change task type needs, and the receptacle the goal must not be.
_APPLIANCE = {
    "pick_clean_then_place_in_recep": ("SinkBasin", "Cleanable", "clean"),
    "pick_heat_then_place_in_recep": ("Microwave", "Heatable", "heat"),
    "pick_cool_then_place_in_recep": ("Fridge", "Coolable", "cool"),
}
#: Weights of 1, 2 and 3 instances of each object type (ALFRED allows up to 3; mostly 1 keeps games small
#: enough for the engine to load in well under a second).
_INSTANCE_WEIGHTS = (4, 1, 0)
#: Domain constants the PDDL actions name; declared in every problem.
_DOMAIN_RTYPES = ("SinkBasin", "Microwave", "Fridge")
_DOMAIN_OTYPES = ("Knife", "ButterKnife")


# ---------------------------------------------------------------------------------------------- versions
@functools.cache
def alfworld_version() -> str:
    from importlib.metadata import version

    return version("alfworld")


@functools.cache
def textworld_version() -> str:
    from importlib.metadata import version

    return version("textworld")


@functools.cache
def _wheel_file(relative: str) -> str:
    import alfworld

    return (Path(alfworld.__file__).parent / relative).read_text()


def action_vocabulary() -> str:
    """How the installed grammar phrases putting an object down (``move X to Y`` since alfworld 0.3,
    ``put X in/on Y`` before): read from the wheel's ``alfred.twl2``, not assumed."""
    grammar = _wheel_file("data/alfred.twl2")
    return "move {o} to {r}" if '"move {o} to {r}"' in grammar else "put {o} in/on {r}"


# ---------------------------------------------------------------------------------------------- scenes
@functools.cache
def _constants() -> Any:
    import alfworld.gen.constants as constants

    return constants


def _room_kind(scene: int) -> str:
    return {0: "Kitchen", 2: "LivingRoom", 3: "Bedroom", 4: "Bathroom"}[scene // 100]


def train_floor_plans() -> list[int]:
    return sorted(_constants().TRAIN_SCENE_NUMBERS)


def unseen_floor_plans() -> list[int]:
    return sorted(_constants().TEST_SCENE_NUMBERS)


class _Scene:
    """The receptacles (with agent poses) and placeable object types of one floor plan."""

    def __init__(self, number: int):
        import alfworld

        c = _constants()
        layouts = Path(alfworld.__file__).parent / "gen" / "layouts"
        openable = json.loads((layouts / f"FloorPlan{number}-openable.json").read_text())
        present = set(json.loads((layouts / f"FloorPlan{number}-objects.json").read_text()))
        self.number = number
        self.room = _room_kind(number)
        movable = set(c.MOVABLE_RECEPTACLES)
        #: [(thor id, type, location name)] sorted by id; receptacles from openable.json keep their ids.
        self.receptacles: list[tuple[str, str, str]] = []
        used_locations: set[str] = set()
        for thor_id, pose in sorted(openable.items()):
            parts = thor_id.split("|")
            rtype = parts[4] if len(parts) == 5 else parts[0]
            if rtype not in c.VAL_RECEPTACLE_OBJECTS or rtype in movable:
                continue
            self.receptacles.append((thor_id, rtype, _location(pose, used_locations)))
        # receptacle types the scene has (objects.json) but whose instances openable.json omits
        have = {rtype for _, rtype, _ in self.receptacles}
        extra = sorted(
            t for t in present if t in c.VAL_RECEPTACLE_OBJECTS and t not in movable and t not in have
        )
        for index, rtype in enumerate(extra):
            x, z = -3.0 + 0.25 * index, 3.0 + 0.25 * (number % 7)
            pose = [x, z, 90 * (index % 4), 0]
            thor_id = f"{rtype}|{x:+06.2f}|+00.90|{z:+06.2f}"
            if rtype.endswith("Basin"):  # spelled like THOR's basins, so the demangler names it "<x>basin"
                thor_id = f"{rtype[:-5]}|{x:+06.2f}|+00.90|{z:+06.2f}|{rtype}"
            self.receptacles.append((thor_id, rtype, _location(pose, used_locations)))
        self.receptacles.sort()
        self.start_location = _location([0.25 * (number % 5), -0.25 * (number % 3), 0, 30], used_locations)
        self.recep_types = sorted({rtype for _, rtype, _ in self.receptacles})
        placeable = set().union(*c.VAL_RECEPTACLE_OBJECTS.values())
        self.object_types = sorted(
            t
            for t in present
            if t in placeable
            and t not in c.VAL_RECEPTACLE_OBJECTS.keys() - movable
            and "Sliced" not in t
            and any(t in c.VAL_RECEPTACLE_OBJECTS[r] for r in self.recep_types)
        )
        self.has_lamp = "DeskLamp" in present and any(r in self.recep_types for r in _LAMP_RECEPTACLES)

    def holders(self, otype: str, exclude_type: str | None = None) -> list[tuple[str, str, str]]:
        """Receptacle instances that can hold ``otype`` (optionally not of type ``exclude_type``)."""
        c = _constants()
        return [
            r for r in self.receptacles if otype in c.VAL_RECEPTACLE_OBJECTS[r[1]] and r[1] != exclude_type
        ]

    def goal_pairs(self, task_type: str) -> list[tuple[str, str]]:
        """Feasible (object type, target type) pairs of a task type here: ``[(otype, rtype or lamp)]``."""
        c = _constants()
        if self.room not in c.GOALS_VALID[task_type]:
            return []
        if task_type == "look_at_obj_in_light":
            if not self.has_lamp:
                return []
            return [(o, "DeskLamp") for o in self.object_types if self.holders(o)]
        pairs = []
        appliance = _APPLIANCE.get(task_type)
        if appliance is not None and appliance[0] not in self.recep_types:
            return []
        for otype in self.object_types:
            if appliance is not None and otype not in c.VAL_ACTION_OBJECTS[appliance[1]]:
                continue
            for rtype in self.recep_types:
                if otype not in c.VAL_RECEPTACLE_OBJECTS[rtype] or rtype == (appliance or ("",))[0]:
                    continue
                if self.holders(otype, exclude_type=rtype):  # somewhere else to start from
                    pairs.append((otype, rtype))
        return pairs


def _location(pose: list[float], used: set[str]) -> str:
    """A PDDL location name from an agent pose (x, z in 0.25 m grid steps, rotation/90, horizon),
    made unique: receptacles that share a pose in the layout get the next free horizon."""
    x, z, rotation, horizon = (
        round(pose[0] / 0.25),
        round(pose[1] / 0.25),
        int(pose[2]) // 90 % 4,
        int(pose[3]),
    )
    while True:
        name = f"loc|{x}|{z}|{rotation}|{horizon}"
        if name not in used:
            used.add(name)
            return name
        horizon += 1


@functools.cache
def scene(number: int) -> _Scene:
    return _Scene(number)


@functools.cache
def feasible_floor_plans(task_type: str, pool: str) -> list[int]:
    """Floor plans of ``pool`` ("train" or "unseen") where ``task_type`` can be generated."""
    plans = train_floor_plans() if pool == "train" else unseen_floor_plans()
    return [number for number in plans if scene(number).goal_pairs(task_type)]


# ---------------------------------------------------------------------------------------------- splits
def task_id(floor_plan: int, task_type: str, seed: int) -> str:
    return f"FloorPlan{floor_plan}/{task_type}/{seed}"


def parse_task_id(value: str) -> tuple[int, str, int]:
    plan, task_type, seed = value.split("/")
    return int(plan.removeprefix("FloorPlan")), task_type, int(seed)


@functools.cache
def _base_split(name: str) -> tuple[tuple[int, str, int], ...]:
    pool = "unseen" if name == "valid_unseen" else "train"
    triples = []
    for task_type in TASK_TYPES:
        plans = feasible_floor_plans(task_type, pool)
        for k in range(SPLIT_COUNTS[name][task_type]):
            triples.append((plans[k % len(plans)], task_type, _SEED_BASE[name] + k // len(plans)))
    return tuple(triples)


#: Every split name -> how it is made. ``test`` and ``valid`` are the contract's names for
#: ``valid_unseen`` and ``valid_seen``.
SPLITS: tuple[str, ...] = (
    "train",
    "valid_seen",
    "valid_unseen",
    "valid",
    "test",
    "train_L",
    "L0",
    "L1",
    "L2",
)


def split_triples(name: str) -> list[tuple[int, str, int]]:
    """The (floor plan, task type, seed) triples of a split, in a stable order."""
    alias = {"valid": "valid_seen", "test": "valid_unseen"}
    if name in _SEED_BASE or name in alias:
        return list(_base_split(alias.get(name, name)))
    seen = [t for t in _base_split("valid_seen")]
    unseen = [t for t in _base_split("valid_unseen")]
    if name == "train_L":
        return [t for t in _base_split("train") if t[1] != L2_HELD_OUT]
    if name == "L0":
        return [t for t in seen if t[1] != L2_HELD_OUT]
    if name == "L1":
        return [t for t in unseen if t[1] != L2_HELD_OUT]
    if name == "L2":
        return [t for t in seen + unseen if t[1] == L2_HELD_OUT]
    raise KeyError(name)


def split_tasks(name: str) -> list[Task]:
    """The generated tasks of a split; each definition pins the generator and engine versions."""
    versions = {"generator": GENERATOR_VERSION, "alfworld": alfworld_version()}
    return [
        Task(
            task_id(plan, task_type, seed),
            {**versions, "floor_plan": plan, "task_type": task_type, "seed": seed},
        )
        for plan, task_type, seed in split_triples(name)
    ]


# ---------------------------------------------------------------------------------------------- generator
def _mangle(thor_id: str) -> str:
    """ALFRED's PDDL spelling of a THOR id (``Cabinet|+00.68|...`` -> ``Cabinet_bar__plus_00_dot_68...``)."""
    for char, word in (("|", "_bar_"), ("-", "_minus_"), ("+", "_plus_"), (".", "_dot_"), (",", "_comma_")):
        thor_id = thor_id.replace(char, word)
    return thor_id


def _display_names(pddl_ids: list[str]) -> dict[str, str]:
    """The names ALFWorld's demangler gives these ids in play ("cabinet 3"), computed with its own code."""
    from alfworld.agents.utils.misc import Demangler

    infos = {name.lower(): types.SimpleNamespace(id=name.lower()) for name in pddl_ids}
    demangler = Demangler(game_infos=infos)
    return {name: demangler.demangle_alfred_name(name.lower()).strip() for name in pddl_ids}


def _rng(floor_plan: int, task_type: str, seed: int) -> random.Random:
    digest = hashlib.sha256(
        f"agentgym-alfworld/{GENERATOR_VERSION}/{floor_plan}/{task_type}/{seed}".encode()
    ).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def generate(floor_plan: int, task_type: str, seed: int) -> dict[str, Any]:
    """Make one game: ``{"traj_data": dict, "initial_state": str, "game": dict}`` (``game`` is the
    ``game.tw-pddl`` content, with ``solvable`` and the generator's ``walkthrough``)."""
    import alfworld.gen.goal_library as goal_library

    c = _constants()
    here = scene(floor_plan)
    rng = _rng(floor_plan, task_type, seed)
    pairs = here.goal_pairs(task_type)
    if not pairs:
        raise ValueError(f"task type {task_type!r} cannot be generated on FloorPlan{floor_plan}")
    target_obj, target_recep = rng.choice(pairs)
    look = task_type == "look_at_obj_in_light"

    # ---- place objects: 1-3 instances of each placeable type, targets never in a target-type receptacle
    taken: set[str] = set()
    objects: list[tuple[str, str, tuple[str, str, str]]] = []  # (thor id, type, receptacle)
    for otype in here.object_types:
        count = rng.choices((1, 2, 3), weights=_INSTANCE_WEIGHTS)[0]
        if otype == target_obj and task_type == "pick_two_obj_and_place":
            count = max(count, 2)
        exclude = target_recep if otype == target_obj and not look else None
        holders = here.holders(otype, exclude_type=exclude)
        if not holders:
            continue
        for _ in range(count):
            while True:
                x, y, z = rng.uniform(-3, 3), rng.uniform(0, 2), rng.uniform(-3, 3)
                thor_id = f"{otype}|{x:+06.2f}|{y:+06.2f}|{z:+06.2f}"
                if thor_id not in taken:
                    break
            taken.add(thor_id)
            objects.append((thor_id, otype, rng.choice(holders)))
    lamp = None
    if look:
        stands = [r for r in here.receptacles if r[1] in _LAMP_RECEPTACLES]
        lamp = (
            f"DeskLamp|{rng.uniform(-3, 3):+06.2f}|+00.95|{rng.uniform(-3, 3):+06.2f}",
            "DeskLamp",
            rng.choice(stands),
        )
        objects.append(lamp)
    objects.sort()

    # ---- names as the engine will show them
    pddl = {thor_id: _mangle(thor_id) for thor_id, _, _ in here.receptacles}
    pddl.update({thor_id: _mangle(thor_id) for thor_id, _, _ in objects})
    shown = _display_names(sorted(pddl.values()))
    name = {thor_id: shown[mangled] for thor_id, mangled in pddl.items()}

    # ---- walkthrough: fetch each target instance and bring it where the goal wants it
    targets = [o for o in objects if o[1] == target_obj]
    rng.shuffle(targets)
    targets = targets[: 2 if task_type == "pick_two_obj_and_place" else 1]
    openable = set(c.OPENABLE_CLASS_LIST)
    opened: set[str] = set()
    walkthrough: list[str] = []

    at: list[str] = [""]  # the receptacle the agent stands at

    def go(recep_id: str) -> None:
        if at[0] != recep_id:
            walkthrough.append(f"go to {name[recep_id]}")
            at[0] = recep_id

    def visit(recep: tuple[str, str, str]) -> None:
        go(recep[0])
        if recep[1] in openable and recep[0] not in opened:
            walkthrough.append(f"open {name[recep[0]]}")
            opened.add(recep[0])

    goal_recep = None if look else rng.choice([r for r in here.receptacles if r[1] == target_recep])
    for thor_id, _, source in targets:
        visit(source)
        walkthrough.append(f"take {name[thor_id]} from {name[source[0]]}")
        if task_type in _APPLIANCE:
            appliance_type, _, verb = _APPLIANCE[task_type]
            appliance = next(r for r in here.receptacles if r[1] == appliance_type)
            go(appliance[0])
            walkthrough.append(f"{verb} {name[thor_id]} with {name[appliance[0]]}")
        if look:
            assert lamp is not None
            go(lamp[2][0])
            walkthrough.append(f"use {name[lamp[0]]}")
        else:
            assert goal_recep is not None
            visit(goal_recep)
            walkthrough.append(f"move {name[thor_id]} to {name[goal_recep[0]]}")

    # ---- the PDDL problem
    params = {
        "object_target": target_obj,
        "parent_target": "" if look else target_recep,
        "toggle_target": "DeskLamp" if look else "",
        "mrecep_target": "",
        "object_sliced": False,
    }
    goal_entry = goal_library.gdict[task_type]
    fill = {"obj": target_obj, "recep": target_recep, "toggle": "DeskLamp", "mrecep": ""}
    goal_pddl = goal_entry["pddl"].replace("#", "-").format(**fill)
    template = rng.choice(goal_entry["templates"])
    goal_text = template.format(**{k: v.lower() for k, v in fill.items()})
    problem = _problem_text(floor_plan, task_type, seed, here, objects, pddl, goal_pddl)
    grammar = _wheel_file("data/alfred.twl2").replace("UNKNOWN GOAL", goal_text)
    trial = f"trial_T{GENERATOR_VERSION:02d}{floor_plan:04d}{TASK_TYPES.index(task_type)}{seed:07d}"
    traj_data = {
        "task_type": task_type,
        "pddl_params": params,
        "scene": {"floor_plan": f"FloorPlan{floor_plan}", "scene_num": floor_plan, "room": here.room},
        "task_id": trial,
        "turk_annotations": {
            "anns": [{"task_desc": goal_text, "assignment_id": "agentgym", "high_descs": []}]
        },
        "agentgym": {
            "task_id": task_id(floor_plan, task_type, seed),
            "generator_version": GENERATOR_VERSION,
            "alfworld": alfworld_version(),
            "goal": goal_text,
        },
    }
    game = {
        "pddl_domain": _wheel_file("data/alfred.pddl"),
        "grammar": grammar,
        "pddl_problem": problem,
        "solvable": True,
        "walkthrough": walkthrough,
    }
    return {"traj_data": traj_data, "initial_state": problem, "game": game, "trial": trial}


def _problem_text(
    floor_plan: int,
    task_type: str,
    seed: int,
    here: _Scene,
    objects: list[tuple[str, str, tuple[str, str, str]]],
    pddl: dict[str, str],
    goal_pddl: str,
) -> str:
    c = _constants()
    otypes = sorted({o[1] for o in objects} | set(_DOMAIN_OTYPES))
    rtypes = sorted({r[1] for r in here.receptacles} | set(_DOMAIN_RTYPES))
    locations = sorted({r[2] for r in here.receptacles} | {here.start_location})
    lines = [
        f"(define (problem plan_agentgym_{floor_plan}_{task_type}_{seed})",
        "(:domain alfred)",
        "(:objects",
        "agent1 - agent",
    ]
    lines += [f"        {t}Type - otype" for t in otypes]
    lines += [f"        {t}Type - rtype" for t in rtypes]
    lines += [f"        {pddl[o[0]]} - object" for o in objects]
    lines += [f"        {pddl[r[0]]} - receptacle" for r in here.receptacles]
    lines += [f"        {_mangle(loc)} - location" for loc in locations]
    lines += ["        )", "", "", "(:init", ""]
    lines.append(f"        (atLocation agent1 {_mangle(here.start_location)})")
    for thor_id, rtype, location in here.receptacles:
        lines.append(f"        (receptacleType {pddl[thor_id]} {rtype}Type)")
        lines.append(f"        (receptacleAtLocation {pddl[thor_id]} {_mangle(location)})")
        if rtype in c.OPENABLE_CLASS_LIST:
            lines.append(f"        (openable {pddl[thor_id]})")
    for thor_id, otype, (recep_id, _, location) in objects:
        lines.append(f"        (objectType {pddl[thor_id]} {otype}Type)")
        lines.append(f"        (inReceptacle {pddl[thor_id]} {pddl[recep_id]})")
        lines.append(f"        (objectAtLocation {pddl[thor_id]} {_mangle(location)})")
        if otype == "DeskLamp":
            lines.append(f"        (toggleable {pddl[thor_id]})")
            continue
        lines.append(f"        (pickupable {pddl[thor_id]})")
        if otype in c.MOVABLE_RECEPTACLES:
            lines.append(f"        (isReceptacleObject {pddl[thor_id]})")
        for flag, group in (
            ("cleanable", "Cleanable"),
            ("heatable", "Heatable"),
            ("coolable", "Coolable"),
            ("sliceable", "Sliceable"),
        ):
            if otype in c.VAL_ACTION_OBJECTS[group]:
                lines.append(f"        ({flag} {pddl[thor_id]})")
    for rtype in rtypes:
        for otype in otypes:
            if otype in c.VAL_RECEPTACLE_OBJECTS.get(rtype, ()):
                lines.append(f"        (canContain {rtype}Type {otype}Type)")
    lines += ["        )", "", ""]
    return "\n".join(lines) + goal_pddl.strip("\n") + "\n"


# ---------------------------------------------------------------------------------------------- cache
def _cache_dir() -> Path:
    return cache_root() / "alfworld" / f"gen{GENERATOR_VERSION}-alfworld{alfworld_version()}"


def write_game(folder: Path, made: dict[str, Any]) -> None:
    """Write one generated game's three files into ``folder`` (which must exist)."""
    (folder / "initial_state.pddl").write_text(made["initial_state"])
    (folder / "traj_data.json").write_text(json.dumps(made["traj_data"], indent=2, sort_keys=True) + "\n")
    (folder / "game.tw-pddl").write_text(json.dumps(made["game"], indent=1) + "\n")


def game_path(value: str) -> Path:
    """The ``game.tw-pddl`` of a generated task id, generated and cached on first use (atomic, so
    concurrent processes never see a partial game)."""
    floor_plan, task_type, seed = parse_task_id(value)
    final = _cache_dir() / f"FloorPlan{floor_plan}" / task_type / str(seed)
    return cached_folder(final, lambda folder: write_game(folder, generate(floor_plan, task_type, seed)), "game.tw-pddl")


def export_official_layout(split: str, destination: str | os.PathLike, limit: int | None = None) -> Path:
    """Write a split's generated games as an ``alfworld-download`` tree: ``<destination>/json_2.1.1/<split>/
    <task_type>-<Object>-<Mrecep>-<Recep>-<scene>/<trial>/{traj_data.json, initial_state.pddl, game.tw-pddl}``
    plus ``logic/alfred.{pddl,twl2}``. ALFWorld's own ``AlfredTWEnv`` and agentgym's ``data_dir=`` read it."""
    root = Path(destination)
    official = {"valid": "valid_seen", "test": "valid_unseen"}.get(split, split)
    for plan, task_type, seed in split_triples(split)[:limit]:
        made = generate(plan, task_type, seed)
        p = made["traj_data"]["pddl_params"]
        folder_name = (
            f"{task_type}-{p['object_target']}-None-{p['parent_target'] or p['toggle_target']}-{plan}"
        )
        folder = root / "json_2.1.1" / official / folder_name / made["trial"]
        folder.mkdir(parents=True, exist_ok=True)
        write_game(folder, made)
    (root / "logic").mkdir(parents=True, exist_ok=True)
    (root / "logic" / "alfred.pddl").write_text(_wheel_file("data/alfred.pddl"))
    (root / "logic" / "alfred.twl2").write_text(_wheel_file("data/alfred.twl2"))
    return root
