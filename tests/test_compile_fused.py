"""Layers as onnxruntime.transformers' optimizer leaves them (Attention / MultiHeadAttention,
SkipLayerNormalization with bias, BiasGelu), and the capability pass
(partition_model) feeding compile_plan directly."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from synthetic.regions import encoder_layer, fused_encoder_layer

from xdna_ep.compile import CompileOptions, compile_plan, compile_region
from xdna_ep.compile.execute import run_program
from xdna_ep.compile.observe import sqnr_db
from xdna_ep.partition import partition_model

LAYER_SQNR_DB = 30.0  # same bound as test_compile_encoder


def _init(model, name: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    return next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name == name)


def _fp32(model, samples):  # type: ignore[no-untyped-def]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return [sess.run(None, s)[0] for s in samples]


@pytest.mark.parametrize("attention", ["Attention", "MultiHeadAttention"])
def test_fused_layer_static(attention: str) -> None:
    sm = fused_encoder_layer(t=120, attention=attention, seed=4)
    samples = sm.samples(3, seed=6)
    prog, plan = compile_region(sm.model, sm.region, CompileOptions("static", samples, "minmax",
                                                                    fuse_qkv=True))
    assert prog is not None, plan.fallbacks
    assert [st.kernel for st in prog.stages()] == [
        "layernorm", "matmul", "attention", "matmul", "add",
        "layernorm", "matmul", "gelu", "matmul", "add"]
    assert prog.num_launches == 3
    out = [run_program(prog, s).outputs["last_hidden_state"] for s in samples]
    db = sqnr_db(_fp32(sm.model, samples), out)
    assert db >= LAYER_SQNR_DB and plan.regions[0].sqnr_db == pytest.approx(db, abs=0.01)
    st = prog.stages()
    # the q/k/v bias (packed or MultiHeadAttention's) is in the fused projection
    np.testing.assert_array_equal(prog.constants[st[1].consts["bias"]],
                                  _init(sm.model, "qkv.bias"))
    # the SkipLayerNormalization bias went into out_proj, whose output feeds the sum
    np.testing.assert_array_equal(prog.constants[st[3].consts["bias"]],
                                  _init(sm.model, "out_proj.bias"))
    assert st[4].outputs == ("residual",) and st[9].inputs[0] == "residual"
    # BiasGelu's bias went into fc1
    np.testing.assert_array_equal(prog.constants[st[6].consts["bias"]],
                                  _init(sm.model, "fc1.bias"))
    # softmax scale defaults to 1/sqrt(head size) when the fused node has none
    assert st[2].attrs["softmax_scale"] == pytest.approx(1 / 8)
    # the calibrated q scale is max|LN1(x) @ Wq + bq| / 127 (computed here in numpy)
    if attention == "Attention":
        wq = _init(sm.model, "qkv.weight")[:, :384]
    else:
        wq = _init(sm.model, "q_proj.weight")
    g, b = _init(sm.model, "ln1.weight"), _init(sm.model, "ln1.bias")
    amax = 0.0
    for s in samples:
        x = s[sm.input_name].astype(np.float64)
        ln = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * g + b
        amax = max(amax, float(np.abs(ln @ wq + _init(sm.model, "qkv.bias")[:384]).max()))
    assert st[1].attrs["out_scales"][0] == pytest.approx(amax / 127, rel=1e-3)


def test_fused_layer_dynamic_and_unfused() -> None:
    sm = fused_encoder_layer(t=80, attention="Attention", seed=5)
    samples = sm.samples(2, seed=7)
    for opts in (CompileOptions("dynamic", samples, fuse_qkv=True),
                 CompileOptions("static", samples, fuse_qkv=False)):
        prog, plan = compile_region(sm.model, sm.region, opts)
        assert prog is not None, plan.fallbacks
        assert plan.regions[0].sqnr_db >= LAYER_SQNR_DB
    # unfused: the packed weight is sliced into three projections
    assert [st.kernel for st in prog.stages()].count("matmul") == 6
    assert prog.num_launches == 5


def test_partition_model_then_compile_plan() -> None:
    """End to end on the capability pass's own matches (no hand-made Region)."""
    sm = encoder_layer(t=100, layers=2, seed=8)
    samples = sm.samples(2, seed=9)
    plan = partition_model(sm.model, use_cost_model=False)
    npu = [r for r in plan.regions if r.placement == "npu"]
    assert len(npu) == 1
    progs = compile_plan(sm.model, plan, CompileOptions("static", samples, fuse_qkv=True))
    assert set(progs) == {npu[0].id}
    prog = progs[npu[0].id]
    # layer 0's MLP and layer 1's layernorm -> q/k/v share one ffn_ln_matmul launch
    assert [ln.design for ln in prog.launches] == [
        "ln_matmul", "attn_block", "ffn_ln_matmul", "attn_block", "ffn_block"]
    assert prog.num_launches == 5 and plan.launches_per_inference == 5
    assert npu[0].sqnr_db is not None and npu[0].sqnr_db >= LAYER_SQNR_DB - 3.0
    out = [run_program(prog, s).outputs[sm.region.outputs[0]] for s in samples]
    assert sqnr_db(_fp32(sm.model, samples), out) == pytest.approx(npu[0].sqnr_db, abs=0.01)
    assert plan.quantization == "int8 static (percentile)"  # the default method
