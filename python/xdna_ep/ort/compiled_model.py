"""The compiled model, XDNA's artifact: written, read and validated in one place.

A compiled model is the user's model rewritten with one region node per NPU
region (rewrite/graph.py) plus one Program per region node (JSON + npz, never
unpickled), like ONNX Runtime's EPContext models (docs/ARCHITECTURE.md, key
decision 5). It exists in two forms:

1. A cache entry (one per model content + compile options), a directory

    <cache_dir>/<entry id>/manifest.json      key fields + sha256 of every file
    <cache_dir>/<entry id>/model.onnx         the rewritten model (region nodes)
    <cache_dir>/<entry id>/programs/<ref>     one Program blob per region
    <cache_dir>/<entry id>/epcontext.onnx     the same as com.microsoft EPContext
                                              nodes, which the plugin library runs

   A warm start on the plugin library hands ONNX Runtime the path of
   epcontext.onnx and parses nothing itself (no Python copy of the model's
   CPU-side weights: the Whisper decoder's are ~120 MB).

   The entry id hashes the model and the options; the manifest also records the
   versions that make an entry *stale* (package version, kernel manifest, program
   format). A stale entry is rebuilt with a log line; an entry whose files do not
   match their checksums is *corrupt* and raises CacheCorrupt (the provider logs
   it and rebuilds). Entries are written into a temporary directory and renamed
   into place, so a reader never sees half an entry.
   A *nothing-placed* entry (manifest "kind") lists no files and keeps only the
   plan: the decision that no region runs on the NPU, so a warm start skips the
   partition. Digests of unchanged files come from digest_index.DigestIndex.

2. A self-contained model a user can ship (`ep.context_enable=1`): each region
   node carries its program as a tensor attribute `program_blob` (uint8,
   Program.to_bytes()) next to its `digest`. Loading one skips partition and
   compile; the digest is verified before a program is used, and the blob
   attribute is stripped before the model reaches ONNX Runtime (no second copy
   in memory).

In both forms a program is trusted only if its digest equals the one its region
node names (`verified_program`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .. import __version__
from ..compile.program import PROGRAM_FORMAT_VERSION, Program
from ..rewrite.graph import check_program_ref, node_program, node_region_program, region_nodes
from .digest_index import DigestIndex

log = logging.getLogger("xdna_ep.cache")

CACHE_FORMAT_VERSION = 2  # 2: entries carry epcontext.onnx
MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"
EPCONTEXT_FILE = "epcontext.onnx"
PROGRAM_DIR = "programs"
PUBLISH_ATTEMPTS = 5  # renames of a new entry into place while other writers race
KIND_NOTHING_PLACED = "nothing-placed"  # manifest "kind": no region runs on the NPU
BLOB_ATTR = "program_blob"  # the program inside a shipped model's region node


class CacheCorrupt(RuntimeError):
    """A cache entry's files do not match its manifest (corrupt or tampered)."""


class CacheStale(RuntimeError):
    """A cache entry was built by another version of xdna-ep or its kernels."""


class EPContextError(ValueError):
    """A shipped compiled model is incomplete or its programs do not verify."""


def verified_program(blob: bytes, digest: str, where: str,
                     error: type[Exception]) -> Program:
    """The Program in `blob`, raised as `error` unless it loads and its digest is
    the one its region node names (`where` says which node or file, for the message)."""
    try:
        prog = Program.from_bytes(blob)
    except Exception as exc:  # noqa: BLE001 - zip/json/npz errors of a damaged blob
        raise error(f"{where} does not load ({exc})") from None
    if prog.digest() != digest:
        raise error(f"{where} digest differs from the one its region node names "
                    "(corrupt or modified)")
    return prog


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def kernel_manifest_version() -> str:
    """sha256 of kernels/manifest.json (the NPU kernels and their shapes)."""
    try:
        from importlib import resources

        ref = resources.files("xdna_ep._kernels").joinpath("manifest.json")
        return hashlib.sha256(ref.read_bytes()).hexdigest()[:16]
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return "no-manifest"


