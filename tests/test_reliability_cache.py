"""Compiled-model cache integrity (issue 8 item 4; docs/RELIABILITY.md).

The cache (xdna_ep/ort/compiled_model.py) is trusted only as far as it checks itself:
tampered, truncated, stale and half-written entries must be detected and
rebuilt (or refused with a clear message), two processes compiling the same
model at once must both get correct sessions and leave one valid entry, a
read-only or full cache directory must not break or corrupt anything, and no
name inside a model or a manifest may make the provider read a file outside
the cache entry (checked with canary files whose access time would move).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from test_ort_support import big_linear_model

from xdna_ep.ort import InferenceSession
from xdna_ep.ort.compiled_model import EPCONTEXT_FILE, MANIFEST, MODEL_FILE, PROGRAM_DIR

from fuzz.model_mutators import canary_bytes  # isort: skip
from fuzz.runner import run_many  # isort: skip

EP = "XDNAExecutionProvider"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("model")
    path = d / "linear.onnx"
    onnx.save(big_linear_model(two_regions=True).model, str(path))
    return path


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(5).standard_normal((256, 384)).astype(np.float32)


def parsing_route(monkeypatch) -> None:
    """Sessions read the entry's model.onnx and programs: a session with a region
    tap (`bench accuracy`, the self-test twin) needs the rewritten model in Python;
    without one, a warm start reads only epcontext.onnx."""
    monkeypatch.setattr(InferenceSession, "_xdna_on_region_call",
                        lambda self: lambda call: None)


def session(model: Path | bytes, cache_dir: Path, **opts) -> InferenceSession:
    return InferenceSession(model if isinstance(model, bytes) else str(model),
                            providers=[EP, "CPUExecutionProvider"],
                            provider_options=[{"cache_dir": str(cache_dir),
                                               "device": "emulator", **opts}, {}])


def outputs(sess: InferenceSession, x: np.ndarray) -> list[bytes]:
    return [np.ascontiguousarray(o).tobytes() for o in sess.run(None, {"x": x})]


@pytest.fixture(scope="module")
def reference(model_file, x, tmp_path_factory) -> list[bytes]:
    """Outputs of a fresh compile (the cache only ever stores what compile made)."""
    sess = session(model_file, tmp_path_factory.mktemp("ref_cache"))
    assert sess.xdna_start.source == "compiled" and sess.xdna_start.regions == 2
    return outputs(sess, x)


def entry_of(cache: Path) -> Path:
    entries = [p for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(entries) == 1, entries
    return entries[0]


def leftovers(cache: Path) -> list[str]:
    """Temporary files and directories (the digest index is no leftover, but a
    half-written record inside it is)."""
    from xdna_ep.ort.digest_index import INDEX_DIR

    index = cache / INDEX_DIR
    temps = list(index.glob(".*")) if index.is_dir() else []
    return sorted(p.name for p in [*cache.iterdir(), *temps]
                  if p.name.startswith(".") and p != index)


def _resign(entry: Path) -> None:
    """Recompute the manifest's sha256 of every file (a tamperer who knows the format)."""
    man = json.loads((entry / MANIFEST).read_text())
    for rel in man["files"]:
        man["files"][rel] = hashlib.sha256((entry / rel).read_bytes()).hexdigest()
    (entry / MANIFEST).write_text(json.dumps(man))


def _flip(path: Path, where: float = 0.5) -> None:
    b = bytearray(path.read_bytes())
    b[int(len(b) * where)] ^= 0x5A
    path.write_bytes(bytes(b))


def _programs(entry: Path) -> list[Path]:
    return sorted((entry / PROGRAM_DIR).iterdir())


