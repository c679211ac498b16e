"""Compiled-model cache: miss, hit, stale, corrupt, tampered; EPContext models."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from test_ort_support import big_linear_model

from xdna_ep.ort import InferenceSession
from xdna_ep.ort import compiled_model as cache
from xdna_ep.ort.compiled_model import BLOB_ATTR, CacheCorrupt, EPContextError, ModelCache
from xdna_ep.rewrite import DOMAIN

EP = "XDNAExecutionProvider"


@pytest.fixture
def x():
    return np.random.default_rng(7).standard_normal((256, 384)).astype(np.float32)


def _start(model_bytes: bytes, cache_dir: Path, **opts) -> InferenceSession:
    return InferenceSession(model_bytes, providers=[EP],
                            provider_options=[{"cache_dir": str(cache_dir), **opts}])


def _entries(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.iterdir() if not p.name.startswith("."))


def test_miss_then_hit(lm, x, tmp_path):
    mb = lm.model.SerializeToString()
    first = _start(mb, tmp_path)
    assert first.xdna_start.source == "compiled"
    (entry,) = _entries(tmp_path)
    manifest = json.loads((entry / "manifest.json").read_text())
    assert set(manifest["files"]) == {"model.onnx", "epcontext.onnx",
                                      *(f"programs/{r}" for r in first.xdna_programs)}
    assert manifest["versions"] == cache.versions()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers
    second = _start(mb, tmp_path)
    assert second.xdna_start.source == "cache"
    assert second.xdna_start.cache_entry == entry
    assert second.xdna_start.regions == 2
    # a warm start on the plugin library parses nothing: ORT reads the entry's file
    assert second.xdna_programs == {} and second._xdna_native
    for a, b in zip(first.run(None, {"x": x}), second.run(None, {"x": x}), strict=True):
        np.testing.assert_array_equal(a, b)


def test_key_covers_model_and_options(lm, tmp_path):
    mb = lm.model.SerializeToString()
    _start(mb, tmp_path)
    other = big_linear_model(seed=1, two_regions=True).model.SerializeToString()
    assert _start(other, tmp_path).xdna_start.source == "compiled"
    assert _start(mb, tmp_path, exclude_nodes="mm1").xdna_start.source == "compiled"
    # options that do not change the compiled model share the entry
    assert _start(mb, tmp_path, fallback="error").xdna_start.source == "cache"
    assert len(_entries(tmp_path)) == 3


def test_stale_entry_is_rebuilt_with_a_log_line(lm, tmp_path, monkeypatch, caplog):
    mb = lm.model.SerializeToString()
    _start(mb, tmp_path)
    real = cache.versions()
    monkeypatch.setattr(cache, "versions", lambda: {**real, "package": "999.0"})
    with caplog.at_level(logging.WARNING, logger="xdna_ep"):
        s = _start(mb, tmp_path)
    assert s.xdna_start.source == "compiled"
    assert "was built with" in caplog.text and "rebuilding" in caplog.text
    monkeypatch.undo()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="xdna_ep"):
        assert _start(mb, tmp_path).xdna_start.source == "compiled"  # rebuilt for 0.1.0 again
    assert _start(mb, tmp_path).xdna_start.source == "cache"


def test_a_changed_cost_model_rebuilds_the_cached_placement(lm, tmp_path, monkeypatch,
                                                           caplog):
    """An entry stores a placement decision (a "nothing placed" one too): NPU cost
    constants or a placement rule other than the entry's make it stale."""
    import dataclasses

    from xdna_ep import cost

    mb = lm.model.SerializeToString()
    _start(mb, tmp_path)
    assert _start(mb, tmp_path).xdna_start.source == "cache"
    monkeypatch.setattr(cost, "NpuCostModel", dataclasses.make_dataclass(
        "NpuCostModel", [("region_call_s", float, 40e-6)], bases=(cost.NpuCostModel,),
        frozen=True))
    with caplog.at_level(logging.WARNING, logger="xdna_ep"):
        assert _start(mb, tmp_path).xdna_start.source == "compiled"
    assert "'placement'" in caplog.text and "rebuilding" in caplog.text
    monkeypatch.setattr(cost, "PLACEMENT_RULES_VERSION", cost.PLACEMENT_RULES_VERSION + 1)
    assert _start(mb, tmp_path).xdna_start.source == "compiled"


