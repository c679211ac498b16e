"""The provider core (xdna_ep/ort/provider.py) on its own, without an ONNX
Runtime session: what a native plugin EP would call."""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest

from xdna_ep.ort import provider as core
from xdna_ep.ort import stages
from xdna_ep.ort.errors import XDNAUnavailableError
from xdna_ep.ort.options import parse_options
from xdna_ep.rewrite import region_nodes
from xdna_ep.rewrite.graph import node_program
from xdna_ep.runtime import EmulatorDevice


@pytest.fixture
def x():
    return np.random.default_rng(7).standard_normal((256, 384)).astype(np.float32)


def _provider(tmp_path, **opts) -> core.XDNAProvider:
    return core.XDNAProvider(parse_options({"device": "emulator", "cache_dir": str(tmp_path),
                                            **opts}))


def test_core_imports_no_onnxruntime():
    tree = ast.parse(inspect.getsource(core))
    modules = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    modules += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert modules and not [m for m in modules if m.split(".")[0] == "onnxruntime"]


def test_prepare_loads_every_region_node_program(lm, x, tmp_path):
    prov = _provider(tmp_path)
    prepared = prov.prepare(lm.model.SerializeToString())
    assert prov.start.source == "compiled" and prov.start.device == "emulator"
    assert prepared.notices == [] and prepared.rewritten is not None
    refs = {node_program(n)[0] for n in region_nodes(prepared.rewritten)}
    assert len(refs) == 2 and set(prepared.regions) == refs == set(prepared.programs)
    outs = {}
    for name, region in prepared.regions.items():
        got = region.loaded.run(dict(zip(region.inputs, [x], strict=True)))
        # the same program loaded on a second emulator device gives the same bytes
        again = EmulatorDevice().load(prepared.programs[name]).run({"x": x})
        for t in region.outputs:
            np.testing.assert_array_equal(got[t], again[t])
        outs.update(got)
    h = outs["h"]
    want = x @ lm.W + lm.b
    cos = float(np.dot(h.ravel(), want.ravel()) / (np.linalg.norm(h) * np.linalg.norm(want)))
    assert cos > 0.999
    # a second provider on the same cache takes the compiled model from it
    again = _provider(tmp_path)
    assert again.prepare(lm.model.SerializeToString()).regions.keys() == prepared.regions.keys()
    assert again.start.source == "cache"


def test_observer_sees_every_region_call(lm, x, tmp_path):
    seen: list[tuple[int, str, tuple[str, ...]]] = []
    prov = core.XDNAProvider(parse_options({"device": "emulator", "cache_dir": str(tmp_path)}),
                             observe=lambda rid, prog, out: seen.append(
                                 (rid, prog.digest(), tuple(sorted(out)))))
    prepared = prov.prepare(lm.model.SerializeToString())
    for region in prepared.regions.values():
        region.loaded.run({"x": x})
    assert sorted(r for r, _, _ in seen) == sorted(r.region for r in prepared.regions.values())
    digests = {p.digest() for p in prepared.programs.values()}
    assert {d for _, d, _ in seen} == digests


def test_compile_overrides_are_part_of_the_cache_key(lm, tmp_path):
    plain = _provider(tmp_path)
    plain.prepare(lm.model.SerializeToString())
    other = core.XDNAProvider(parse_options({"device": "emulator", "cache_dir": str(tmp_path)}),
                              compile_overrides={"split_outliers": False})
    other.prepare(lm.model.SerializeToString())
    assert other.start.source == "compiled"
    assert other.start.cache_entry != plain.start.cache_entry


def test_fallback_policy_notice_or_error(lm, tmp_path, monkeypatch):
    def no_device(name: str, fallback: str = "allow"):
        raise RuntimeError("no such device")

    monkeypatch.setattr(stages, "select_device", no_device)
    prov = _provider(tmp_path)
    prepared = prov.prepare(lm.model.SerializeToString())
    assert prepared.rewritten is None and prepared.regions == {}
    assert prov.start.source == "cpu-fallback"
    assert len(prepared.notices) == 1 and "no such device" in prepared.notices[0]
    with pytest.raises(XDNAUnavailableError, match="no such device"):
        _provider(tmp_path, fallback="error").prepare(lm.model.SerializeToString())