TAMPER = {
    "program_byte": lambda e: _flip(_programs(e)[0]),
    "program_truncated": lambda e: _programs(e)[0].write_bytes(
        _programs(e)[0].read_bytes()[:100]),
    "program_missing": lambda e: _programs(e)[0].unlink(),
    "program_byte_resigned": lambda e: (_flip(_programs(e)[0], 0.9), _resign(e)),
    "model_byte": lambda e: _flip(e / MODEL_FILE),
    "model_truncated": lambda e: (e / MODEL_FILE).write_bytes(
        (e / MODEL_FILE).read_bytes()[:300]),
    "model_truncated_resigned": lambda e: ((e / MODEL_FILE).write_bytes(
        (e / MODEL_FILE).read_bytes()[:300]), _resign(e)),
    "manifest_garbage": lambda e: (e / MANIFEST).write_bytes(b"\x00garbage{"),
    "manifest_empty": lambda e: (e / MANIFEST).write_text(""),
    "manifest_not_object": lambda e: (e / MANIFEST).write_text("[1, 2]"),
    "manifest_missing": lambda e: (e / MANIFEST).unlink(),
    "manifest_other_key": lambda e: _edit_manifest(e, lambda m: m["key"].update(model="0" * 64)),
    "manifest_files_not_dict": lambda e: _edit_manifest(e, lambda m: m.update(files=[])),
    "manifest_versions_not_dict": lambda e: _edit_manifest(e, lambda m: m.update(versions=[])),
    "epcontext_byte": lambda e: _flip(e / EPCONTEXT_FILE, 0.9),
    "epcontext_truncated_resigned": lambda e: ((e / EPCONTEXT_FILE).write_bytes(
        (e / EPCONTEXT_FILE).read_bytes()[:300]), _resign(e)),
    "epcontext_payload_byte_resigned": lambda e: (_flip(e / EPCONTEXT_FILE, 0.9), _resign(e)),
}
# files a warm start on the plugin library never reads (it runs epcontext.onnx): a
# consistent re-signing of their tampering is caught where they are read
READ_ONLY_BY_PARSE = {"model_truncated_resigned", "program_byte_resigned"}


def _edit_manifest(entry: Path, change) -> None:
    man = json.loads((entry / MANIFEST).read_text())
    change(man)
    (entry / MANIFEST).write_text(json.dumps(man))


def test_hit_after_miss_is_identical(model_file, x, reference, tmp_path):
    first = session(model_file, tmp_path)
    second = session(model_file, tmp_path)
    assert (first.xdna_start.source, second.xdna_start.source) == ("compiled", "cache")
    assert outputs(first, x) == outputs(second, x) == reference


@pytest.mark.parametrize("kind", sorted(TAMPER))
def test_tampered_entry_is_detected_and_rebuilt(kind, model_file, x, reference, tmp_path,
                                                caplog, monkeypatch):
    if kind in READ_ONLY_BY_PARSE:
        parsing_route(monkeypatch)
    session(model_file, tmp_path)
    entry = entry_of(tmp_path)
    TAMPER[kind](entry)
    with caplog.at_level(logging.WARNING, logger="xdna_ep"):
        sess = session(model_file, tmp_path)
    assert sess.xdna_start.source == "compiled", kind      # not trusted
    assert any("cache entry" in r.getMessage() for r in caplog.records), kind
    assert outputs(sess, x) == reference
    again = session(model_file, tmp_path)                   # the rebuilt entry is good
    assert again.xdna_start.source == "cache"
    assert outputs(again, x) == reference
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", sorted(READ_ONLY_BY_PARSE))
def test_files_the_plugin_route_does_not_read_cannot_change_its_numbers(kind, model_file, x,
                                                                        reference, tmp_path):
    session(model_file, tmp_path)
    TAMPER[kind](entry_of(tmp_path))
    sess = session(model_file, tmp_path)
    assert sess.xdna_start.source == "cache" and sess._xdna_native
    assert outputs(sess, x) == reference


def test_stale_entry_is_rebuilt_with_a_log_line(model_file, x, reference, tmp_path, caplog):
    session(model_file, tmp_path)
    _edit_manifest(entry_of(tmp_path), lambda m: m["versions"].update(package="0.0.0-old"))
    with caplog.at_level(logging.WARNING, logger="xdna_ep"):
        sess = session(model_file, tmp_path)
    assert sess.xdna_start.source == "compiled"
    assert any("0.0.0-old" in r.getMessage() and "rebuild" in r.getMessage()
               for r in caplog.records)
    assert outputs(sess, x) == reference
    assert session(model_file, tmp_path).xdna_start.source == "cache"


# -- confinement: names in manifests and models never reach outside -------------------------
@pytest.fixture()
def canary(tmp_path) -> Iterator[Path]:
    """A file outside every cache entry whose atime moves if anything reads it."""
    p = tmp_path / "outside" / "secret.bin"
    p.parent.mkdir()
    p.write_bytes(canary_bytes("cache-confinement", 4096))
    st = p.stat()
    os.utime(p, (st.st_mtime - 3600, st.st_mtime))
    yield p


def _read(p: Path) -> bool:
    st = p.stat()
    return st.st_atime > st.st_mtime - 1800


@pytest.mark.parametrize("name", ["../../outside/secret.bin", "/etc/passwd",
                                  "programs/../../../outside/secret.bin", "programs//x",
                                  "programs/../model.onnx", "programs/sub/x.xdp", "MANIFEST"])
