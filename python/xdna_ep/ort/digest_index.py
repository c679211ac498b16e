"""Remembered content digests of files, trusted only while the files are unchanged.

Every session start keys the compiled-model cache by the source model's content
(compiled_model.model_digest) and checks each cache entry file against its
sha256. For Whisper that was reading and hashing ~300 MB on every warm start. This
index remembers a digest next to the file's identity and change stamps
(device, inode, size, mtime_ns, ctime_ns), in the spirit of git's index: while
all of those are equal the file has not been written, so the digest still holds;
any write, truncation, replacement (new inode) or timestamp reset (which moves
ctime, settable by no user call) makes the stamps differ and the digest is
computed again from the bytes.

A write in the same clock tick as the recording could leave the stamps equal
("racy" files), so a digest is recorded only for files whose mtime and ctime are
older than RACY_SECONDS before the hashing began; younger files (and files
written while being hashed) are simply hashed every time.

The records live in <cache_dir>/.digests/ (a dot name: never taken for a cache
entry). Anyone who can write there can also write cache entries, so the index
adds no new trust. It is an optimisation only: an unreadable, damaged or
unwritable record just means the full hash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger("xdna_ep.cache")

INDEX_DIR = ".digests"
RACY_SECONDS = 2.0  # files changed more recently than this are never recorded

Stamp = list[int] | None  # (dev, ino, size, mtime_ns, ctime_ns); None: file missing


def stamp(path: Path) -> Stamp:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _settled(stamps: Sequence[Stamp], since_ns: int) -> bool:
    """True when no file was changed after `since_ns` - RACY_SECONDS (so none was
    written while its digest was computed, nor in the tick of the recording)."""
    limit = since_ns - int(RACY_SECONDS * 1e9)
    return all(s is None or (s[3] < limit and s[4] < limit) for s in stamps)


class DigestIndex:
    """Digests by (kind, absolute path), valid while the files' stamps are equal."""

    def __init__(self, cache_root: Path) -> None:
        self.dir = Path(cache_root) / INDEX_DIR

    def _record_path(self, kind: str, path: Path) -> Path:
        name = hashlib.sha256(f"{kind}\0{path}".encode()).hexdigest()[:32]
        return self.dir / f"{name}.json"

    def digest(self, kind: str, path: str | os.PathLike[str],
               compute: Callable[[Path], tuple[str, list[Path]]]) -> str:
        """The digest of `path` (`kind` names what `compute` returns, e.g. a model
        digest or a plain sha256). `compute(path)` returns (digest, further files
        the digest covers, e.g. external data); it runs only when a stamp changed."""
        path = Path(os.path.abspath(path))
        rec_path = self._record_path(kind, path)
        try:
            rec = json.loads(rec_path.read_text())
            files = rec["files"]
            if (rec.get("path") == str(path) and isinstance(files, dict) and str(path) in files
                    and all(stamp(Path(f)) == s for f, s in files.items())):
                return str(rec["digest"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # no record, or an unusable one: hash the bytes
        t0 = time.time_ns()
        before = stamp(path)
        value, extra = compute(path)
        covered = [path, *(Path(os.path.abspath(p)) for p in extra)]
        stamps = {str(p): stamp(p) for p in covered}
        # changed while we hashed, or too recent to tell a later write apart: no record
        if stamps[str(path)] == before and before is not None and _settled(list(stamps.values()), t0):
            self._write(rec_path, {"path": str(path), "files": stamps, "digest": value})
        return value

    def _write(self, rec_path: Path, rec: dict) -> None:
        tmp = rec_path.with_name(f".{rec_path.name}.{uuid.uuid4().hex[:8]}")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(rec))
            os.replace(tmp, rec_path)
        except OSError as exc:  # read-only cache_dir: the next start hashes again
            log.debug("digest index not written (%s)", exc)
            tmp.unlink(missing_ok=True)
