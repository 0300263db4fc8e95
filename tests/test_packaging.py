"""Packaging: every third-party import is declared in the extra that covers its file (setup.cfg), the core
install imports without any extra, and a family without its extra fails with one line naming the extra.

The imports are read from the source (ast), so adding ``import foo`` to a family without declaring ``foo``
in its extra fails :func:`test_every_import_is_declared_where_it_is_used`."""

from __future__ import annotations

import ast
import configparser
import importlib.metadata
import json
import re
import subprocess
import sys
import textwrap
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from agentgym.extras import EXTRA_MODULES

ROOT = Path(__file__).resolve().parents[1]
#: The source folders and what they are installed as (setup.cfg's package_dir).
PACKAGE_ROOTS = {
    "agentgym": "agentgym",
    "envs": "agentgym.envs",
    "wrappers": "agentgym.wrappers",
    "baselines": "agentgym.baselines",
}
ALL = "all"

#: Each part of the tree -> the extras its imports may come from, besides the core (the longest matching
#: path prefix wins). A new env folder needs a line here (its family's extra).
PARTS: dict[str, tuple[str, ...]] = {
    "agentgym": (),
    "agentgym/cli.py": ("train",),  # `agentgym train` reads YAML, lazily
    "agentgym/testing.py": ("test",),  # fuzz_env draws actions with hypothesis, lazily
    "agentgym/multiagent.py": ("multiagent",),  # the PettingZoo API of the turn games
    "agentgym/matches.py": ("multiagent",),  # competitive games between agents, for Elo ratings
    "agentgym/export.py": ("parquet",),  # agentgym export --format parquet, lazily
    "envs/textworld": ("textworld",),
    "envs/alfworld": ("alfworld",),
    "envs/scienceworld": ("scienceworld",),
    "envs/webshop": ("webshop",),
    "envs/swegym": ("swegym",),
    "envs/kernelgym": ("kernelgym",),
    "envs/negotiation": ("multiagent",),
    "envs/instructor_executor": ("multiagent",),
    "wrappers": ("train",),
    "baselines": ("train",),
    "baselines/generation_vllm.py": ("train", "vllm"),  # the vLLM backend, imported only when chosen
    "scripts/plot_metrics.py": ("train",),  # training curves
    "tests": ("test", ALL),
    "benchmarks": (ALL,),
    "scripts": (ALL,),
}

#: Imports that are optional where they appear (guarded, with a fallback), so no extra declares them.
OPTIONAL_IMPORTS = {
    "triton": "KernelGym's triton backend, only on a CUDA machine (CUDA builds of torch bring it)",
    "spacy": "WebShop tags nouns with spaCy only when an English model is installed; otherwise a heuristic",
}

#: (extra, distribution) pairs that no file the extra covers imports by that name, and why they are needed.
USED_WITHOUT_IMPORT = {
    ("kernelgym", "ninja"): "torch.utils.cpp_extension.load_inline builds KernelGym's C++ kernels with it",
    ("train", "accelerate"): "transformers loads SmolLM2 from its GGUF file through it",
    ("train", "gguf"): "transformers reads SmolLM2's GGUF file with it",
    ("train", "tensorboard"): "torch.utils.tensorboard writes the trainers' events with it",
    ("multiagent", "textworld"): "InstructorExecutor's executor plays agentgym/TextWorld-v0",
    ("test", "pytest-xdist"): "make test runs pytest -n 2",
    ("test", "ruff"): "make lint",
}


#: Extras for a GPU machine only, never in [all] nor requirements.lock (CPU CI never installs them):
#: extra -> (the extra it takes the place of, the distributions of that extra its engine pins itself, its
#: own engine's distributions -> the top-level modules they provide, looked up without installing them).
#: [vllm] is [train] without torch and transformers (vLLM pins a CUDA torch and its transformers range), plus
#: vllm.
GPU_ONLY_EXTRAS: dict[str, tuple[str, tuple[str, ...], dict[str, str]]] = {
    "vllm": ("train", ("torch", "transformers"), {"vllm": "vllm"}),
}
#: Top-level module -> distribution, for the GPU-only engines (not installed here).
GPU_ONLY_MODULES = {module: dist for _, _, engines in GPU_ONLY_EXTRAS.values() for dist, module in engines.items()}