def test_manifest_names_outside_the_entry_are_refused(name, model_file, x, reference,
                                                      tmp_path, canary, caplog):
    cache = tmp_path / "cache"
    session(model_file, cache)
    entry = entry_of(cache)
    digest = hashlib.sha256(canary_bytes("cache-confinement", 4096)).hexdigest()
    _edit_manifest(entry, lambda m: m["files"].update({name: digest}))
    with caplog.at_level(logging.WARNING, logger="xdna_ep"):
        sess = session(model_file, cache)
    assert sess.xdna_start.source == "compiled"
    assert outputs(sess, x) == reference
    assert not _read(canary)


def _region_model(entry: Path) -> onnx.ModelProto:
    return onnx.load(str(entry / MODEL_FILE))


@pytest.mark.parametrize("ref", ["../../outside/secret.bin", "/etc/passwd", "..",
                                 "a/../../b", "programs/x", ""])
def test_program_reference_in_a_cached_model_cannot_escape(ref, model_file, x, reference,
                                                           tmp_path, canary, monkeypatch):
    """A crafted rewritten model (its region node naming a path) in a consistently
    re-signed entry: the name is refused before any file is opened."""
    parsing_route(monkeypatch)  # the route that reads model.onnx
    cache = tmp_path / "cache"
    session(model_file, cache)
    entry = entry_of(cache)
    m = _region_model(entry)
    node = next(n for n in m.graph.node if n.domain and "xdna" in n.domain.lower())
    for a in node.attribute:
        if a.name == "program":
            a.s = ref.encode()
    onnx.save(m, str(entry / MODEL_FILE))
    _resign(entry)
    try:
        sess = session(model_file, cache)
    except ValueError as exc:          # refused with a message naming the reference
        assert "program reference" in str(exc)
    else:                              # or rebuilt
        assert sess.xdna_start.source == "compiled"
        assert outputs(sess, x) == reference
    assert not _read(canary)


@pytest.mark.parametrize("ref", ["../outside/secret.bin", "/etc/passwd", "x/../../y"])
def test_shipped_context_model_cannot_name_a_file(ref, model_file, tmp_path, canary):
    """A user-supplied compiled (EPContext-style) model whose region node names a path."""
    cache = tmp_path / "cache"
    session(model_file, cache)
    m = _region_model(entry_of(cache))
    node = next(n for n in m.graph.node if n.domain and "xdna" in n.domain.lower())
    for a in node.attribute:
        if a.name == "program":
            a.s = ref.encode()
    crafted = tmp_path / "model_dir" / "crafted.onnx"
    crafted.parent.mkdir()
    onnx.save(m, str(crafted))
    with pytest.raises(ValueError, match="program reference"):
        session(crafted, tmp_path / "cache2")
    assert not _read(canary)


def test_symlinked_program_file_is_not_followed_outside(model_file, x, reference, tmp_path,
                                                        canary):
    cache = tmp_path / "cache"
    session(model_file, cache)
    entry = entry_of(cache)
    prog = _programs(entry)[0]
    prog.unlink()
    prog.symlink_to(canary)
    sess = session(model_file, cache)
    assert sess.xdna_start.source == "compiled"
    assert outputs(sess, x) == reference
    assert not _read(canary), "the cache read a file outside its directory via a symlink"


def test_entry_replaced_while_being_read(model_file, x, reference, tmp_path, monkeypatch):
    """A concurrent writer renames the entry away between the manifest read and the
    checksum pass (os.replace + rmtree in ModelCache.store): a miss, not a failure."""
    import shutil

    import xdna_ep.ort.compiled_model as cache_mod

    session(model_file, tmp_path)
    entry = entry_of(tmp_path)
    real = cache_mod.sha256_file

    def vanishing(path):
        if entry.exists():
            shutil.rmtree(entry)
        return real(path)
    monkeypatch.setattr(cache_mod, "sha256_file", vanishing)
    sess = session(model_file, tmp_path)
    monkeypatch.setattr(cache_mod, "sha256_file", real)
    assert sess.xdna_start.source == "compiled"
    assert outputs(sess, x) == reference


# -- concurrency ------------------------------------------------------------------------------
def _concurrent(model: Path, cache: Path, x: np.ndarray, tmp: Path, n: int,
                runs: int = 1) -> list[dict]:
    inp = tmp / "in.npz"
    np.savez(inp, x=x)
    start = time.time() + 3.0           # everyone past import, then compile together
    jobs = [("session_worker", [model, cache, inp, tmp / f"out{i}.npz", f"{start:.3f}",
                                str(runs)]) for i in range(n)]
    results = run_many(jobs, timeout=300, parallel=n)
    recs = []
    for i, res in enumerate(results):
        assert res.outcome == "ok", res.describe()
        rec = res.records[0]
        assert "error" not in rec, rec.get("traceback")
        with np.load(tmp / f"out{i}.npz") as z:
            rec["outputs"] = [np.ascontiguousarray(z[k]).tobytes() for k in sorted(z.files)]
        recs.append(rec)
    return recs


