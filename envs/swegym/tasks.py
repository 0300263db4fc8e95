"""SWEGym's task set: loading a split (embedded or the user's instances), and building the embedded one.

:func:`load_split` gives the env its records: the embedded set's split, or every instance of a user's
SWE-Gym / SWE-bench file (read and checked by :func:`.engine.load_instances`), with the folder of the
repositories they check out.

The embedded set is built once at set-up, fetching the pinned sdists of :mod:`.sdists`, mutating them
(:mod:`.mutate`) and validating every candidate in the sandbox; it is the only step that uses the
network, and only PyPI through pip::

    python -m agentgym.envs.swegym.tasks            # default seed 0; resumable; 2 worker processes

Build steps (the sandboxed runs of steps 2 and 4 are in :mod:`.validation`):

1. **Fetch** each project of :data:`.sdists.PROJECTS` with ``pip download --no-deps --no-binary :all:`` and check
   its sha256; unpack it (sdists carry their tests).
2. **Baseline**: run each module's test files twice on the clean tree in the sandbox; tests that pass
   both times are the stable ones.
3. **Candidates**: for each module, functions are shuffled by the seed; each gets one mutation (a kind
   drawn uniformly among those the function admits, then a site), up to ``per_module`` per module.
4. **Validate** every candidate in the sandbox (parallel, resumable: each result is a JSON file keyed by
   the candidate): FAIL_TO_PASS = stable tests that now fail, PASS_TO_PASS = those that still pass;
   kept when FAIL_TO_PASS and PASS_TO_PASS are non-empty and the run is valid (no timeout).
5. **Write** SWE-bench-schema instances (``instances.jsonl``) and one git repository per project
   (``repos/agentgym-sdist__<name>``: a clean commit plus one commit per bug, made with
   ``git fast-import`` at fixed dates, so ids and hashes are deterministic). ``base_commit`` is the
   buggy commit, ``patch`` the fix (gold), ``test_patch`` empty, ``environment_setup_commit`` the
   clean commit. Problem statements are written from the failing tests' report, never from the diff.

Splits are by module: the seed shuffles each project's modules and fills ``test`` and ``valid`` to
about 15 % of the candidates each, so test bugs sit in modules no training bug touched.

Everything lands in ``cache_root()/swegym/tasks-<key>`` (key = hash of the generator version, seed,
projects, Python and pytest versions), written to a temp folder and renamed into place.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from agentgym.envs.swegym import engine, mutate
from agentgym.envs.swegym.sdists import OWNER, PROJECTS, Project, fetch, swegym_cache, tree_files
from agentgym.envs.swegym.validation import baseline_job, parallel, validate_job
from agentgym.error import DependencyNotInstalled, EngineFault, InvalidArgumentError

#: Part of the task-set cache key and of the env's engine version: bump when what the build keeps can change.
#: 2: candidates are validated under grader 2's test runner (``python -I``, report through a private fd);
#: a task set cached under version 1 validated them with the old runner and keeps one candidate
#: (boltons ``swap_arguments`` in ioutils) that the new runner rejects, so the same key gave 288 or 287 tasks.
GENERATOR_VERSION = "2"
DEFAULT_SEED = 0
#: Fixed git identity and date, so commit hashes are deterministic.
GIT_IDENTITY = "agentgym <agentgym@localhost> 1700000000 +0000"
#: The sandboxed build steps moved to :mod:`.validation`; these names stay for benchmarks/swegym_speed.py.
_baseline_job, _validate_job, _parallel = baseline_job, validate_job, parallel


def dataset_key(seed: int = DEFAULT_SEED, per_module: int = 24, projects: Sequence[Project] = PROJECTS) -> str:
    """Hash of everything the task set depends on."""
    spec = {
        "generator": GENERATOR_VERSION,
        "seed": seed,
        "per_module": per_module,
        "projects": [dataclasses.asdict(p) for p in projects],
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "pytest": metadata.version("pytest"),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _work_key(projects: Sequence[Project] = PROJECTS) -> str:
    """Key of the baseline and validation results: they depend on the projects and tools, not the seed."""
    spec = {
        "generator": GENERATOR_VERSION,
        "projects": [dataclasses.asdict(p) for p in projects],
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "pytest": metadata.version("pytest"),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def dataset_dir(seed: int = DEFAULT_SEED, per_module: int = 24) -> Path:
    return swegym_cache() / f"tasks-{dataset_key(seed, per_module)}"


def load_split(
    split: str,
    *,
    instances: str | os.PathLike | None = None,
    repos_dir: str | os.PathLike | None = None,
    task_seed: int = DEFAULT_SEED,
) -> tuple[list[dict[str, Any]], Path]:
    """The instances of one split and the folder holding their repositories' clones.

    Embedded tasks (no ``instances``): the records of ``split`` in the task set built with ``task_seed``
    and its ``repos`` folder. A user's file (``instances=PATH`` with ``repos_dir=DIR``): all its records,
    whatever the split's name, with clones at ``DIR/<owner>__<name>``. Every clone must exist.
    """
    if instances is not None:
        if repos_dir is None:
            raise InvalidArgumentError(
                "instances=... needs repos_dir=DIR with one git clone per repo at DIR/<owner>__<name>"
            )
        records = engine.load_instances(instances)
        repos = Path(repos_dir)
    else:
        if repos_dir is not None:
            raise InvalidArgumentError("repos_dir is only used together with instances=PATH")
        folder = dataset_dir(task_seed)
        if not (folder / "instances.jsonl").exists():
            raise DependencyNotInstalled(
                f"the embedded SWEGym task set (seed {task_seed}) is not built yet; run once (it fetches "
                f"three sdists from PyPI): {sys.executable} -m agentgym.envs.swegym.tasks --seed {task_seed}"
            )
        records = [r for r in engine.load_instances(folder / "instances.jsonl") if r.get("split") == split]
        if not records:
            raise InvalidArgumentError(f"unknown split {split!r}; expected one of ['test', 'train', 'valid']")
        repos = folder / "repos"
    for record in records:
        clone = repos / engine.repo_folder(record["repo"])
        if not clone.is_dir():
            raise InvalidArgumentError(
                f"instance {record['instance_id']!r} needs a clone of {record['repo']} at {str(clone)!r}"
            )
    return records, repos


# ----------------------------------------------------------------------------- candidates
def candidates(project: Project, tree: Path, seed: int, per_module: int) -> list[dict[str, Any]]:
    """Deterministic mutation candidates: one per function, up to ``per_module`` per module."""
    out = []
    for module, _ in project.modules:
        source = (tree / module).read_text()
        sites = mutate.function_mutations(source)
        rng = random.Random(f"{seed}:{project.name}:{module}")
        functions = sorted(sites)
        rng.shuffle(functions)
        picked = 0
        for function in functions:
            if picked == per_module:
                break
            kinds = sorted({m.kind for m in sites[function]})
            kind = rng.choice(kinds)
            options = [m for m in sites[function] if m.kind == kind]
            rng.shuffle(options)
            mut = next((m for m in options if mutate.changes_program(source, m)), None)
            if mut is None:
                continue
            picked += 1
            mutated = mut.apply(source)
            ident = hashlib.sha256(f"{project.name}:{module}:{mutated}".encode()).hexdigest()[:10]
            out.append(
                {
                    "id": ident,
                    "module": module,
                    "function": function,
                    "kind": kind,
                    "line": mut.line,
                    "mutated": mutated,
                }
            )
    return out


def assign_splits(project: Project, cands: list[dict[str, Any]], seed: int) -> dict[str, str]:
    """module -> split: shuffled modules fill ``test`` then ``valid`` to ~15 % of candidates each."""
    counts: dict[str, int] = {}
    for cand in cands:
        counts[cand["module"]] = counts.get(cand["module"], 0) + 1
    modules = sorted(counts)
    random.Random(f"{seed}:{project.name}:splits").shuffle(modules)
    total, split_of, filled = sum(counts.values()), {}, {"test": 0, "valid": 0}
    for module in modules:
        target = next((s for s in ("test", "valid") if filled[s] < 0.15 * total), "train")
        if target != "train":
            filled[target] += counts[module]
        split_of[module] = target
    return split_of


# ----------------------------------------------------------------------------- problem statements
_OPENINGS = (
    "After upgrading to the current code, `{test}` started failing.",
    "I'm seeing a regression: `{test}` fails on the current tree.",
    "`{test}` is broken; it passed before the latest changes to the library.",
)
_CLOSINGS = (
    "The test itself looks right to me, so the problem should be in the library code.",
    "Please fix the library so that the test suite passes again (the tests should not need changes).",
    "Expected: the test passes, as it did in the previous release.",
)


def problem_statement(f2p: list[str], failures: dict[str, str], test_cmd: str, rng: random.Random) -> str:
    """An issue written from the failing tests' report: names, assertion message, traceback excerpt."""
    first = f2p[0]
    lines = [rng.choice(_OPENINGS).format(test=first), ""]
    if len(f2p) > 1:
        others = ", ".join(f"`{t}`" for t in f2p[1:4]) + (f" and {len(f2p) - 4} more" if len(f2p) > 4 else "")
        lines += [f"Other tests fail too: {others}.", ""]
    excerpt = failures.get(first, "").strip()
    excerpt_lines = excerpt.splitlines()
    if len(excerpt_lines) > 25:
        excerpt_lines = excerpt_lines[:3] + ["..."] + excerpt_lines[-20:]
    lines += [f"To reproduce, run `{test_cmd} {first}`:", "", "```", *excerpt_lines, "```", "", rng.choice(_CLOSINGS)]
    return "\n".join(lines)