def _name(text: str) -> str:
    """A distribution name in its normalised form (PEP 503)."""
    return re.sub(r"[-_.]+", "-", text).lower()


@cache
def setup_cfg() -> tuple[list[Requirement], dict[str, list[Requirement]]]:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")

    def requirements(text: str) -> list[Requirement]:
        return [Requirement(line) for line in text.splitlines() if line.strip()]

    extras = {extra: requirements(text) for extra, text in parser["options.extras_require"].items()}
    return requirements(parser["options"]["install_requires"]), extras


def declared(extras: tuple[str, ...]) -> set[str]:
    core, table = setup_cfg()
    return {_name(r.name) for r in core} | {_name(r.name) for extra in extras for r in table[extra]}


def part_of(path: str) -> str:
    matches = [prefix for prefix in PARTS if path == prefix or path.startswith(prefix + "/")]
    assert matches, f"{path} is in no part of tests/test_packaging.py's PARTS"
    return max(matches, key=len)


def third_party_imports(path: Path) -> list[tuple[str, int]]:
    """(top-level module, line) of every absolute import in ``path`` that is neither the standard library,
    agentgym's own folders, nor a module next to the file (KernelGym's worker scripts import their siblings)."""
    own = set(PACKAGE_ROOTS) | {"tests"} | {p.stem for p in path.parent.glob("*.py")}
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.partition(".")[0]
            if top not in sys.stdlib_module_names and top not in own and top != "__future__":
                found.append((top, node.lineno))
    return found


def source_files() -> list[Path]:
    files = []
    for folder in PARTS:
        path = ROOT / folder
        files += [path] if path.suffix == ".py" else sorted(path.rglob("*.py"))
    return sorted({f for f in files if ".venv" not in f.parts})


@cache
def _module_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distribution_of(module: str) -> str | None:
    dists = _module_distributions().get(module)
    if not dists and module in GPU_ONLY_MODULES:
        return _name(GPU_ONLY_MODULES[module])
    return _name(dists[0]) if dists else None


def test_every_import_is_declared_where_it_is_used():
    problems = []
    for path in source_files():
        rel = path.relative_to(ROOT).as_posix()
        part = part_of(rel)
        allowed = declared(PARTS[part])
        for module, line in third_party_imports(path):
            if module in OPTIONAL_IMPORTS:
                continue
            dist = distribution_of(module)
            if dist is None:
                problems.append(
                    f"{rel}:{line} imports {module!r}, which no installed distribution provides "
                    "(add it to setup.cfg and requirements.lock, or to OPTIONAL_IMPORTS with a reason)"
                )
            elif dist not in allowed:
                extras = ", ".join(f"[{e}]" for e in PARTS[part]) or "install_requires (the core)"
                problems.append(
                    f"{rel}:{line} imports {module!r} (distribution {dist}), which setup.cfg does "
                    f"not declare in {extras}"
                )
    assert not problems, "\n".join(problems)


def test_every_declared_distribution_is_used():
    """A declared distribution is imported by a file its extra names in PARTS (or is in USED_WITHOUT_IMPORT):
    no extra drags in a package nothing needs. Parts covered by [all] count for the core only."""
    core, table = setup_cfg()
    imported: dict[str, set[str]] = {"core": set()}
    for path in source_files():
        part = part_of(path.relative_to(ROOT).as_posix())
        for module, _ in third_party_imports(path):
            if (dist := distribution_of(module)) is not None:
                imported["core"].add(dist)
                for extra in PARTS[part]:
                    imported.setdefault(extra, set()).add(dist)
    for extra, (base, _, _) in GPU_ONLY_EXTRAS.items():  # what it inherits is used where its base uses it
        imported.setdefault(extra, set()).update(imported.get(base, set()))
        used_without = {dist for (e, dist) in USED_WITHOUT_IMPORT if e == base}
        imported[extra].update(used_without)
    unused = [
        f"[{extra}] {_name(r.name)}"
        for extra, reqs in [("core", core), *table.items()]
        if extra != ALL
        for r in reqs
        if _name(r.name) not in imported.get(extra, set()) and (extra, _name(r.name)) not in USED_WITHOUT_IMPORT
    ]
    assert not unused, f"declared but imported by no file the extra covers: {unused}"