def compile_defaults() -> str:
    """The compiler's default choices (percentile, outlier split, GELU offset, ...)
    as JSON: a change of default makes old entries stale even within one package
    version (a development checkout), since provider options do not name them."""
    import dataclasses

    from ..compile import CompileOptions

    fields = {f.name: f.default for f in dataclasses.fields(CompileOptions)
              if f.default is not dataclasses.MISSING
              and isinstance(f.default, (bool, int, float, str, type(None)))}
    return json.dumps(fields, sort_keys=True)


def versions() -> dict[str, Any]:
    """What makes an entry stale when it changes (the EPContext payload format too:
    an entry's epcontext.onnx holds payloads of that version; the placement rule and
    NPU cost constants too: an entry stores a placement decision)."""
    from ..cost import placement_key
    from .epcontext import FORMAT_VERSION as PAYLOAD_FORMAT_VERSION

    return {"package": __version__, "kernels": kernel_manifest_version(),
            "program_format": PROGRAM_FORMAT_VERSION, "cache_format": CACHE_FORMAT_VERSION,
            "payload_format": PAYLOAD_FORMAT_VERSION, "compile_defaults": compile_defaults(),
            "placement": placement_key()}


def model_digest(model: str | os.PathLike[str] | bytes,
                 index: DigestIndex | None = None) -> str:
    """sha256 of the model's content: the file bytes plus its external data files
    (so an edited weights file is a different model). With `index`, a model file
    whose files are unchanged since its last digest is not read again."""
    if isinstance(model, bytes):
        return hashlib.sha256(model).hexdigest()
    if index is not None:
        return index.digest("model", model, _model_digest_and_files)
    return _model_digest_and_files(Path(model))[0]


def _model_digest_and_files(path: Path) -> tuple[str, list[Path]]:
    """(model digest, the external data files it covers)."""
    h = hashlib.sha256()
    h.update(path.read_bytes())
    proto = onnx.load(str(path), load_external_data=False)
    locations: set[str] = set()
    for tensor in _all_tensors(proto):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            for kv in tensor.external_data:
                if kv.key == "location":
                    locations.add(kv.value)
    for loc in sorted(locations):
        ext = path.parent / loc
        h.update(loc.encode())
        h.update(sha256_file(ext).encode() if ext.is_file() else b"<missing>")
    return h.hexdigest(), [path.parent / loc for loc in sorted(locations)]


def _all_tensors(model: onnx.ModelProto):
    from onnx.external_data_helper import _get_all_tensors

    return _get_all_tensors(model)


def entry_id(model_hash: str, options_json: str, calibration_hash: str) -> str:
    h = hashlib.sha256()
    for part in (model_hash, options_json, calibration_hash):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


@dataclass
class CacheEntry:
    """A loaded entry: the rewritten model and its programs by reference name."""

    path: Path
    model: onnx.ModelProto | None  # None: a "nothing placed on the NPU" decision
    programs: dict[str, Program]
    manifest: dict[str, Any] = field(default_factory=dict)
    # the entry's EPContext model, when it has one (verified like every file)
    epcontext: Path | None = None

    @property
    def region_count(self) -> int:
        return sum(1 for rel in self.manifest.get("files", {}) if rel.startswith(PROGRAM_DIR))