def _diff(path: str, old: str, new: str) -> str:
    body = "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{path}", f"b/{path}"))
    return f"diff --git a/{path} b/{path}\n{body}"


# ----------------------------------------------------------------------------- git
def _git_repo(path: Path, tree: Path, bugs: list[tuple[str, str, str]]) -> tuple[str, dict[str, str]]:
    """A repo with the clean tree (one commit) and one commit per ``(tag, file, mutated text)``."""
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    stream = bytearray()

    def blob(data: bytes) -> None:
        stream.extend(b"data %d\n" % len(data) + data + b"\n")

    stream += b"reset refs/heads/main\ncommit refs/heads/main\nmark :1\n"
    stream += f"author {GIT_IDENTITY}\ncommitter {GIT_IDENTITY}\n".encode()
    blob(b"clean sdist tree")
    for rel in tree_files(tree):
        mode = b"100755" if os.access(tree / rel, os.X_OK) else b"100644"
        stream += b"M " + mode + b" inline " + rel.encode() + b"\n"
        blob((tree / rel).read_bytes())
    for i, (tag, rel, text) in enumerate(bugs, 2):
        stream += f"commit refs/tags/{tag}\nmark :{i}\n".encode()
        stream += f"author {GIT_IDENTITY}\ncommitter {GIT_IDENTITY}\n".encode()
        blob(f"{tag}".encode())
        stream += b"from :1\nM 100644 inline " + rel.encode() + b"\n"
        blob(text.encode())
    marks = path / "marks"
    subprocess.run(
        ["git", "--git-dir", str(path), "fast-import", "--quiet", f"--export-marks={marks}"],
        input=bytes(stream),
        check=True,
    )
    shas = dict(line.split() for line in marks.read_text().splitlines())
    marks.unlink()
    return shas[":1"], {tag: shas[f":{i}"] for i, (tag, _, _) in enumerate(bugs, 2)}


