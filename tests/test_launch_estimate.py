"""Before compile, the cost model prices a region at the launches compile will make
(compile/estimate.py: compile's own stage emission and grouping), not one per op."""

from __future__ import annotations

import dataclasses

import pytest
from synthetic import graphs as ms

from xdna_ep.compile.api import CompileOptions, compile_plan
from xdna_ep.compile.estimate import GROUPED
from xdna_ep.cost import PER_OP_RULE, region_cost
from xdna_ep.partition import partition_model

DYNAMIC = CompileOptions(quantization="dynamic", measure_sqnr=False)


def _compiled_launches(model_fn, options: CompileOptions) -> list[int]:
    model = model_fn()
    plan = partition_model(model, use_cost_model=False)
    compile_plan(model, plan, options)
    return [r.launches for r in plan.regions]


@pytest.mark.parametrize("d,t", [(64, 16), (128, 64), (384, 1500)])
def test_synthetic_layer_estimate_equals_compiled_launches(d: int, t: int) -> None:
    def model():
        return ms.encoder_layer(d=d, heads=2, ffn=4 * d, t=t, seed=1)

    plan = partition_model(model())
    (r,) = plan.regions
    assert r.estimate_rule == GROUPED
    assert [r.estimated_launches] == _compiled_launches(model, DYNAMIC)
    assert r.estimated_launches < len(r.matches)  # compile fuses the layer's chain


def _no_designs(kernels):
    """A design lookup with no fused design: one launch per stage."""
    return None


@pytest.mark.parametrize("find", [None, _no_designs])
def test_each_mode_estimate_equals_its_compiled_launches(find) -> None:
    """Static and dynamic mode, with the manifest's designs and without any: the
    estimate follows the options compile gets (mode, design lookup)."""
    import numpy as np

    def model():
        return ms.encoder_layer(d=128, heads=2, ffn=512, t=64, seed=1)

    x = np.random.default_rng(0).standard_normal((1, 64, 128)).astype(np.float32)
    feed = [{model().graph.input[0].name: x}]
    got = {}
    for mode in ("static", "dynamic"):
        options = CompileOptions(quantization=mode, calibration=feed if mode == "static"
                                 else None, measure_sqnr=False, find_design=find)
        (r,) = partition_model(model(), compile_options=options,
                               use_cost_model=True).regions
        assert r.estimate_rule == GROUPED
        assert [r.estimated_launches] == _compiled_launches(model, options)
        got[mode] = r.estimated_launches
    if find is _no_designs:  # one launch per stage: dynamic mode has its quantize stages
        assert got["dynamic"] > got["static"] > 4


def test_small_layer_now_placed_on_the_npu() -> None:
    """A 1-layer encoder (d 128, 256 tokens): 13 matches, 4 launches once compiled.
    Priced at one launch per op (13 x 0.15 ms) it stayed on the CPU; at compile's
    grouping it is worth the trip."""
    plan = partition_model(ms.encoder_layer(d=128, heads=2, ffn=512, t=256, seed=1))
    (r,) = plan.regions
    assert r.placement == "npu" and "NPU faster" in r.cost_reason
    assert f"{r.estimated_launches} launches (estimated: {GROUPED})" in r.cost_reason
    per_op = dataclasses.replace(r, estimated_launches=0, estimate_rule="")
    old = region_cost(per_op)
    assert old.launches == len(r.matches) == 13 and old.estimate_rule == PER_OP_RULE
    assert old.placement == "cpu"


def test_region_that_does_not_lower_is_counted_per_op_and_says_why() -> None:
    """The decoder's self-attention reads a KV cache input (no NPU lowering): its
    chain cannot be derived, so one launch per matched op, with the reason."""
    plan = partition_model(ms.decoder_with_past_layer(d=384, heads=6, ffn=1536, past=20,
                                                      enc=1500))
    per_op = [r for r in plan.regions if r.estimate_rule != GROUPED]
    assert per_op
    for r in per_op:
        assert r.estimated_launches == len(r.matches)
        assert r.estimate_rule.startswith("one launch per matched op: it does not lower")
        assert "past_key" in r.estimate_rule and r.estimate_rule in r.cost_reason


def test_estimate_leaves_the_model_unchanged() -> None:
    from xdna_ep.compile.estimate import estimate_launches

    model = ms.encoder_layer(d=64, heads=2, ffn=256, t=16, seed=1)

    plan = partition_model(model, use_cost_model=False)  # names made unique in place
    before = model.SerializeToString()
    got = estimate_launches(model, plan.regions, DYNAMIC)
    assert got[0].launches > 0 and model.SerializeToString() == before


@pytest.mark.slow
def test_tiny_whisper_estimate_equals_compiled_launches(tmp_path) -> None:
    """A default-mode 2-layer tiny Whisper encoder (torch export, short window): the
    estimate partition priced equals what compile made, front end included."""
    import onnx

    from xdna_ep.bench.sizes import export_encoder

    path = export_encoder("tiny", tmp_path / "tiny.onnx", layers=2, frames=200)
    model = onnx.load(str(path))
    plan = partition_model(model)
    (r,) = plan.regions
    estimated = r.estimated_launches
    assert r.estimate_rule == GROUPED and r.placement == "npu"
    compile_plan(model, plan, DYNAMIC)
    assert r.launches == estimated == 1 + 2 * 2 + 2  # front end + 2 per layer + final LN


def test_a_failing_calibrated_pass_falls_back_to_one_per_op(monkeypatch) -> None:
    """A pass that raises (compile would meet it too) still leaves placement a figure,
    with the reason in the rule."""
    from xdna_ep import passes as graph_passes

    def broken(regions, ctx):
        raise ValueError("odd weights")

    monkeypatch.setattr(graph_passes, "run_calibrated", broken)
    (r,) = partition_model(ms.encoder_layer(d=64, heads=2, ffn=256, t=16, seed=1)).regions
    assert r.estimated_launches == len(r.matches)
    assert r.estimate_rule == ("one launch per matched op: the calibrated passes failed "
                               "(ValueError: odd weights)")