@pytest.mark.slow
@pytest.mark.parametrize("state", ["empty", "stale", "corrupt"])
def test_two_processes_compiling_the_same_model_at_once(state, model_file, x, reference,
                                                        tmp_path):
    cache = tmp_path / "cache"
    if state != "empty":
        session(model_file, cache)
        e = entry_of(cache)
        if state == "stale":
            _edit_manifest(e, lambda m: m["versions"].update(kernels="old"))
        else:
            _flip(_programs(e)[0])
    for round_ in range(3):
        work = tmp_path / f"round{round_}"
        work.mkdir()
        recs = _concurrent(model_file, cache, x, work, n=2)
        for rec in recs:
            assert rec["outputs"] == reference
        assert leftovers(cache) == []
        entry_of(cache)                               # exactly one entry
        assert session(model_file, cache).xdna_start.source == "cache"
        # next round: make the entry need a rebuild again, so both race to replace it
        _flip(_programs(entry_of(cache))[0])


# -- read-only and full cache directories -----------------------------------------------------
@contextlib.contextmanager
def _mounted(path: Path, options: str) -> Iterator[bool]:
    """tmpfs at `path` (True), or False when this process may not mount."""
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                       capture_output=True)
    try:
        yield r.returncode == 0
    finally:
        if r.returncode == 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _fail_writes(monkeypatch, err: int) -> None:
    """Fallback when tmpfs cannot be mounted: the cache's writes raise `err`."""
    import xdna_ep.ort.compiled_model as cache_mod

    def boom(*a, **k):
        raise OSError(err, os.strerror(err))
    monkeypatch.setattr(cache_mod.onnx, "save", boom)


@pytest.mark.parametrize("kind", ["read_only", "full"])
def test_unwritable_cache_dir_still_gives_a_correct_session(kind, model_file, x, reference,
                                                           tmp_path, monkeypatch, caplog):
    cache = tmp_path / "cache"
    opts = "ro,size=1m" if kind == "read_only" else "size=64k"
    with _mounted(cache, opts) as mounted:
        if not mounted:
            _fail_writes(monkeypatch, errno.EROFS if kind == "read_only" else errno.ENOSPC)
        with caplog.at_level(logging.WARNING, logger="xdna_ep"):
            sess = session(model_file, cache)
        assert sess.xdna_start.source == "compiled"
        assert sess.get_providers()[0] == EP
        assert outputs(sess, x) == reference
        assert any("cache" in r.getMessage() for r in caplog.records), \
            "the failed cache write was not reported"
        if cache.exists():
            from xdna_ep.ort.digest_index import INDEX_DIR

            # a digest record (small, complete) may fit; never a partial entry
            assert not [p for p in cache.iterdir() if p.name != INDEX_DIR], \
                "a partial entry was left behind"
            assert leftovers(cache) == []
    # once writable again the same cache dir works normally
    sess = session(model_file, cache)
    assert outputs(sess, x) == reference


def test_entry_removed_before_onnx_runtime_reads_it(model_file, x, reference, tmp_path,
                                                   monkeypatch, caplog):
    """Another process rebuilds the entry (os.replace + delete) between this start's
    verification and ONNX Runtime reading epcontext.onnx: the start compiles again
    instead of failing, and the numbers are a fresh compile's."""
    import xdna_ep.ort.session as session_mod

    session(model_file, tmp_path)
    entry = entry_of(tmp_path)
    real_open = session_mod._open_entry_file

    calls = []

    def gone(path):  # the entry vanishes just before ONNX Runtime's first open
        calls.append(path)
        if len(calls) == 1:
            shutil.rmtree(entry)
        return real_open(path)

    monkeypatch.setattr(session_mod, "_open_entry_file", gone)
    with caplog.at_level(logging.WARNING, logger="xdna_ep"):
        sess = session(model_file, tmp_path)
    monkeypatch.undo()
    assert len(calls) == 2  # the vanished file, then the rebuilt entry's
    assert sess.xdna_start.source == "compiled" and sess._xdna_native
    assert any("rebuilding" in r.getMessage() for r in caplog.records)
    assert outputs(sess, x) == reference
    assert leftovers(tmp_path) == []