class ModelCache:
    """The cache directory (one per provider option `cache_dir`)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        # remembered digests of unchanged files (source models, entry files)
        self.index = DigestIndex(self.root)

    def entry_dir(self, eid: str) -> Path:
        return self.root / eid

    def load(self, eid: str, key: dict[str, Any], parse: bool = True) -> CacheEntry | None:
        """The entry, or None on a miss. Raises CacheStale / CacheCorrupt.

        parse=False: an entry with an EPContext model comes back with only that
        (checksums verified, model and programs not parsed)."""
        d = self.entry_dir(eid)
        mpath = d / MANIFEST
        if not d.is_dir():
            return None
        try:
            manifest = json.loads(mpath.read_text())
        except (OSError, ValueError) as exc:
            raise CacheCorrupt(f"cache entry {d}: unreadable {MANIFEST} ({exc})") from None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
            raise CacheCorrupt(f"cache entry {d}: {MANIFEST} has no file list")
        built = manifest.get("versions", {})
        if not isinstance(built, dict):
            raise CacheCorrupt(f"cache entry {d}: {MANIFEST} has no version table")
        now = versions()
        if built != now:
            changed = {k: (built.get(k), v) for k, v in now.items() if built.get(k) != v}
            raise CacheStale(f"cache entry {d} was built with {changed} "
                             "(built, current)")
        if manifest.get("key") != key:
            raise CacheCorrupt(f"cache entry {d}: its key does not match this model/options "
                               "(hash collision or tampering)")
        files: dict[str, str] = manifest["files"]
        if manifest.get("kind") == KIND_NOTHING_PLACED:
            if files or not isinstance(manifest.get("info", {}).get("plan"), dict):
                raise CacheCorrupt(f"cache entry {d}: a nothing-placed entry must list no "
                                   "files and carry its plan")
            return CacheEntry(d, None, {}, manifest)
        if MODEL_FILE not in files:
            raise CacheCorrupt(f"cache entry {d}: {MANIFEST} lists no {MODEL_FILE}")
        for rel, digest in files.items():
            p = self._confined(d, rel)
            if not p.is_file():
                raise CacheCorrupt(f"cache entry {d}: file {rel} is missing")
            try:
                actual = self.index.digest("sha256", p, lambda f: (sha256_file(f), []))
            except OSError as exc:  # e.g. replaced by a concurrent writer mid-read
                raise CacheCorrupt(f"cache entry {d}: cannot read {rel} ({exc})") from None
            if actual != digest:
                raise CacheCorrupt(f"cache entry {d}: file {rel} does not match its sha256 "
                                   "checksum (corrupt or modified)")
        ctx = d / EPCONTEXT_FILE if EPCONTEXT_FILE in files else None
        if not parse and ctx is not None:
            return CacheEntry(d, None, {}, manifest, ctx)
        try:
            model = onnx.load(str(d / MODEL_FILE))
        except Exception as exc:  # noqa: BLE001 - protobuf raises assorted types
            raise CacheCorrupt(f"cache entry {d}: {MODEL_FILE} does not parse ({exc})") from None
        programs: dict[str, Program] = {}
        for node in region_nodes(model):
            ref, digest = node_program(node)
            rel = f"{PROGRAM_DIR}/{ref}"
            if rel not in files:
                raise CacheCorrupt(f"cache entry {d}: program {ref} is not in {MANIFEST}")
            programs[ref] = verified_program(self._confined(d, rel).read_bytes(), digest,
                                             f"cache entry {d}: program {ref}", CacheCorrupt)
        return CacheEntry(d, model, programs, manifest, ctx)

    @staticmethod
    def _confined(d: Path, rel: str) -> Path:
        """A manifest path, refused if it leaves the entry directory."""
        parts = rel.split("/")
        if rel.startswith("/") or ".." in parts or not all(parts):
            raise CacheCorrupt(f"cache entry {d}: file name {rel!r} leaves the entry")
        if len(parts) == 2 and parts[0] == PROGRAM_DIR:
            check_program_ref(parts[1])
        elif rel not in (MODEL_FILE, EPCONTEXT_FILE):
            raise CacheCorrupt(f"cache entry {d}: unexpected file {rel!r} in {MANIFEST}")
        path = d.joinpath(*parts)
        # a symlink could point anywhere: never follow one out of the entry
        if path.is_symlink() or (path.parent != d and path.parent.is_symlink()):
            raise CacheCorrupt(f"cache entry {d}: {rel!r} is a symbolic link")
        return path

    def store(self, eid: str, key: dict[str, Any], model: onnx.ModelProto | None,
              programs: dict[str, Program], info: dict[str, Any] | None = None, *,
              dims: Mapping[str, int] | None = None) -> Path:
        """Write an entry atomically (temp dir + rename); returns its directory.

        `model` None stores a *nothing-placed* entry: the partition put no region on
        the NPU (e.g. the cost model kept the Whisper decoder on the CPU). It holds
        only the plan (`info["plan"]`), so a warm start skips partitioning the model
        again (seconds for a decoder) and hands ONNX Runtime the user's model.
        `dims`: the sizes of symbolic input dims this entry was compiled for; the
        EPContext payloads carry NPU images for them (ort/epcontext.py)."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{eid}-{uuid.uuid4().hex[:8]}"
        try:
            (tmp / PROGRAM_DIR).mkdir(parents=True)
            files: dict[str, str] = {}
            if model is not None:
                mpath = tmp / MODEL_FILE
                onnx.save(model, str(mpath))
                files[MODEL_FILE] = sha256_file(mpath)
            elif programs or not isinstance((info or {}).get("plan"), dict):
                raise ValueError("a nothing-placed cache entry has no programs and needs "
                                 "its plan in info['plan']")
            for ref, prog in sorted(programs.items()):
                rel = f"{PROGRAM_DIR}/{check_program_ref(ref)}"
                (tmp / rel).write_bytes(prog.to_bytes())
                files[rel] = sha256_file(tmp / rel)
            if model is not None:
                from .epcontext import PayloadError, epcontext_model

                try:
                    ctx = epcontext_model(model, programs, dims=dims)
                except PayloadError as exc:  # e.g. a stage value the payload cannot carry
                    log.info("cache entry %s: no EPContext model (%s)", eid, exc)
                else:
                    onnx.save(ctx, str(tmp / EPCONTEXT_FILE))
                    del ctx
                    files[EPCONTEXT_FILE] = sha256_file(tmp / EPCONTEXT_FILE)
            manifest = {"cache_format": CACHE_FORMAT_VERSION, "key": key,
                        "versions": versions(), "files": files, "info": info or {}}
            if model is None:
                manifest["kind"] = KIND_NOTHING_PLACED
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
            final = self.entry_dir(eid)
            if final.exists():  # a stale or corrupt entry being rebuilt
                old = self.root / f".old-{eid}-{uuid.uuid4().hex[:8]}"
                try:
                    os.replace(final, old)
                except FileNotFoundError:  # another writer moved it first
                    pass
                else:
                    shutil.rmtree(old, ignore_errors=True)
            for attempt in range(PUBLISH_ATTEMPTS):
                try:
                    os.replace(tmp, final)
                    return final
                except OSError:
                    # another writer published the same entry between our two
                    # renames: theirs is as good as ours (same key), keep it. It may
                    # also be moved aside that very moment by a third writer
                    # rebuilding it (then `final` is free again): try once more
                    if (final / MANIFEST).is_file():
                        log.info("cache entry %s was written concurrently; keeping that "
                                 "copy", final)
                        return final
                    if attempt == PUBLISH_ATTEMPTS - 1:
                        raise
            return final
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


