"""The task type of a task: the one place that says how results are broken down per kind of task.

The leaderboard groups episodes by task type (a success rate with a Wilson interval per type). The type is
read from the task's definition where the family records it, else from its id:

* ``definition["task_type"]``: ALFWorld's 6 (``pick_and_place_simple``, ``look_at_obj_in_light``,
  ``pick_clean_then_place_in_recep``, ``pick_heat_then_place_in_recep``, ``pick_cool_then_place_in_recep``,
  ``pick_two_obj_and_place``) and ScienceWorld's 30 (``boil``, ``use-thermometer``, ...);
* ``definition["level"]``: KernelGym's levels (``level1`` ...);
* WebShop: the goal product's ``category`` in the env's catalog (``beauty``, ``electronics``, ...);
* ``definition["repo"]``: SWEGym's repository;
* otherwise from the id: an ALFWorld type named anywhere in it (official games), or the id's first ``/``
  component (TextWorld's kind ``coin_collector/3000`` -> ``coin_collector``, ``level2/softmax`` ->
  ``level2``, ``boil/12`` -> ``boil``); an id with neither has type ``"-"`` (one group).

The evaluator stores each episode's type when it plays it (:func:`task_types` of the built env); rows of a
database written before the column existed get :func:`task_type_from_id` when read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: ALFWorld's six task types (the official games name them in their folder names).
ALFWORLD_TYPES = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)

#: The type of a task whose id and definition say nothing about it.
UNTYPED = "-"


def task_type_from_id(task_id: str) -> str:
    """The type readable from the id alone (see the module docstring)."""
    for name in ALFWORLD_TYPES:
        if name in task_id:
            return name
    head, sep, _ = task_id.partition("/")
    if sep and head:
        return head
    if "__" in task_id:  # SWE-style ``<owner>__<repo>.<bug>__<hash>`` or ``<owner>__<repo>-<n>``
        return task_id.split("__")[1].split(".")[0].rsplit("-", 1)[0]
    return UNTYPED


def task_type(task_id: str, definition: Mapping[str, Any] | None = None, catalog: Any = None) -> str:
    """The type of one task from its definition (and WebShop's catalog), else from its id."""
    definition = definition or {}
    if isinstance(definition.get("task_type"), str):
        return definition["task_type"]
    if definition.get("level") is not None:
        level = str(definition["level"])
        return level if level.startswith("level") else f"level{level}"
    if catalog is not None and definition.get("asin") in getattr(catalog, "by_asin", {}):
        category = catalog.by_asin[definition["asin"]].get("category")
        if category:
            return str(category)
    if isinstance(definition.get("repo"), str):
        return definition["repo"]
    return task_type_from_id(task_id)


def task_types(env: Any) -> dict[str, str]:
    """``{task_id: type}`` for every task of a built env's split."""
    base = getattr(env, "unwrapped", env)
    catalog = getattr(base, "catalog", None)
    return {task.task_id: task_type(task.task_id, task.definition, catalog) for task in base.tasks.tasks}
