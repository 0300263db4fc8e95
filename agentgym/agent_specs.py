"""Agent specs: the strings ``agentgym eval --agent`` accepts, and the identity an agent is stored under.

:func:`agentgym.agents.make_agent` turns a spec into an agent; this module parses specs, builds the
kinds that are not registered names, and names them. The forms, tried in this order:

===============================  ===================================================================
spec                             agent
===============================  ===================================================================
``expert``, ``random``           :data:`agentgym.agents.AGENTS`
``openai:BASE_URL#MODEL``        :class:`agentgym.baselines.openai_agent.OpenAIAgent`: chat completions
                                 at ``BASE_URL/chat/completions`` (``BASE_URL`` as the OpenAI client takes
                                 it, e.g. ``http://localhost:8000/v1``)
a folder with ``agent.json``     a checkpoint of ``agentgym train`` (:func:`agentgym.agents.load_agent`)
a folder with ``config.json``    any local Hugging Face causal LM under
                                 :class:`agentgym.baselines.llm_agent.LLMAgent` and its default prompt;
                                 greedy decoding unless the keyword arguments set ``temperature`` or
                                 ``greedy``
``package.module:Class``         any importable :class:`agentgym.agents.Agent` subclass, built with the
                                 keyword arguments (and ``seed`` when its constructor takes one); the
                                 working directory is importable, as under ``python -m``
===============================  ===================================================================

**Identity.** Evaluation rows are keyed by ``agent.name``, so the name carries everything that changes
the agent's behaviour: ``LABEL@HASH``, where ``HASH`` is the first 8 hex digits of the sha256 of
:attr:`identity` without its ``spec`` (JSON, sorted keys). ``hf:FOLDER@HASH`` hashes the model folder's
content (every file, see :func:`folder_hash`) and the agent's prompt and sampling settings;
``openai:MODEL@HASH`` the model name and those settings (not the server address: one model behind
another port is the same agent); ``module:Class`` the keyword arguments (with none, the class's own
``name``, or ``module:Class``). The base seed is not part of the name: it is a column of its own.
A checkpoint keeps the name the trainer gave it; keyword overrides append ``@HASH`` of them. The agent's
``identity`` attribute holds the whole configuration that was hashed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from agentgym.agents import Agent
from agentgym.error import InvalidArgumentError, did_you_mean

SpecKind = Literal["registered", "openai", "checkpoint", "hf", "class"]

_CLASS_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")

#: What every "unknown agent" message lists.
FORMS = (
    "{names}, a checkpoint folder (with agent.json), a Hugging Face model folder (with config.json), "
    "package.module:Class (an agentgym.agents.Agent subclass) or openai:BASE_URL#MODEL"
)


@dataclasses.dataclass(frozen=True)
class AgentSpec:
    """A parsed ``--agent`` value: which kind it is and what it points at."""

    kind: SpecKind
    text: str


def parse_agent_spec(spec: str, registered: Mapping[str, Any]) -> AgentSpec:
    """The kind of ``spec`` (see the module docstring); cheap (imports and loads nothing), so the CLI
    checks ``--agent`` with it before any env starts. Raises :class:`InvalidArgumentError` in one line."""
    if spec in registered:
        return AgentSpec("registered", spec)
    forms = FORMS.format(names=", ".join(sorted(registered)))
    if spec.startswith("openai:"):
        split_openai_spec(spec)
        return AgentSpec("openai", spec)
    path = Path(spec)
    if path.is_dir():
        if (path / "agent.json").is_file():
            return AgentSpec("checkpoint", spec)
        if (path / "config.json").is_file():
            return AgentSpec("hf", spec)
        raise InvalidArgumentError(
            f"agent folder {spec!r} is not a model: it has no agent.json (an agentgym train checkpoint) and "
            "no config.json (a Hugging Face model folder)"
        )
    if _CLASS_RE.match(spec) and not path.exists():
        return AgentSpec("class", spec)
    hint = did_you_mean(spec, registered)
    where = "no such folder; " if ("/" in spec or spec.startswith(".")) else ""
    raise InvalidArgumentError(f"unknown agent {spec!r}: {where}expected {forms}{hint}")


def split_openai_spec(spec: str) -> tuple[str, str]:
    """``(base_url, model)`` of ``openai:BASE_URL#MODEL``."""
    body = spec.removeprefix("openai:")
    base_url, sep, model = body.rpartition("#")
    if not sep or not model or not re.match(r"^https?://[^/\s]+", base_url):
        raise InvalidArgumentError(
            f"agent {spec!r}: expected openai:BASE_URL#MODEL with an http(s) base URL, "
            "e.g. openai:http://localhost:8000/v1#Qwen2.5-7B-Instruct"
        )
    return base_url, model


# --------------------------------------------------------------------------- identity
def short_hash(config: Mapping[str, Any]) -> str:
    """8 hex digits of the sha256 of ``config`` as canonical JSON."""
    canonical = json.dumps(config, sort_keys=True, default=repr)
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]


def name_agent(agent: Agent, label: str, identity: dict[str, Any]) -> Agent:
    """Set ``agent.name`` to ``LABEL@HASH`` of ``identity`` (less its ``spec``) and keep ``identity`` on it."""
    agent.identity = identity  # type: ignore[attr-defined]
    agent.name = f"{label}@{short_hash({k: v for k, v in identity.items() if k != 'spec'})}"
    return agent


