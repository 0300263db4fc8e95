"""The shared ``load_inline`` build cache: content-hash keys, the trusted build's output, verification.

Standard library only: the host (:mod:`.engine`) and the sandboxed runner (:mod:`.runner`, copied into
the job folder) both import it, so they compute the same key.

Who writes what:

* a submission never writes the cache: it is mounted read-only into every sandbox. When a submission
  calls ``load_inline`` with sources the cache lacks, the runner stops and asks for a build
  (``need_build``); the host builds those sources in a separate sandbox that runs no submission code
  (``worker.py JOB build``), hashes the library and moves it into ``<cache>/<key>/`` with a
  ``MANIFEST.json`` (:func:`store`); then the evaluation runs again;
* the key is the SHA-256 of the ``load_inline`` arguments, the torch version and the device, computed
  by the host from the arguments it built, so an entry holds what its key says;
* before loading, the runner copies the library into its private folder and checks its SHA-256 against
  the manifest (:func:`verified_copy`): a library changed after the build is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time

#: ``load_inline`` arguments that are not part of the key (where and how loudly it builds).
UNKEYED = ("build_directory", "verbose", "keep_intermediates")
MANIFEST = "MANIFEST.json"
#: Bump when the build step changes.
BUILD_VERSION = 1


class CacheError(RuntimeError):
    """A cache entry that does not match its manifest, or arguments that cannot be cached."""


def make_spec(arguments: dict) -> dict:
    """The JSON build spec of one ``load_inline`` call (its bound arguments, minus :data:`UNKEYED`)."""
    spec = {k: v for k, v in arguments.items() if k not in UNKEYED}
    if spec.get("is_python_module", True) is not True:
        raise CacheError("load_inline(is_python_module=False) is not supported here: build a Python module")
    try:
        text = json.dumps(spec, sort_keys=True)
    except (TypeError, ValueError):
        raise CacheError(
            "load_inline arguments must be strings, lists of strings, booleans or None "
            "(they are hashed into the build cache key)"
        ) from None
    return json.loads(text)


def extension_key(spec: dict, torch_version: str, device: str) -> str:
    """The cache key of a build spec: what it builds, with which torch, for which device."""
    blob = json.dumps([BUILD_VERSION, spec, torch_version, device], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest(cache_dir: str, key: str) -> dict | None:
    """The manifest of entry ``key``, or ``None`` when it was never built."""
    try:
        with open(os.path.join(cache_dir, key, MANIFEST), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def verified_copy(cache_dir: str, key: str, dest_dir: str) -> str:
    """Copy entry ``key``'s library into ``dest_dir`` and return its path, after checking its hash."""
    entry = manifest(cache_dir, key)
    if entry is None or not entry.get("ok"):
        raise CacheError(f"build cache entry {key} is missing or failed")
    source = os.path.join(cache_dir, key, entry["library"])
    os.makedirs(dest_dir, exist_ok=True)
    target = os.path.join(dest_dir, entry["library"])
    shutil.copyfile(source, target)
    if sha256_file(target) != entry["sha256"]:
        os.unlink(target)
        raise CacheError(
            f"build cache entry {key}: {entry['library']} does not match the SHA-256 in its "
            "manifest (changed after the trusted build); refusing to load it"
        )
    return target


def store(cache_dir: str, key: str, spec: dict, build_dir: str, log: str) -> dict:
    """Move a finished build (``build_dir/<name>.so``) into the cache as entry ``key``; host side.

    A failed build is stored too (its log), so the same broken sources are not rebuilt. The entry
    appears in one atomic rename; when two hosts race, the first entry stays.
    """
    library = f"{spec['name']}.so"
    built = os.path.join(build_dir, library)
    ok = os.path.isfile(built)
    entry = {
        "ok": ok,
        "key": key,
        "name": spec["name"],
        "library": library,
        "log": log[-4000:],
        "built_at": time.time(),
    }
    os.makedirs(cache_dir, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=f".{key}-", dir=cache_dir)
    try:
        if ok:
            shutil.copyfile(built, os.path.join(scratch, library))
            entry["sha256"] = sha256_file(os.path.join(scratch, library))
            os.chmod(os.path.join(scratch, library), 0o644)
        with open(os.path.join(scratch, MANIFEST), "w", encoding="utf-8") as handle:
            json.dump(entry, handle)
        os.chmod(os.path.join(scratch, MANIFEST), 0o644)
        os.chmod(scratch, 0o755)
        try:
            os.rename(scratch, os.path.join(cache_dir, key))
        except OSError:  # another host stored it first
            pass
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return manifest(cache_dir, key) or entry