# -- the shipped form (EPContext-style) ---------------------------------------------------
def embed_programs(model: onnx.ModelProto, programs: dict[str, Program]) -> onnx.ModelProto:
    """A copy of the rewritten `model` with every program embedded in its node."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for node in region_nodes(out):
        ref, prog = node_region_program(node, programs, EPContextError)
        blob = np.frombuffer(prog.to_bytes(), dtype=np.uint8)
        kept = [a for a in node.attribute if a.name not in (BLOB_ATTR, "session")]
        del node.attribute[:]
        node.attribute.extend(kept)
        node.attribute.append(helper.make_attribute("session", ""))
        node.attribute.append(helper.make_attribute(
            BLOB_ATTR, numpy_helper.from_array(blob, name=ref)))
    return out


def extract_programs(model: onnx.ModelProto) -> dict[str, Program]:
    """Programs embedded in a shipped model (verified); strips the blobs in place."""
    programs: dict[str, Program] = {}
    for node in region_nodes(model):
        ref, digest = node_program(node)
        blob_attr = next((a for a in node.attribute if a.name == BLOB_ATTR), None)
        if blob_attr is None:
            raise EPContextError(
                f"model contains XDNA region node {node.name} without an embedded program: "
                "it was not written with ep.context_enable=1 (a cache-internal model cannot be "
                "loaded on its own; load the original model instead)")
        blob = numpy_helper.to_array(blob_attr.t).tobytes()
        programs[ref] = verified_program(blob, digest,
                                         f"region node {node.name}: embedded program",
                                         EPContextError)
        kept = [a for a in node.attribute if a.name != BLOB_ATTR]
        del node.attribute[:]
        node.attribute.extend(kept)
    return programs


def write_shipped_model(model: onnx.ModelProto, programs: dict[str, Program],
                        path: str | os.PathLike[str]) -> None:
    """Write the self-contained compiled model to `path` atomically (temp + rename)."""
    shipped = embed_programs(model, programs)
    final = Path(path)
    tmp = final.with_name(final.name + ".tmp")
    onnx.save(shipped, str(tmp))
    os.replace(tmp, final)