def folder_hash(path: str | os.PathLike) -> str:
    """sha256 over every file of a folder (relative path, size and content; names starting with ``.``
    skipped). A model folder's weights are read once: the result is cached under the agentgym cache
    (``model-hashes.json``), keyed by the files' paths, sizes and modification times."""
    from agentgym.cache import cache_root

    root = Path(path).resolve()
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    stats = [(str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    key = hashlib.sha256(json.dumps([str(root), stats]).encode()).hexdigest()
    cache_file = cache_root() / "model-hashes.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return cache[key]
    digest = hashlib.sha256()
    for file, (relative, size, _) in zip(files, stats):
        digest.update(f"{relative}\0{size}\0".encode())
        with open(file, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    cache[key] = digest.hexdigest()
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        scratch = cache_file.with_suffix(f".{os.getpid()}.tmp")
        scratch.write_text(json.dumps(cache))
        os.replace(scratch, cache_file)
    except OSError:
        pass  # a read-only cache only costs a re-hash next time
    return cache[key]


def llm_behaviour(agent: Any) -> dict[str, Any]:
    """What changes an :class:`~agentgym.baselines.llm_agent.LLMAgent`'s replies: its prompt and sampling
    settings (``LLMAgent.config()`` without the seed, and without the temperature under greedy decoding)
    and whether it runs under bfloat16."""
    config = {key: value for key, value in agent.config().items() if key != "seed"}
    if config.get("greedy"):
        config.pop("temperature", None)
    config["bf16"] = bool(getattr(agent, "bf16", False))
    # The windowed prompt builder and the builtin backend were the only ones before these settings existed:
    # leaving their defaults out keeps the names (and the stored results) of earlier agents.
    if config.get("prompt_mode") == "window":
        config.pop("prompt_mode")
    backend = getattr(getattr(agent, "backend", None), "name", "builtin")
    if backend != "builtin":  # another engine's numerics give other replies
        config["backend"] = backend
    return config


# --------------------------------------------------------------------------- builders
def build_hf_agent(spec: str, seed: int, kwargs: Mapping[str, Any]) -> Agent:
    """:class:`LLMAgent` over the Hugging Face causal LM in folder ``spec`` (see the module docstring)."""
    from agentgym.baselines.llm_agent import LLMAgent
    from agentgym.wrappers.lm import load_causal_lm

    options = dict(kwargs)
    label = options.pop("name", None) or f"hf:{Path(spec).resolve().name}"
    if "greedy" not in options:
        options["greedy"] = "temperature" not in options
    options.setdefault("seed", seed)
    try:
        model, tokenizer = load_causal_lm(spec)
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidArgumentError(
            f"agent folder {spec!r} is not a loadable Hugging Face causal LM: {_first_line(exc)}"
        ) from None
    agent = _construct(LLMAgent, spec, model, tokenizer, **options)
    identity = {"spec": spec, "kind": "hf", "model_sha256": folder_hash(spec), "agent": llm_behaviour(agent)}
    return name_agent(agent, label, identity)


def build_class_agent(spec: str, seed: int, kwargs: Mapping[str, Any]) -> Agent:
    """An instance of the :class:`Agent` subclass named by ``package.module:Class``."""
    module_name, _, class_name = spec.partition(":")
    module = _import(spec, module_name)
    cls = getattr(module, class_name, None)
    if cls is None:
        agents = [name for name, value in vars(module).items() if inspect.isclass(value) and issubclass(value, Agent)]
        raise InvalidArgumentError(
            f"agent {spec!r}: module {module_name!r} has no attribute {class_name!r}{did_you_mean(class_name, agents)}"
        )
    if not (inspect.isclass(cls) and issubclass(cls, Agent)):
        raise InvalidArgumentError(
            f"agent {spec!r} is not an agentgym.agents.Agent subclass (got {type(cls).__name__} {cls!r})"
        )
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise InvalidArgumentError(f"agent {spec!r} is abstract: it does not implement {missing}")
    options = dict(kwargs)
    if "seed" not in options and "seed" in inspect.signature(cls).parameters:
        options["seed"] = seed
    agent = _construct(cls, spec, **options)
    if not kwargs:  # nothing configured: the class's own name, or where it lives
        agent.identity = {"spec": spec, "kind": "class", "class": spec}  # type: ignore[attr-defined]
        if agent.name == Agent.name:
            agent.name = spec
        return agent
    label = agent.name if agent.name != Agent.name else spec
    return name_agent(agent, label, {"spec": spec, "kind": "class", "class": spec, "kwargs": dict(kwargs)})


def _import(spec: str, module_name: str) -> Any:
    """Import ``module_name``, with the working directory importable as under ``python -m``."""
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidArgumentError(
            f"agent {spec!r}: cannot import module {module_name!r} ({type(exc).__name__}: {_first_line(exc)}); "
            "is it on PYTHONPATH or in the working directory?"
        ) from None


def _construct(cls: type, spec: str, *args: Any, **kwargs: Any) -> Any:
    """``cls(*args, **kwargs)``, a wrong keyword reported against ``--agent-kwargs``."""
    signature = inspect.signature(cls)
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        accepted = [
            p.name
            for p in signature.parameters.values()
            if p.kind == p.KEYWORD_ONLY or (p.kind == p.POSITIONAL_OR_KEYWORD and p.default is not p.empty)
        ]
        raise InvalidArgumentError(
            f"agent {spec!r}: bad --agent-kwargs: {exc}; it takes {', '.join(accepted) or 'none'}"
        ) from None
    return cls(*args, **kwargs)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