@pytest.mark.parametrize("target", ["program", "model", "epcontext"])
def test_corrupt_file_is_detected_and_rebuilt(lm, x, tmp_path, caplog, target):
    mb = lm.model.SerializeToString()
    good = _start(mb, tmp_path).run(None, {"x": x})
    (entry,) = _entries(tmp_path)
    f = (next((entry / "programs").iterdir()) if target == "program"
         else entry / f"{target}.onnx")
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="xdna_ep"):
        s = _start(mb, tmp_path)
    assert s.xdna_start.source == "compiled"
    assert "sha256" in caplog.text and "rebuilding" in caplog.text
    for a, b in zip(good, s.run(None, {"x": x}), strict=True):
        np.testing.assert_array_equal(a, b)
    assert _start(mb, tmp_path).xdna_start.source == "cache"


def _entry_and_key(lm, tmp_path):
    mb = lm.model.SerializeToString()
    s = _start(mb, tmp_path)
    entry = s.xdna_start.cache_entry
    manifest = json.loads((entry / "manifest.json").read_text())
    return entry, manifest


def test_tampered_program_with_fixed_checksum_is_refused(lm, tmp_path):
    """Someone swaps a program and updates the manifest's sha256: the program's
    digest no longer matches the one its region node names."""
    entry, manifest = _entry_and_key(lm, tmp_path)
    progs = sorted((entry / "programs").iterdir())
    a, b = progs[0], progs[1]
    a.write_bytes(b.read_bytes())
    manifest["files"][f"programs/{a.name}"] = cache.sha256_file(a)
    (entry / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CacheCorrupt, match="digest differs"):
        ModelCache(tmp_path).load(entry.name, manifest["key"])


def test_manifest_cannot_point_outside_the_entry(lm, tmp_path):
    entry, manifest = _entry_and_key(lm, tmp_path)
    manifest["files"]["../../etc/passwd"] = "0" * 64
    (entry / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CacheCorrupt, match="leaves the entry"):
        ModelCache(tmp_path).load(entry.name, manifest["key"])


def test_unreadable_manifest_and_wrong_key(lm, tmp_path):
    entry, manifest = _entry_and_key(lm, tmp_path)
    with pytest.raises(CacheCorrupt, match="key does not match"):
        ModelCache(tmp_path).load(entry.name, {**manifest["key"], "model": "x"})
    (entry / "manifest.json").write_text("{not json")
    with pytest.raises(CacheCorrupt, match="unreadable"):
        ModelCache(tmp_path).load(entry.name, manifest["key"])
    assert ModelCache(tmp_path).load("0" * 32, manifest["key"]) is None  # a plain miss


def test_epcontext_model_written_and_shipped(lm, x, tmp_path):
    so = ort.SessionOptions()
    so.add_session_config_entry("ep.context_enable", "1")
    ctx = tmp_path / "ship" / "model_ctx.onnx"
    ctx.parent.mkdir()
    so.add_session_config_entry("ep.context_file_path", str(ctx))
    first = InferenceSession(lm.model.SerializeToString(), so, providers=[EP],
                             provider_options=[{"cache_dir": str(tmp_path / "c1")}])
    want = first.run(None, {"x": x})
    shipped = onnx.load(str(ctx))
    nodes = [n for n in shipped.graph.node if n.domain == DOMAIN]
    assert len(nodes) == 2
    assert all(any(a.name == BLOB_ATTR for a in n.attribute) for n in nodes)
    # a user loads the shipped file elsewhere: no partition, no compile, empty cache
    s = InferenceSession(str(ctx), providers=[EP],
                         provider_options=[{"cache_dir": str(tmp_path / "c2")}])
    assert s.xdna_start.source == "epcontext"
    assert not (tmp_path / "c2").exists()
    for a, b in zip(want, s.run(None, {"x": x}), strict=True):
        np.testing.assert_array_equal(a, b)


