"""On-disk cache of converted models, keyed by the checkpoint's content hash.

Why content hash: a checkpoint folder can be replaced in place (a package upgrade),
and a stale ONNX export must then not be reused. Why atomic: a conversion killed
half-way, or two processes converting at once, must never leave a folder that
looks complete. A folder counts as complete only if its manifest (written last,
before the rename) lists files that are all present with the recorded sizes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "xdna_manifest.json"
# Bump when the converter's output changes so old cache entries are not reused.
CONVERTER_VERSION = 1
CHECKPOINT_FILES = ("model.bin", "config.json", "tokenizer.json")
_HASH_CHUNK = 1 << 22


def cache_root() -> Path:
    """$XDG_CACHE_HOME/xdna-ep/models, else ~/.cache/xdna-ep/models."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "xdna-ep" / "models"


def checkpoint_hash(checkpoint_dir: Path) -> str:
    """sha256 over the checkpoint's files (name + length + bytes) and the converter version."""
    h = hashlib.sha256(f"xdna-ep-converter-{CONVERTER_VERSION}\n".encode())
    for name in CHECKPOINT_FILES:
        path = checkpoint_dir / name
        if not path.is_file():
            if name == "model.bin":
                raise FileNotFoundError(f"checkpoint_dir {checkpoint_dir} has no model.bin")
            continue
        h.update(f"{name}\n{path.stat().st_size}\n".encode())
        with path.open("rb") as f:
            while chunk := f.read(_HASH_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def entry_name(label: str, digest: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "whisper"
    return f"{safe}-{digest[:16]}"


@dataclass
class CacheCheck:
    valid: bool
    reason: str


def check_entry(folder: Path) -> CacheCheck:
    """Is `folder` a complete conversion? (manifest present, every listed file intact)."""
    manifest = folder / MANIFEST
    if not folder.is_dir():
        return CacheCheck(False, "missing")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        files = data["files"]
        if data.get("converter_version") != CONVERTER_VERSION:
            return CacheCheck(False, "made by another converter version")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return CacheCheck(False, f"manifest unreadable ({exc.__class__.__name__})")
    if not isinstance(files, dict) or not files:
        return CacheCheck(False, "manifest lists no files")
    for name, size in files.items():
        path = folder / name
        if not path.is_file():
            return CacheCheck(False, f"{name} missing")
        if path.stat().st_size != size:
            return CacheCheck(False, f"{name} has {path.stat().st_size} bytes, expected {size}")
    return CacheCheck(True, "ok")


def write_manifest(folder: Path, body: dict) -> None:
    """Record every file of `folder` with its size; written last, it marks completeness."""
    files = {
        str(p.relative_to(folder)): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    data = dict(body, converter_version=CONVERTER_VERSION, files=files)
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)


@contextlib.contextmanager
def entry_lock(root: Path, name: str) -> Iterator[None]:
    """Serialise conversions of the same entry across processes (advisory flock)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / f".{name}.lock").open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def staging_dir(final: Path) -> Iterator[Path]:
    """A temporary sibling of `final` (same file system, so rename is atomic); removed on error."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish(staged: Path, final: Path) -> None:
    """Move a finished staging folder into place, replacing an invalid old entry."""
    if final.exists():
        trash = final.with_name(f".trash-{final.name}-{os.getpid()}")
        os.rename(final, trash)
        shutil.rmtree(trash, ignore_errors=True)
    os.rename(staged, final)
