"""Derived model files, content-addressed: each is named by a hash of its inputs and has a
manifest (``<file>.json``) recording that hash and the sha256 of the bytes written, so a stale
file is never picked (its name differs) and a truncated or altered one is never used (its bytes
no longer match the manifest): it is rebuilt, or refused when building is off."""

from __future__ import annotations

import glob
import hashlib
import inspect
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from string import hexdigits
from types import ModuleType

from riskrelay.intake.encoder.errors import EncoderLoadError
from riskrelay.shared.logging import get_logger

log = get_logger(__name__)

Builder = Callable[[], bytes]


def input_key(*parts: str) -> str:
    """sha256 over the parts (each length-prefixed, so no two lists hash alike)."""
    digest = hashlib.sha256()
    for part in parts:
        encoded = part.encode()
        digest.update(f"{len(encoded)}:".encode())
        digest.update(encoded)
    return digest.hexdigest()


def source_code_hash(*modules: ModuleType) -> str:
    """sha256 of the modules' source files: a derived file's key includes the code that builds
    it, so changing the builder makes every file it built stale."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(Path(inspect.getfile(module)).read_bytes())
    return digest.hexdigest()


KEY_CHARS = 24


def artifact_path(cache_dir: Path, name: str, key: str, suffix: str) -> Path:
    return cache_dir / f"{name}-{key[:KEY_CHARS]}{suffix}"


def _remove_superseded(path: Path) -> None:
    """Delete the files this one replaces: same name and suffix, another key (built from
    older inputs or code), so the cache does not grow with every change."""
    name = path.name[: -len(path.suffix) - KEY_CHARS - 1]
    for other in path.parent.glob(f"{glob.escape(name)}-*{path.suffix}"):
        key = other.name[len(name) + 1 : -len(path.suffix)]
        if other != path and len(key) == KEY_CHARS and all(c in hexdigits for c in key):
            other.unlink(missing_ok=True)
            manifest_path(other).unlink(missing_ok=True)


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _problem(path: Path, key: str) -> tuple[str, bytes | None]:
    """Why the cached file cannot be used ('' when it can), and its verified bytes."""
    manifest_file = manifest_path(path)
    if not path.exists():
        return "not built yet", None
    try:
        manifest = json.loads(manifest_file.read_bytes())
    except FileNotFoundError:
        return f"its manifest {manifest_file.name} is missing", None
    except (OSError, ValueError) as error:
        return f"its manifest {manifest_file.name} is unreadable: {error}", None
    if not isinstance(manifest, dict) or manifest.get("key") != key:
        return "built from other inputs (stale)", None
    try:
        content = path.read_bytes()
    except OSError as error:
        return f"cannot read: {error.strerror or error}", None
    if hashlib.sha256(content).hexdigest() != manifest.get("sha256"):
        return "content does not match its recorded sha256 (truncated or altered)", None
    return "", content


def _write_atomically(path: Path, content: bytes) -> None:
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide the cache from other users
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_or_build(path: Path, key: str, build: Builder, *, allow_build: bool) -> bytes:
    """The bytes of the derived file at ``path`` (inputs hashed to ``key``), built when it is
    missing or does not verify. Two processes building at once both write the same bytes
    (the builders are deterministic) and each replaces the file atomically."""
    problem, content = _problem(path, key)
    if content is not None:
        return content
    if not allow_build:
        raise EncoderLoadError(path, f"{problem}, and building is off (allow_build=false)")
    if path.exists():
        log.warning("encoder_cache_rebuild", path=str(path), reason=problem)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        content = build()
        _write_atomically(path, content)
        manifest = {
            "key": key,
            "sha256": hashlib.sha256(content).hexdigest(),
            "bytes": len(content),
        }
        _write_atomically(manifest_path(path), json.dumps(manifest, indent=2).encode() + b"\n")
        _remove_superseded(path)
    except OSError as error:
        raise EncoderLoadError(
            path, f"cannot write the derived file: {error.strerror or error}"
        ) from error
    return content
