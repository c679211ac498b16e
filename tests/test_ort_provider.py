"""The provider core (xdna_ep/ort/provider.py) on its own, without an ONNX
Runtime session: what a native plugin EP would call. Its compiled regions run in
the plugin library (the session adapter hands them on), never in Python."""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest

from xdna_ep.ort import provider as core
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


def test_prepare_hands_every_region_node_program_to_the_plugin(lm, x, tmp_path):
    """By default the core runs on the plugin route (its device selection, its answer
    to which devices it runs): the compiled model and one program per region node
    are handed on, and the region ids and node names are known for region taps."""
    prov = _provider(tmp_path)
    prepared = prov.prepare(lm.model.SerializeToString())
    assert prov.start.source == "compiled" and prov.start.device == "emulator"
    assert prepared.native and prepared.notices == [] and prepared.rewritten is not None
    nodes = region_nodes(prepared.rewritten)
    refs = {node_program(n)[0] for n in nodes}
    assert len(refs) == 2 and refs == set(prepared.programs)
    assert set(prov.region_programs) == set(prov.region_names.values()) and \
        len(prov.region_programs) == 2 == prov.start.regions
    for n in nodes:
        rid, prog = prov.region_of(n.name)
        assert prog is prepared.programs[node_program(n)[0]] and rid == prov.region_names[n.name]
    # the programs handed on compute the model's regions (run here on the emulator)
    h = EmulatorDevice().load(prov.region_programs[0]).run({"x": x})["h"]
    want = x @ lm.W + lm.b
    cos = float(np.dot(h.ravel(), want.ravel()) / (np.linalg.norm(h) * np.linalg.norm(want)))
    assert cos > 0.999
    # a second provider on the same cache takes the compiled model from it
    again = _provider(tmp_path)
    assert again.prepare(lm.model.SerializeToString()).native
    assert again.start.source == "cache" and again.start.regions == 2


def test_a_device_the_caller_does_not_run_is_a_fallback_not_a_python_load(lm, tmp_path):
    """Nothing loads regions in Python any more: a caller that declines the device
    gets the fallback policy (a notice, or an error with fallback=error)."""
    prov = _provider(tmp_path)
    prov.native_devices = lambda device: False
    prepared = prov.prepare(lm.model.SerializeToString())
    assert prepared.rewritten is None and not prepared.native
    assert prov.start.source == "cpu-fallback"
    assert len(prepared.notices) == 1 and "run only in the plugin library" in \
        prepared.notices[0]
    strict = _provider(tmp_path, fallback="error")
    strict.native_devices = lambda device: False
    with pytest.raises(XDNAUnavailableError, match="run only in the plugin library"):
        strict.prepare(lm.model.SerializeToString())


def test_compile_overrides_are_part_of_the_cache_key(lm, tmp_path):
    plain = _provider(tmp_path)
    plain.prepare(lm.model.SerializeToString())
    other = core.XDNAProvider(parse_options({"device": "emulator", "cache_dir": str(tmp_path)}),
                              compile_overrides={"split_outliers": False})
    other.prepare(lm.model.SerializeToString())
    assert other.start.source == "compiled"
    assert other.start.cache_entry != plain.start.cache_entry


def test_fallback_policy_notice_or_error(lm, tmp_path):
    def no_device(name: str, fallback: str = "allow"):
        raise RuntimeError("no such device")

    prov = _provider(tmp_path)
    prov.device_selector = no_device
    prepared = prov.prepare(lm.model.SerializeToString())
    assert prepared.rewritten is None and prepared.programs == {}
    assert prov.start.source == "cpu-fallback"
    assert len(prepared.notices) == 1 and "no such device" in prepared.notices[0]
    strict = _provider(tmp_path, fallback="error")
    strict.device_selector = no_device
    with pytest.raises(XDNAUnavailableError, match="no such device"):
        strict.prepare(lm.model.SerializeToString())
