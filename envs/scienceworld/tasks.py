"""ScienceWorld's 30 task types, their variations and the splits agentgym exposes.

**Official splits.** ScienceWorld divides each task type's variations into train, dev and test
(``getVariationsTrain/Dev/Test``); each is a contiguous range, so the table below stores only the
three sizes (train from variation 0, then dev, then test). ``tests/envs/test_scienceworld.py`` checks
the table against the engine. agentgym names them ``train``, ``valid`` and ``test``.

**Generalization splits** (RLVMR-style levels): the last task type of each of ScienceWorld's ten
task groups (``1-4``, ``2-3``, ``3-4``, ``4-4``, ``5-2``, ``6-3``, ``7-3``, ``8-2``, ``9-3``, ``10-2``:
see :data:`HELD_OUT_TYPES`) is held out from training; the other 20 types are "seen".

* ``train_L``: the seen types' train variations (train on this split);
* ``L0`` (seen types, seen variations): the same tasks as ``train_L``;
* ``L1`` (seen types, unseen variations): the seen types' test variations;
* ``L2`` (unseen task types): the held-out types' test variations.

L0 evaluates on the very variations an agent trained on; L1 on new variations (other substances,
animals, rooms) of the same task types; L2 on task types never trained on. The names match the
ALFWorld family's generalization splits.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Task type -> (task group id in ScienceWorld's paper numbering, train, dev, test variation counts).
TASK_TYPES: dict[str, tuple[str, int, int, int]] = {
    "boil": ("1-1", 14, 7, 9),
    "melt": ("1-2", 14, 7, 9),
    "freeze": ("1-3", 14, 7, 9),
    "change-the-state-of-matter-of": ("1-4", 14, 7, 9),
    "use-thermometer": ("2-1", 270, 135, 135),
    "measure-melting-point-known-substance": ("2-2", 218, 109, 109),
    "measure-melting-point-unknown-substance": ("2-3", 150, 75, 75),
    "power-component": ("3-1", 10, 5, 5),
    "power-component-renewable-vs-nonrenewable-energy": ("3-2", 10, 5, 5),
    "test-conductivity": ("3-3", 450, 225, 225),
    "test-conductivity-of-unknown-substances": ("3-4", 300, 150, 150),
    "find-living-thing": ("4-1", 150, 75, 75),
    "find-non-living-thing": ("4-2", 150, 75, 75),
    "find-plant": ("4-3", 150, 75, 75),
    "find-animal": ("4-4", 150, 75, 75),
    "grow-plant": ("5-1", 62, 31, 33),
    "grow-fruit": ("5-2", 62, 31, 33),
    "chemistry-mix": ("6-1", 16, 8, 8),
    "chemistry-mix-paint-secondary-color": ("6-2", 18, 9, 9),
    "chemistry-mix-paint-tertiary-color": ("6-3", 18, 9, 9),
    "lifespan-longest-lived": ("7-1", 62, 31, 32),
    "lifespan-shortest-lived": ("7-2", 62, 31, 32),
    "lifespan-longest-lived-then-shortest-lived": ("7-3", 62, 31, 32),
    "identify-life-stages-1": ("8-1", 6, 3, 5),
    "identify-life-stages-2": ("8-2", 4, 2, 4),
    "inclined-plane-determine-angle": ("9-1", 84, 42, 42),
    "inclined-plane-friction-named-surfaces": ("9-2", 692, 346, 348),
    "inclined-plane-friction-unnamed-surfaces": ("9-3", 80, 40, 42),
    "mendelian-genetics-known-plant": ("10-1", 60, 30, 30),
    "mendelian-genetics-unknown-plant": ("10-2", 240, 120, 120),
}

#: The task types the generalization splits hold out of training: the last type of each task group.
HELD_OUT_TYPES: tuple[str, ...] = (
    "change-the-state-of-matter-of",
    "measure-melting-point-unknown-substance",
    "test-conductivity-of-unknown-substances",
    "find-animal",
    "grow-fruit",
    "chemistry-mix-paint-tertiary-color",
    "lifespan-longest-lived-then-shortest-lived",
    "identify-life-stages-2",
    "inclined-plane-friction-unnamed-surfaces",
    "mendelian-genetics-unknown-plant",
)

#: Split name -> (which task types, which official split of their variations).
SPLITS: dict[str, tuple[str, str]] = {
    "train": ("all", "train"),
    "valid": ("all", "dev"),
    "test": ("all", "test"),
    "train_L": ("seen", "train"),
    "L0": ("seen", "train"),
    "L1": ("seen", "test"),
    "L2": ("held_out", "test"),
}

#: The simplifications the engine knows (``easy`` means all of them that suit the task).
SIMPLIFICATIONS: tuple[str, ...] = (
    "easy",
    "noElectricalAction",
    "openContainers",
    "openDoors",
    "selfWateringFlowerPots",
    "teleportAction",
)

#: Task types that need electrical actions, so ``noElectricalAction`` cannot apply to them.
ELECTRICAL_TYPES = frozenset(name for name in TASK_TYPES if "power-component" in name or "conductivity" in name)


def official_variations(task_type: str, official_split: str) -> range:
    """The variations of ``task_type`` in ScienceWorld's ``train``, ``dev`` or ``test`` split."""
    _, train, dev, test = TASK_TYPES[task_type]
    starts = {"train": (0, train), "dev": (train, train + dev), "test": (train + dev, train + dev + test)}
    return range(*starts[official_split])


def split_types(which: str) -> list[str]:
    if which == "seen":
        return [name for name in TASK_TYPES if name not in HELD_OUT_TYPES]
    if which == "held_out":
        return list(HELD_OUT_TYPES)
    return list(TASK_TYPES)


def normalize_simplifications(simplifications: str | Sequence[str] | None) -> tuple[str, ...]:
    """Canonical form of the simplifications option: known names, sorted, without repeats.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if simplifications is None:
        return ()
    names = simplifications.split(",") if isinstance(simplifications, str) else list(simplifications)
    names = [str(name).strip() for name in names if str(name).strip()]
    unknown = [name for name in names if name not in SIMPLIFICATIONS]
    if unknown:
        raise ValueError(f"unknown ScienceWorld simplifications {unknown}; expected some of {list(SIMPLIFICATIONS)}")
    return tuple(sorted(set(names)))


def engine_simplifications(task_type: str, simplifications: tuple[str, ...]) -> str:
    """The engine's simplification string for one task type (electrical tasks drop ``noElectricalAction``)."""
    names = [n for n in simplifications if not (n == "noElectricalAction" and task_type in ELECTRICAL_TYPES)]
    return ",".join(names)
