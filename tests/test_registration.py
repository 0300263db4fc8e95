"""Registration: every family folder under envs/ is registered, and every id makes its own family's env."""

import importlib
from pathlib import Path

import gymnasium as gym
import pytest

import agentgym
from agentgym.core import TextEnv
from agentgym.error import InvalidArgumentError
from agentgym.registration import FAMILIES, check_env_id, env_id

ENVS = Path(__file__).resolve().parents[1] / "envs"
#: The families the README documents, one id each.
DOCUMENTED = {
    "TextWorld",
    "ALFWorld",
    "ScienceWorld",
    "WebShop",
    "SWEGym",
    "KernelGym",
    "Negotiation",
    "InstructorExecutor",
}


def family_folders() -> list[str]:
    return sorted(p.parent.name for p in ENVS.glob("*/__init__.py"))


def test_every_documented_family_is_registered():
    assert {f"agentgym/{family}-v{FAMILIES[family][0]}" for family in DOCUMENTED} <= set(agentgym.registered_ids())
    assert set(FAMILIES) == DOCUMENTED, "a family was added or removed: update the README and DOCUMENTED"


def test_every_family_folder_has_a_registered_id():
    """A folder under envs/ whose env nobody registered fails here (not only TextWorld is checked)."""
    registered = {str(gym.spec(i).entry_point).split(":")[0].split(".")[2] for i in agentgym.registered_ids()}
    assert set(family_folders()) <= registered, f"not registered: {sorted(set(family_folders()) - registered)}"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_id_makes_its_own_family(family):
    """The entry point is the class its family package exports, a TextEnv of that family (an id pointing at
    another family's class, or at a name the package does not export, fails)."""
    spec = gym.spec(env_id(family))
    module_name, _, class_name = str(spec.entry_point).partition(":")
    module = importlib.import_module(module_name)
    cls = getattr(module, class_name)
    assert class_name in getattr(module, "__all__", ()), f"{module_name} does not export {class_name}"
    assert issubclass(cls, TextEnv) and cls.family == family, (cls, getattr(cls, "family", None))
    assert spec.id == f"agentgym/{family}-v{FAMILIES[family][0]}"
    assert spec.disable_env_checker is False


def test_unknown_ids_suggest_the_closest():
    assert check_env_id("agentgym/TextWorld-v0") == "agentgym/TextWorld-v0"
    with pytest.raises(InvalidArgumentError, match=r"unknown env id 'agentgym/TextWrld-v0'.*'agentgym/TextWorld-v0'"):
        check_env_id("agentgym/TextWrld-v0")