# ----------------------------------------------------------------------------- build
def build(seed: int = DEFAULT_SEED, per_module: int = 24, workers: int = 2, force: bool = False) -> Path:
    """Build (or find) the task set; returns its folder."""
    final = dataset_dir(seed, per_module)
    if final.exists() and not force:
        return final
    from agentgym.sandbox import available

    if not available():
        raise InvalidArgumentError("building SWEGym tasks needs bubblewrap: run `bash scripts/system-deps.sh`")
    work = swegym_cache() / f"work-{_work_key()}"  # candidates are content-keyed: shared by every seed
    (work / "validation").mkdir(parents=True, exist_ok=True)
    trees = {p.name: fetch(p) for p in PROJECTS}
    # baseline (cached)
    baseline_path = work / "baseline.json"
    baseline = json.loads(baseline_path.read_text()) if baseline_path.exists() else None
    if baseline is None:
        jobs = [(p.name, module, str(trees[p.name])) for p in PROJECTS for module, _ in p.modules]
        results = parallel(baseline_job, jobs, workers, "swegym baseline")
        baseline = {f"{name}:{module}": r for (name, module, _), r in zip(jobs, results)}
        # A module whose tests cannot run here (toolz's multiprocessing test) is skipped, but a project
        # with no passing module means the sandbox itself is broken: every candidate would be misjudged.
        for project in PROJECTS:
            runs = {key: r for key, r in baseline.items() if key.startswith(f"{project.name}:")}
            if not any(r["stable"] for r in runs.values()):
                key, r = next(iter(runs.items()))
                raise EngineFault(
                    f"no test of {project.name} passes in the sandbox, unmodified; nothing was cached. "
                    f"First: {key}: {r['problem'] or 'no stable passing test'}; output:\n{r['output']}"
                )
        baseline_path.write_text(json.dumps(baseline))
    # candidates and validation (resumable)
    all_cands = {p.name: candidates(p, trees[p.name], seed, per_module) for p in PROJECTS}
    jobs = []
    for project in PROJECTS:
        for cand in all_cands[project.name]:
            stable = baseline[f"{project.name}:{cand['module']}"]["stable"]
            out = work / "validation" / f"{project.name}-{cand['id']}.json"
            if stable and not out.exists():
                jobs.append((project.name, cand, str(trees[project.name]), str(out), stable))
    if jobs:
        parallel(validate_job, jobs, workers, "swegym validation")
    # assemble
    scratch = Path(tempfile.mkdtemp(dir=swegym_cache(), prefix="tmp-tasks-"))
    try:
        _assemble(scratch, final, trees, all_cands, work, seed, per_module)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return final