def test_extras_are_consistent_and_all_is_their_union():
    core, table = setup_cfg()
    assert {_name(r.name) for r in core} <= {"gymnasium", "numpy", "tqdm"}, "the core install stays light"
    assert set(table) == set(EXTRA_MODULES) | {ALL}, "setup.cfg's extras and agentgym.extras.EXTRA_MODULES differ"
    union = {str(r) for extra, reqs in table.items() if extra != ALL and extra not in GPU_ONLY_EXTRAS for r in reqs}
    assert {str(r) for r in table[ALL]} == union, (
        "[all] must list exactly the requirements of every other extra but the GPU-only ones"
    )
    specifiers: dict[str, set[str]] = {}
    for r in [*core, *(r for reqs in table.values() for r in reqs)]:
        specifiers.setdefault(_name(r.name), set()).add(str(r.specifier))
    assert all(len(s) == 1 for s in specifiers.values()), {d: s for d, s in specifiers.items() if len(s) > 1}


@pytest.mark.parametrize("extra", sorted(GPU_ONLY_EXTRAS))
def test_a_gpu_only_extra_is_its_base_without_the_engine_pins_and_stays_out_of_cpu_installs(extra):
    """[vllm] lists [train]'s requirements but those vLLM pins itself (torch, transformers), plus vLLM; and
    neither [all] (``make``'s extras) nor requirements.lock (what ``make`` and CPU CI install) holds its
    engine, so the CPU install never pulls vLLM or its CUDA torch."""
    _, table = setup_cfg()
    base, pinned, engines = GPU_ONLY_EXTRAS[extra]
    inherited = {str(r) for r in table[base] if _name(r.name) not in pinned}
    own = {str(r) for r in table[extra]}
    assert {_name(Requirement(r).name) for r in own - inherited} == set(engines), (
        f"[{extra}] must be [{base}] less {pinned}, plus exactly {sorted(engines)}; got extra {sorted(own - inherited)}"
    )
    assert inherited <= own, f"[{extra}] lacks [{base}]'s {sorted(inherited - own)}"
    assert not {_name(r.name) for r in table[extra]} & set(pinned), f"[{extra}] must leave {pinned} to the engine"
    in_all = {_name(r.name) for r in table[ALL]}
    lock = {_name(line.partition("==")[0]) for line in (ROOT / "requirements.lock").read_text().splitlines()}
    assert not set(engines) & in_all, f"[all] must not hold the GPU-only {sorted(engines)}"
    assert not set(engines) & lock, f"requirements.lock must not hold the GPU-only {sorted(engines)}"
    assert EXTRA_MODULES[extra][0] in engines.values(), "needs() checks the engine's module first"


@pytest.mark.parametrize("extra", sorted(EXTRA_MODULES))
def test_the_modules_an_extra_is_checked_for_are_its_own(extra):
    """agentgym.extras.needs(extra) looks up EXTRA_MODULES[extra]: each comes with the extra's declared
    distributions."""
    dists = declared((extra,))
    assert all(distribution_of(module) in dists for module in EXTRA_MODULES[extra]), (
        {module: distribution_of(module) for module in EXTRA_MODULES[extra]},
        dists,
    )


def test_make_installs_every_declared_distribution_at_a_version_it_allows():
    lock = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            lock[_name(name)] = version
    core, table = setup_cfg()
    bad = [
        f"{r} (lock: {lock.get(_name(r.name), 'missing')})"
        for r in [*core, *table[ALL]]
        if not r.specifier.contains(lock.get(_name(r.name), "0.0.0.dev0"), prereleases=True)
    ]
    assert not bad, f"requirements.lock does not satisfy setup.cfg: {bad}"


def test_setup_cfg_lists_every_package_folder():
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    listed = set(parser["options"]["packages"].split())
    present = set()
    for folder, package in PACKAGE_ROOTS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            present.add(".".join((package, *rel)))
    assert present == listed, f"not in setup.cfg: {sorted(present - listed)}; no folder: {sorted(listed - present)}"


