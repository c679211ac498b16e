"""`xdna-ep bench session --json`: runs and reports the documented keys (no timing
assertions: figures are measured, not tested)."""

from __future__ import annotations

import json

from xdna_ep.cli import main


def test_bench_session_json(capsys):
    assert main(["bench", "session", "--json", "--layers", "1", "--repeats", "1",
                 "--calls", "5"]) == 0
    doc = json.loads(capsys.readouterr().out)
    for key in ("first_start_s", "cached_start_s", "cache_speedup", "region_call_overhead_us"):
        assert isinstance(doc[key], float), key
    assert doc["first_start_s"] > 0 and doc["cached_start_s"] > 0
    assert doc["regions"] >= 1
    assert set(doc["large_call_ms"]) == {"ort", "direct"}
    for key in ("region_call_us", "program_us", "ort_floor_us"):  # the overhead's parts
        assert isinstance(doc[key], float), key
    # the plugin's figures only: no key of the former Python bridge
    assert not [k for k in doc if "bridge" in k]


def test_bench_session_text_names_the_plugin_route_only(capsys):
    assert main(["bench", "session", "--layers", "1", "--repeats", "1", "--calls", "5"]) == 0
    out = capsys.readouterr().out
    assert "through ORT + plugin" in out and "second start (cache hit)" in out
    assert "bridge" not in out.lower()


def test_direct_program_equals_the_plugin_session():
    """The benchmark's baseline runs the very program the ORT session runs: same
    bytes out of both (else the overhead figure would compare different work)."""
    import numpy as np

    from xdna_ep.bench.session import _PluginRegion, one_region_model

    region = _PluginRegion(one_region_model(16))
    x = np.random.default_rng(4).standard_normal((16, 384)).astype(np.float32)
    np.testing.assert_array_equal(region.sess.run(None, {"x": x})[0],
                                  region.direct.run([x], (16, 384)))