def test_compile_cli_takes_a_shipped_model_as_it_is(lm, tmp_path):
    """xdna-ep compile of a model that already holds compiled regions converts its
    programs (no partition: the compile path checks for region nodes as a session
    start does)."""
    from xdna_ep.ort.compile_cli import compile_to_epcontext

    so = ort.SessionOptions()
    so.add_session_config_entry("ep.context_enable", "1")
    ctx = tmp_path / "m_ctx.onnx"
    so.add_session_config_entry("ep.context_file_path", str(ctx))
    InferenceSession(lm.model.SerializeToString(), so, providers=[EP],
                     provider_options=[{"cache_dir": str(tmp_path / "c")}])
    out = compile_to_epcontext(ctx, tmp_path / "m_epc.onnx",
                               options={"cache_dir": str(tmp_path / "c2")})
    written = onnx.load(str(out))
    assert [n.op_type for n in written.graph.node if n.domain == "com.microsoft"] == \
        ["EPContext", "EPContext"]
    assert not (tmp_path / "c2").exists()  # nothing partitioned or compiled again


def test_epcontext_tampered_blob_is_refused(lm, tmp_path):
    so = ort.SessionOptions()
    so.add_session_config_entry("ep.context_enable", "1")
    ctx = tmp_path / "m_ctx.onnx"
    so.add_session_config_entry("ep.context_file_path", str(ctx))
    InferenceSession(lm.model.SerializeToString(), so, providers=[EP],
                     provider_options=[{"cache_dir": str(tmp_path / "c")}])
    m = onnx.load(str(ctx))
    node = next(n for n in m.graph.node if n.domain == DOMAIN)
    attr = next(a for a in node.attribute if a.name == BLOB_ATTR)
    blob = numpy_helper.to_array(attr.t).copy()
    blob[len(blob) // 2] ^= 1
    attr.t.CopyFrom(numpy_helper.from_array(blob, attr.t.name))
    with pytest.raises(EPContextError, match="embedded program"):
        InferenceSession(m.SerializeToString(), providers=[EP],
                         provider_options=[{"cache_dir": str(tmp_path / "c")}])


def test_cache_internal_model_alone_is_refused(lm, tmp_path):
    entry, _ = _entry_and_key(lm, tmp_path)
    with pytest.raises(EPContextError, match="without an embedded program"):
        InferenceSession(str(entry / "model.onnx"), providers=[EP],
                         provider_options=[{"cache_dir": str(tmp_path)}])


def test_epcontext_default_path_next_to_the_model(lm, tmp_path):
    path = tmp_path / "enc.onnx"
    onnx.save(lm.model, str(path))
    so = ort.SessionOptions()
    so.add_session_config_entry("ep.context_enable", "1")
    s = InferenceSession(str(path), so, providers=[EP],
                         provider_options=[{"cache_dir": str(tmp_path / "c")}])
    assert (tmp_path / "enc_ctx.onnx").is_file()
    assert s.xdna_start.notes == [f"context model: {tmp_path / 'enc_ctx.onnx'}"]


def test_concurrent_writers_leave_one_valid_entry(lm, tmp_path):
    import threading

    entry, manifest = _entry_and_key(lm, tmp_path / "src")
    loaded = ModelCache(tmp_path / "src").load(entry.name, manifest["key"])
    target = ModelCache(tmp_path / "dst")
    errors: list[BaseException] = []

    def write():
        try:
            target.store(entry.name, manifest["key"], loaded.model, loaded.programs)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert [p.name for p in (tmp_path / "dst").iterdir()] == [entry.name]
    again = target.load(entry.name, manifest["key"])
    assert set(again.programs) == set(loaded.programs)


def test_nothing_placed_decision_is_cached(tmp_path, monkeypatch):
    """A model the cost model keeps on the CPU is partitioned once: the warm start
    reads the decision (and its plan) from the cache, and says why as before."""
    from test_ort_support import linear_model

    from xdna_ep.ort import XDNAFallbackWarning, stages

    tiny = linear_model()  # 64x32 matmuls: the cost model keeps them on the CPU
    for vi in (*tiny.model.graph.input, *tiny.model.graph.output):
        vi.type.tensor_type.shape.dim[0].dim_value = 2  # sized: decided at session start
    mb = tiny.model.SerializeToString()
    with pytest.warns(XDNAFallbackWarning, match="no node on the NPU"):
        first = _start(mb, tmp_path)
    assert first.xdna_start.source == "cpu-by-cost"
    (entry,) = _entries(tmp_path)
    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["kind"] == cache.KIND_NOTHING_PLACED and manifest["files"] == {}

    def no_partition(*a, **k):
        raise AssertionError("a warm start partitioned the model again")

    monkeypatch.setattr(stages, "partition", no_partition)
    with pytest.warns(XDNAFallbackWarning, match="no node on the NPU.*launch overhead"):
        second = _start(mb, tmp_path)
    assert second.xdna_start.source == "cpu-by-cost"
    assert second.xdna_start.cache_entry == entry
    assert [r.placement for r in second.xdna_plan.regions] == \
        [r.placement for r in first.xdna_plan.regions]
    x = np.ones((2, 64), np.float32)
    np.testing.assert_allclose(second.run(None, {"x": x})[0], tiny.fp32(x)["y"], rtol=1e-5)
    # a nothing-placed entry that lists files (tampered) is corrupt, not trusted
    manifest["files"] = {"model.onnx": "0" * 64}
    (entry / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CacheCorrupt, match="nothing-placed"):
        ModelCache(tmp_path).load(entry.name, manifest["key"])


def test_nothing_compiled_decision_is_cached(lm, tmp_path, monkeypatch):
    """Regions the partition placed on the NPU but the compiler could not build
    (e.g. a decoder's KV-cache attention) leave nothing on the NPU: that outcome is
    cached too, so a warm start neither partitions nor compiles again."""
    from xdna_ep.ort import XDNAFallbackWarning, stages

    monkeypatch.setattr(stages, "compile_regions", lambda *a, **k: {})
    mb = lm.model.SerializeToString()
    with pytest.warns(XDNAFallbackWarning, match="no node of the model can run"):
        first = _start(mb, tmp_path)
    (entry,) = _entries(tmp_path)
    assert first.xdna_start.cache_entry == entry

    def no_partition(*a, **k):
        raise AssertionError("a warm start partitioned the model again")

    monkeypatch.setattr(stages, "partition", no_partition)
    with pytest.warns(XDNAFallbackWarning, match="no node of the model can run"):
        second = _start(mb, tmp_path)
    assert second.xdna_start.cache_entry == entry
    assert EP not in second.get_providers()
    # fallback=error still refuses, from the cached decision
    from xdna_ep.ort import XDNAUnavailableError

    with pytest.raises(XDNAUnavailableError, match="no node"):
        _start(mb, tmp_path, fallback="error")


def test_warm_start_leaves_the_entry_files_untouched(lm, x, tmp_path):
    """A warm start on the plugin library reads epcontext.onnx without changing its
    stamps (the digest index keys on them: a changed ctime would mean a full hash of
    the file at every start) and leaves nothing behind in the cache."""
    mb = lm.model.SerializeToString()
    _start(mb, tmp_path)
    (entry,) = _entries(tmp_path)
    before = {p.name: os.stat(p) for p in entry.iterdir() if p.is_file()}
    second = _start(mb, tmp_path)
    assert second.xdna_start.source == "cache" and second._xdna_native
    second.run(None, {"x": x})
    after = {p.name: os.stat(p) for p in entry.iterdir() if p.is_file()}
    assert "epcontext.onnx" in after
    for name, st in before.items():
        assert (after[name].st_ino, after[name].st_ctime_ns, after[name].st_nlink) == (
            st.st_ino, st.st_ctime_ns, st.st_nlink), name
    assert _entries(tmp_path) == [entry]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".load")]