def test_every_part_exists():
    assert [p for p in PARTS if not (ROOT / p).exists()] == []


# ------------------------------------------------------------------ the core install, for real
def _core_closure() -> set[str]:
    """The distributions a core install brings: install_requires and what they require."""
    todo, seen = [r.name for r in setup_cfg()[0]], set()
    while todo:
        name = _name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        for text in importlib.metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def _modules_outside_the_core() -> list[str]:
    core = _core_closure()
    extra_dists = {_name(r.name) for reqs in setup_cfg()[1].values() for r in reqs} - core
    return sorted(
        module for module, dists in _module_distributions().items() if {_name(d) for d in dists} <= extra_dists
    )


#: Run in a fresh interpreter where every module outside the core install is hidden, as after
#: ``pip install agentgym-rl``.
CORE_ONLY = textwrap.dedent("""
    import importlib, json, sys
    hidden = set(json.loads(sys.argv[1]))

    class Hide:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in hidden:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Hide())
    import gymnasium as gym
    import agentgym
    from agentgym.error import DependencyNotInstalled
    imported = {}
    for module in json.loads(sys.argv[2]):
        try:
            importlib.import_module(module)
            imported[module] = "imported"
        except DependencyNotInstalled as exc:
            imported[module] = str(exc)
        except Exception as exc:
            imported[module] = f"{type(exc).__name__}: {exc}"
    made = {}
    for env_id in agentgym.registered_ids():
        try:
            gym.make(env_id).close()
            made[env_id] = "made"
        except DependencyNotInstalled as exc:
            made[env_id] = str(exc)
        except Exception as exc:
            made[env_id] = f"{type(exc).__name__}: {exc}"
    print(json.dumps([imported, made]))
""")


def _names_the_extra(message: str, extra: str) -> bool:
    return message.endswith(f'pip install "agentgym-rl[{extra}]"') and "\n" not in message


def test_the_core_install_imports_and_each_family_names_its_extra():
    """With only the core installed, every core module imports; a module of agentgym/ that needs an extra
    imports or fails with one line naming it; and making each env fails with one line naming its family's
    extra (never an ImportError from deep inside)."""
    import gymnasium as gym

    hidden = _modules_outside_the_core()
    assert {"torch", "textworld", "scienceworld", "pettingzoo", "yaml"} <= set(hidden)
    modules = {
        f"agentgym.{path.stem}": PARTS[part_of(f"agentgym/{path.name}")]
        for path in sorted((ROOT / "agentgym").glob("*.py"))
        if path.stem != "__init__"
    }
    result = subprocess.run(
        [sys.executable, "-c", CORE_ONLY, json.dumps(hidden), json.dumps(sorted(modules))],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    imported, made = json.loads(result.stdout.splitlines()[-1])
    wrong = {
        module: message
        for module, message in imported.items()
        if message != "imported" and not (modules[module] and _names_the_extra(message, modules[module][0]))
    }
    for env_id, message in made.items():
        module = str(gym.spec(env_id).entry_point).partition(":")[0]  # agentgym.envs.<family>[...]
        (extra,) = PARTS[part_of("envs/" + module.split(".")[2])]
        if not _names_the_extra(message, extra):
            wrong[env_id] = message
    assert not wrong, "\n".join(f"{key}: {message}" for key, message in wrong.items())


def test_the_readme_table_of_extras_matches_setup_cfg():
    """The README's install table lists every extra with the distributions setup.cfg gives it."""
    readme = (ROOT / "README.md").read_text()
    setup = readme[readme.index("## Set-up") :]
    setup = setup[: setup.index("\n## ", 1)]
    rows = re.findall(r"^\| `([a-z]+)` \|[^|]*\|([^|]*)\|$", setup, re.MULTILINE)
    table = {extra: {_name(d.strip()) for d in brings.split(",") if d.strip()} for extra, brings in rows}
    expected = {extra: {_name(r.name) for r in reqs} for extra, reqs in setup_cfg()[1].items() if extra != ALL}
    assert {k: v for k, v in table.items() if k != ALL} == expected
    assert ALL in table
