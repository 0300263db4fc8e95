"""The ``alfworld`` wheel's floor plans and data files, read for the game generator (:mod:`.generator`).

The wheel ships the PDDL domain (``alfred.pddl``), the text grammar (``alfred.twl2``), the receptacle layouts
of the 120 AI2-THOR floor plans (``gen/layouts/FloorPlan*-{objects,openable}.json``), the object/receptacle
compatibility table (``gen/constants.py``) and the goal library. :class:`Scene` reads one floor plan's
receptacles (with agent poses) and placeable object types, and says which goals of each of the six task types
it can hold: task types only in the room kinds ALFRED allows them (``constants.GOALS_VALID``) and only where
the floor plan has what they need (a sink basin to clean, a microwave to heat, a fridge to cool, a desk lamp
on a desk, side table or dresser to look at an object in the light).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

#: ALFRED's six task types, as ``traj_data.json`` names them.
TASK_TYPES: tuple[str, ...] = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)

#: Receptacle types a desk lamp may stand on (the lamp is not in ALFRED's compatibility table).
LAMP_RECEPTACLES = ("Desk", "SideTable", "Dresser")
#: The appliance each state-change task type needs, and the receptacle the goal must not be.
APPLIANCE = {
    "pick_clean_then_place_in_recep": ("SinkBasin", "Cleanable", "clean"),
    "pick_heat_then_place_in_recep": ("Microwave", "Heatable", "heat"),
    "pick_cool_then_place_in_recep": ("Fridge", "Coolable", "cool"),
}


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
def wheel_file(relative: str) -> str:
    import alfworld

    return (Path(alfworld.__file__).parent / relative).read_text()


def action_vocabulary() -> str:
    """How the installed grammar phrases putting an object down (``move X to Y`` since alfworld 0.3,
    ``put X in/on Y`` before): read from the wheel's ``alfred.twl2``, not assumed."""
    grammar = wheel_file("data/alfred.twl2")
    return "move {o} to {r}" if '"move {o} to {r}"' in grammar else "put {o} in/on {r}"


# ---------------------------------------------------------------------------------------------- scenes
@functools.cache
def constants() -> Any:
    import alfworld.gen.constants as constants

    return constants


def _room_kind(scene: int) -> str:
    return {0: "Kitchen", 2: "LivingRoom", 3: "Bedroom", 4: "Bathroom"}[scene // 100]


def train_floor_plans() -> list[int]:
    return sorted(constants().TRAIN_SCENE_NUMBERS)


def unseen_floor_plans() -> list[int]:
    return sorted(constants().TEST_SCENE_NUMBERS)


class Scene:
    """The receptacles (with agent poses) and placeable object types of one floor plan."""

    def __init__(self, number: int):
        import alfworld

        c = constants()
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
        extra = sorted(t for t in present if t in c.VAL_RECEPTACLE_OBJECTS and t not in movable and t not in have)
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
        self.has_lamp = "DeskLamp" in present and any(r in self.recep_types for r in LAMP_RECEPTACLES)

    def holders(self, otype: str, exclude_type: str | None = None) -> list[tuple[str, str, str]]:
        """Receptacle instances that can hold ``otype`` (optionally not of type ``exclude_type``)."""
        c = constants()
        return [r for r in self.receptacles if otype in c.VAL_RECEPTACLE_OBJECTS[r[1]] and r[1] != exclude_type]

    def goal_pairs(self, task_type: str) -> list[tuple[str, str]]:
        """Feasible (object type, target type) pairs of a task type here: ``[(otype, rtype or lamp)]``."""
        c = constants()
        if self.room not in c.GOALS_VALID[task_type]:
            return []
        if task_type == "look_at_obj_in_light":
            if not self.has_lamp:
                return []
            return [(o, "DeskLamp") for o in self.object_types if self.holders(o)]
        pairs = []
        appliance = APPLIANCE.get(task_type)
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
def scene(number: int) -> Scene:
    return Scene(number)


@functools.cache
def feasible_floor_plans(task_type: str, pool: str) -> list[int]:
    """Floor plans of ``pool`` ("train" or "unseen") where ``task_type`` can be generated."""
    plans = train_floor_plans() if pool == "train" else unseen_floor_plans()
    return [number for number in plans if scene(number).goal_pairs(task_type)]