def _assemble(
    scratch: Path,
    final: Path,
    trees: dict[str, Path],
    all_cands: dict[str, list[dict[str, Any]]],
    work: Path,
    seed: int,
    per_module: int,
) -> None:
    instances = []
    for project in PROJECTS:
        tree, cands = trees[project.name], all_cands[project.name]
        splits = assign_splits(project, cands, seed)
        kept = []
        for cand in cands:
            out = work / "validation" / f"{project.name}-{cand['id']}.json"
            if not out.exists():
                continue
            result = json.loads(out.read_text())
            if result["valid_run"] and not result["killed"] and result["FAIL_TO_PASS"] and result["PASS_TO_PASS"]:
                kept.append((cand, result))
        tags = [
            (f"{OWNER}__{project.name}.{cand['kind']}__{cand['id']}", cand["module"], cand["mutated"])
            for cand, _ in kept
        ]
        clean, commits = _git_repo(scratch / "repos" / engine.repo_folder(project.repo), tree, tags)
        for (cand, result), (tag, module, _) in zip(kept, tags):
            original = (tree / module).read_text()
            rng = random.Random(f"{seed}:{tag}")
            instances.append(
                {
                    "instance_id": tag,
                    "repo": project.repo,
                    "base_commit": commits[tag],
                    "patch": _diff(module, cand["mutated"], original),
                    "test_patch": "",
                    "problem_statement": problem_statement(
                        result["FAIL_TO_PASS"], result["failures"], engine.DEFAULT_TEST_CMD, rng
                    ),
                    "hints_text": "",
                    "created_at": "2026-01-01T00:00:00Z",
                    "version": project.version,
                    "environment_setup_commit": clean,
                    "FAIL_TO_PASS": result["FAIL_TO_PASS"],
                    "PASS_TO_PASS": result["PASS_TO_PASS"],
                    "test_cmd": engine.DEFAULT_TEST_CMD,
                    "test_env": dict(project.test_env),
                    "split": splits[cand["module"]],
                    "module": module,
                    "bug": {"function": cand["function"], "kind": cand["kind"], "line": cand["line"]},
                    "license": project.license,
                }
            )
    with open(scratch / "instances.jsonl", "w") as handle:
        for instance in instances:
            handle.write(json.dumps(instance, sort_keys=True) + "\n")
    counts = {s: sum(1 for i in instances if i["split"] == s) for s in ("train", "valid", "test")}
    if min(counts.values()) == 0:
        raise EngineFault(f"validation kept too few tasks to fill every split ({counts}); nothing was cached")
    (scratch / "meta.json").write_text(
        json.dumps(
            {
                "key": dataset_key(seed, per_module),
                "seed": seed,
                "candidates": sum(map(len, all_cands.values())),
                "tasks": len(instances),
                "splits": counts,
            },
            indent=1,
        )
    )
    if final.exists():
        shutil.rmtree(final)
    os.rename(scratch, final)  # atomic: readers see a complete folder or none


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the embedded agentgym/SWEGym-v0 task set.")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--per-module", type=int, default=24, help="mutation candidates per module")
    parser.add_argument("--workers", type=int, default=2, help="parallel sandboxed test runs")
    parser.add_argument("--force", action="store_true", help="rebuild even when the task set is cached")
    args = parser.parse_args(argv)
    path = build(args.seed, args.per_module, args.workers, args.force)
    print(f"SWEGym tasks: {path}\n{(path / 'meta.json').read_text()}")


if __name__ == "__main__":
    main()
