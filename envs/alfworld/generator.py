"""One ALFWorld game from a floor plan, a task type and a seed, in ALFWorld's own file format.

A task id ``<floor plan>/<task type>/<seed>``, e.g. ``FloorPlan12/pick_heat_then_place_in_recep/3``, becomes a
game folder with ``initial_state.pddl``, ``traj_data.json`` and ``game.tw-pddl``, exactly as
``alfworld-generate`` lays them out, so ALFWorld's own ``AlfredTWEnv`` and handcoded expert read them.

Games are **solvable by construction**: the generator places every object itself, so it writes the
walkthrough (``go to``/``open``/``take``/``clean|heat|cool``/``move``/``use``) along with the game, and it
never places an instance of the goal object in a receptacle of the goal type (no goal starts satisfied
or half satisfied). Generation is deterministic (a private ``random.Random`` seeded from the task id,
sorted inputs, stable JSON): the same task id gives byte-identical files, made in a few milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import random
import types
from pathlib import Path
from typing import Any

from agentgym.envs.alfworld.floorplans import (
    APPLIANCE,
    LAMP_RECEPTACLES,
    TASK_TYPES,
    Scene,
    alfworld_version,
    constants,
    scene,
    wheel_file,
)

#: Bump whenever the generated files change for a given task id (it keys the cache and every task definition).
GENERATOR_VERSION = 1
#: Weights of 1, 2 and 3 instances of each object type (ALFRED allows up to 3; mostly 1 keeps games small
#: enough for the engine to load in well under a second).
_INSTANCE_WEIGHTS = (4, 1, 0)
#: Domain constants the PDDL actions name; declared in every problem.
_DOMAIN_RTYPES = ("SinkBasin", "Microwave", "Fridge")
_DOMAIN_OTYPES = ("Knife", "ButterKnife")


def task_id(floor_plan: int, task_type: str, seed: int) -> str:
    """The task id of a generated game: ``FloorPlan<n>/<task type>/<seed>``."""
    return f"FloorPlan{floor_plan}/{task_type}/{seed}"


def parse_task_id(value: str) -> tuple[int, str, int]:
    plan, task_type, seed = value.split("/")
    return int(plan.removeprefix("FloorPlan")), task_type, int(seed)


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
    digest = hashlib.sha256(f"agentgym-alfworld/{GENERATOR_VERSION}/{floor_plan}/{task_type}/{seed}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def generate(floor_plan: int, task_type: str, seed: int) -> dict[str, Any]:
    """Make one game: ``{"traj_data": dict, "initial_state": str, "game": dict}`` (``game`` is the
    ``game.tw-pddl`` content, with ``solvable`` and the generator's ``walkthrough``)."""
    import alfworld.gen.goal_library as goal_library

    c = constants()
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
        stands = [r for r in here.receptacles if r[1] in LAMP_RECEPTACLES]
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
        if task_type in APPLIANCE:
            appliance_type, _, verb = APPLIANCE[task_type]
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
    grammar = wheel_file("data/alfred.twl2").replace("UNKNOWN GOAL", goal_text)
    trial = f"trial_T{GENERATOR_VERSION:02d}{floor_plan:04d}{TASK_TYPES.index(task_type)}{seed:07d}"
    traj_data = {
        "task_type": task_type,
        "pddl_params": params,
        "scene": {"floor_plan": f"FloorPlan{floor_plan}", "scene_num": floor_plan, "room": here.room},
        "task_id": trial,
        "turk_annotations": {"anns": [{"task_desc": goal_text, "assignment_id": "agentgym", "high_descs": []}]},
        "agentgym": {
            "task_id": task_id(floor_plan, task_type, seed),
            "generator_version": GENERATOR_VERSION,
            "alfworld": alfworld_version(),
            "goal": goal_text,
        },
    }
    game = {
        "pddl_domain": wheel_file("data/alfred.pddl"),
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
    here: Scene,
    objects: list[tuple[str, str, tuple[str, str, str]]],
    pddl: dict[str, str],
    goal_pddl: str,
) -> str:
    c = constants()
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


def write_game(folder: Path, made: dict[str, Any]) -> None:
    """Write one generated game's three files into ``folder`` (which must exist)."""
    (folder / "initial_state.pddl").write_text(made["initial_state"])
    (folder / "traj_data.json").write_text(json.dumps(made["traj_data"], indent=2, sort_keys=True) + "\n")
    (folder / "game.tw-pddl").write_text(json.dumps(made["game"], indent=1) + "\n")
