"""capability: pattern recognition on graphs shaped like the Whisper exports."""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from synthetic import graphs as ms

from xdna_ep.capability import CapabilityOptions, analyze
from xdna_ep.capability.graph import GraphView


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _kinds(result) -> list[str]:
    return [m.kind for m in result.matches]


def _count_nodes(model: onnx.ModelProto) -> int:
    def count(g: onnx.GraphProto) -> int:
        n = len(g.node)
        for node in g.node:
            for a in node.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    n += count(a.g)
        return n

    return count(model.graph)


# ---- Gelu ---------------------------------------------------------------------------------
GELU_FORMS = {
    # form: (approximate, number of ONNX nodes in the pattern)
    "erf": ("none", 5),
    "erf-half-first": ("none", 5),
    "erf-half-middle": ("none", 5),
    "tanh": ("tanh", 8),
    "tanh-mul": ("tanh", 9),
    "onnx-Gelu": ("none", 1),
    "onnx-Gelu-tanh": ("tanh", 1),
}


def _gelu_ref(x: np.ndarray, approximate: str) -> np.ndarray:
    x = x.astype(np.float64)
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


@pytest.mark.parametrize("form", sorted(GELU_FORMS))
def test_gelu_every_exported_form(form: str) -> None:
    approximate, n_nodes = GELU_FORMS[form]
    model = ms.gelu_model(form)
    res = analyze(model)
    gelus = [m for m in res.matches if m.kind == "gelu"]
    assert len(gelus) == 1, [m.pattern for m in res.matches]
    g = gelus[0]
    assert g.attrs.approximate == approximate
    assert len(g.nodes) == n_nodes
    mm = next(m for m in res.matches if m.kind == "matmul")
    assert g.inputs == mm.outputs  # the Gelu reads the MatMul+bias output
    # the builder's graph really is that Gelu: ONNX Runtime against the formula
    x = np.random.default_rng(0).standard_normal((1, 4, 16)).astype(np.float32)
    h = _run(_truncate_after(model, mm.outputs[0]), {"x": x})[0]
    y = _run(model, {"x": x})[0]
    np.testing.assert_allclose(y, _gelu_ref(h, approximate), rtol=1e-4, atol=1e-5)


def _truncate_after(model: onnx.ModelProto, tensor: str) -> onnx.ModelProto:
    """The model with `tensor` as its only output (to read the Gelu input)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.output[:]
    m.graph.output.append(helper.make_tensor_value_info(tensor, TensorProto.FLOAT, None))
    return m


def _replace_scalar(model: onnx.ModelProto, old: float, new: float) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for i, t in enumerate(m.graph.initializer):
        v = numpy_helper.to_array(t)
        if v.size == 1 and np.isclose(float(v.reshape(-1)[0]), old):
            m.graph.initializer[i].CopyFrom(
                numpy_helper.from_array(np.full_like(v, new), t.name))
    return m


@pytest.mark.parametrize("form,old", [("erf", 0.5), ("erf", math.sqrt(2.0)), ("tanh", 0.044715)])
def test_gelu_with_wrong_constant_is_not_matched(form: str, old: float) -> None:
    res = analyze(_replace_scalar(ms.gelu_model(form), old, 0.6))
    assert "gelu" not in _kinds(res)
    erf_or_tanh = [p for p in res.placements if p.op_type in ("Erf", "Tanh")]
    assert erf_or_tanh and all(p.placement == "cpu" for p in erf_or_tanh)
    assert all(p.reason.startswith("unmatched") for p in erf_or_tanh)


# ---- encoder layer: LayerNorm, MatMul+bias, attention, residual Add, MACs ------------------
def test_encoder_layer_matches_and_facts() -> None:
    d, heads, ffn, t = 32, 4, 64, 20
    model = ms.encoder_layer(d=d, heads=heads, ffn=ffn, t=t)
    res = analyze(model)
    kinds = _kinds(res)
    assert kinds.count("layernorm") == 3
    assert kinds.count("matmul") == 6
    assert kinds.count("attention") == 1
    assert kinds.count("gelu") == 1
    assert kinds.count("add") == 2
    view = res.views[""]
    for ln in (m for m in res.matches if m.kind == "layernorm"):
        assert len(ln.nodes) == 9 and ln.pattern == "decomposed"
        assert ln.attrs.epsilon == pytest.approx(1e-5)
        assert view.info(ln.attrs.gamma).shape == (d,)
        assert view.info(ln.attrs.beta).shape == (d,)
    mms = [m for m in res.matches if m.kind == "matmul"]
    biased = {m.attrs.bias is not None for m in mms}
    assert biased == {True, False}  # k_proj has no bias, the others do
    for m in mms:
        assert view.is_const(m.attrs.weight)
    att = next(m for m in res.matches if m.kind == "attention")
    assert att.attrs.num_heads == heads
    assert att.attrs.head_dim == d // heads
    assert att.attrs.scale == pytest.approx((d // heads) ** -0.5)
    assert att.attrs.q_layout == att.attrs.k_layout == att.attrs.v_layout == "bsd"
    assert not att.attrs.has_mask
    q_proj, k_proj, v_proj = mms[0], mms[1], mms[2]
    assert att.inputs == (q_proj.outputs[0], k_proj.outputs[0], v_proj.outputs[0])
    out_proj = mms[3]
    assert out_proj.inputs == att.outputs
    # MACs, derived by hand: 4 projections, 2 FFN matmuls, QK^T and PV
    expected = 4 * t * d * d + 2 * t * d * ffn + 2 * t * t * d
    assert res.total_macs == expected
    assert sum(m.macs for m in res.matches) == expected
    assert len(res.placements) == _count_nodes(model)


def test_front_end_conv1d_and_position_add() -> None:
    d, t, mels = 32, 20, 8
    res = analyze(ms.encoder_layer(d=d, t=t, mels=mels, front_end=True))
    convs = [m for m in res.matches if m.kind == "conv1d"]
    assert [c.attrs.stride for c in convs] == [1, 2]
    assert [c.attrs.pad for c in convs] == [1, 1]
    assert [c.attrs.kernel for c in convs] == [3, 3]
    # conv1: d x mels x 3 per output frame (2t frames); conv2: d x d x 3 per frame (t frames)
    assert [c.macs for c in convs] == [d * mels * 3 * 2 * t, d * d * 3 * t]
    # Transpose(0, 2, 1) + the constant [T, D] position table: one "add" match
    pos = next(m for m in res.matches if m.pattern == "TransposePositionAdd")
    assert pos.kind == "add" and pos.attrs.transpose_a is True
    assert pos.attrs.table.startswith("embed_positions.weight")
    by_node = {p.name: p for p in res.placements}
    assert [by_node[n].op_type for n in pos.nodes] == ["Transpose", "Add"]
    assert all(by_node[n].placement == "npu" for n in pos.nodes)


def _position_add_model(perm: list[int], table_shape: tuple[int, ...], extra_use: bool
                        ) -> onnx.ModelProto:
    d, t = 8, 6
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], name="tr", perm=perm),
             helper.make_node("Add", ["xt", "pos"], ["y"], name="pos_add")]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if extra_use:
        nodes.append(helper.make_node("Relu", ["xt"], ["r"], name="other_use"))
        outputs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, None))
    table = numpy_helper.from_array(np.ones(table_shape, np.float32), "pos")
    g = helper.make_graph(nodes, "pos", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, d, t])], outputs, [table])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("perm,table_shape,extra_use,placed", [
    ([0, 2, 1], (6, 8), False, True),
    ([0, 2, 1], (1, 6, 8), False, True),
    ([0, 2, 1], (8,), False, False),  # a per-channel vector: a bias, not a position table
    ([0, 2, 1], (5, 8), False, False),  # wrong length: would broadcast wrongly
    # not the front end's transpose: the Add alone is a table add (ops/add.py), the
    # Transpose stays on the CPU (asserted below)
    ([0, 1, 2], (8, 6), False, True),
    # the transposed tensor is used elsewhere too: the Add alone is a table add
    ([0, 2, 1], (6, 8), True, True),
])
def test_position_add_is_matched_only_in_its_exact_form(perm, table_shape, extra_use,
                                                         placed) -> None:
    res = analyze(_position_add_model(perm, table_shape, extra_use))
    add = next(p for p in res.placements if p.name == "pos_add")
    assert (add.placement == "npu") is placed, add.reason
    tr = next(p for p in res.placements if p.name == "tr")
    assert (tr.placement == "npu") is (placed and perm == [0, 2, 1] and not extra_use), tr.reason
    if not placed:
        assert "constant operand" in add.reason


def test_symbolic_dims_are_bound_for_macs() -> None:
    d, ffn = 32, 64
    res = analyze(ms.encoder_layer(d=d, ffn=ffn, symbolic=True))
    assert res.dim_bindings == {"batch_size": 1, "encoder_sequence_length / 2": 1500}
    t = 1500
    assert res.total_macs == 4 * t * d * d + 2 * t * d * ffn + 2 * t * t * d
    res2 = analyze(ms.encoder_layer(d=d, ffn=ffn, symbolic=True),
                   CapabilityOptions(dims={"encoder_sequence_length / 2": 100}))
    t = 100
    assert res2.total_macs == 4 * t * d * d + 2 * t * d * ffn + 2 * t * t * d


def test_dynamic_reshape_targets_do_not_block_attention() -> None:
    res = analyze(ms.encoder_layer(dynamic_shapes=True))
    att = next(m for m in res.matches if m.kind == "attention")
    assert len(att.attrs.shape_inputs) == 4  # q, k, v splits and the merge
    shape_ops = [p for p in res.placements if p.op_type in ("Shape", "Gather", "Concat")]
    assert shape_ops and all(p.placement == "cpu" for p in shape_ops)


# ---- decoder with past: KV-cache Concat, cross-attention, mask ----------------------------
def test_decoder_with_past_attention() -> None:
    res = analyze(ms.decoder_with_past_layer())
    atts = [m for m in res.matches if m.kind == "attention"]
    assert len(atts) == 2
    self_att, cross = atts
    assert self_att.attrs.past_key == "past_key_values.0.decoder.key"
    assert self_att.attrs.past_value == "past_key_values.0.decoder.value"
    assert self_att.attrs.present_key == "present.0.decoder.key"
    assert self_att.attrs.k_layout == "bhsd" and self_att.attrs.q_layout == "bsd"
    assert self_att.attrs.mask == "decoder_attention_bias"
    assert "decoder_attention_bias" in self_att.inputs
    assert cross.attrs.k == "past_key_values.0.encoder.key"
    assert cross.attrs.v == "past_key_values.0.encoder.value"
    assert cross.attrs.mask is None
    assert self_att.attrs.nan_guard and not cross.attrs.nan_guard
    assert {"IsNaN", "Where"} <= {p.op_type for p in res.placements
                                  if p.name in self_att.nodes}
    assert self_att.attrs.tq == 1 and self_att.attrs.tk == 7
    concats = [p for p in res.placements if p.name in (self_att.attrs.kv_concat_key,
                                                       self_att.attrs.kv_concat_value)]
    assert len(concats) == 2
    assert all(p.placement == "cpu" and "KV-cache Concat" in p.reason for p in concats)
    kv_layout = [p for p in res.placements if "lays out a KV-cache tensor" in p.reason]
    assert sorted(p.op_type for p in kv_layout) == ["Reshape", "Reshape", "Transpose", "Transpose"]
    lm = [m for m in res.matches if m.kind == "matmul" and m.nodes[0].startswith("lm_head")]
    assert len(lm) == 1 and lm[0].attrs.n == 64


def test_synthetic_decoders_run_in_onnxruntime() -> None:
    """The builders make valid, runnable graphs (what the patterns are tested on)."""
    rng = np.random.default_rng(0)
    model = ms.decoder_with_past_layer()
    feeds = {}
    for vi in model.graph.input:
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        feeds[vi.name] = rng.standard_normal(shape).astype(np.float32)
    logits, key, _ = _run(model, feeds)
    assert logits.shape == (1, 1, 64) and key.shape == (1, 4, 7, 8)
    assert np.isfinite(logits).all()
    merged = ms.merged_decoder()
    feeds = {vi.name: rng.standard_normal([d.dim_value for d in vi.type.tensor_type.shape.dim])
             .astype(np.float32) for vi in merged.graph.input[1:]}
    for flag, past in ((True, 7), (False, 1)):
        out = _run(merged, {**feeds, "use_cache_branch": np.array([flag])})
        assert out[1].shape == (1, 4, past, 8)


def test_merged_decoder_if_branches() -> None:
    model = ms.merged_decoder()
    res = analyze(model)
    graphs = {m.graph for m in res.matches}
    assert graphs == {"optimum::if/then_branch", "optimum::if/else_branch"}
    for g in graphs:
        kinds = [m.kind for m in res.matches if m.graph == g]
        assert kinds.count("attention") == 2 and kinds.count("layernorm") == 4
    if_row = next(p for p in res.placements if p.op_type == "If")
    assert if_row.placement == "cpu" and if_row.reason.startswith("control flow")
    assert len(res.placements) == _count_nodes(model)
    # branch weights live in the outer graph: the lookup follows the scope chain
    view = res.views["optimum::if/then_branch"]
    mm = next(m for m in res.matches if m.graph == view.path and m.kind == "matmul")
    assert mm.attrs.weight not in view.initializers
    assert view.is_const(mm.attrs.weight)


# ---- fused (onnxruntime.transformers optimizer) forms --------------------------------------
@pytest.mark.parametrize("gelu,approx", [("BiasGelu", "none"), ("FastGelu", "tanh"),
                                         ("Gelu", "none")])
def test_fused_layer(gelu: str, approx: str) -> None:
    res = analyze(ms.fused_encoder_layer(gelu=gelu))
    by = {m.pattern: m for m in res.matches}
    att = by["com.microsoft.Attention"]
    assert att.kind == "attention" and att.attrs.num_heads == 4
    assert res.views[""].info(att.attrs.weight).shape == (32, 96)
    sln = by["SkipLayerNormalization"]
    assert sln.kind == "layernorm" and sln.attrs.skip == "hidden_states"
    assert sln.attrs.epsilon == pytest.approx(1e-5)
    assert by["LayerNormalization"].attrs.gamma.startswith("ln1.weight")
    g = next(m for m in res.matches if m.kind == "gelu")
    assert g.attrs.approximate == approx
    assert all(p.placement == "npu" for p in res.placements)


def test_fused_multihead_attention() -> None:
    res = analyze(ms.fused_encoder_layer(attention="MultiHeadAttention"))
    att = next(m for m in res.matches if m.kind == "attention")
    assert att.pattern == "com.microsoft.MultiHeadAttention"
    assert att.attrs.bias is not None and len(att.inputs) == 3
    assert att.macs == 2 * 1 * 20 * 20 * 32


def test_gemm_with_transposed_weight() -> None:
    w = numpy_helper.from_array(np.ones((8, 16), np.float32), "W")
    b = numpy_helper.from_array(np.zeros((8,), np.float32), "B")
    node = helper.make_node("Gemm", ["x", "W", "B"], ["y"], name="gemm", transB=1)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, [4, 16])],
                          [helper.make_tensor_value_info("y", 1, [4, 8])], [w, b])
    res = analyze(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    (m,) = res.matches
    assert m.attrs.transpose_b and (m.attrs.k, m.attrs.n) == (16, 8)
    assert m.attrs.bias == "B" and m.macs == 4 * 16 * 8


# ---- options ------------------------------------------------------------------------------
def test_exclude_options() -> None:
    res = analyze(ms.encoder_layer(), CapabilityOptions(exclude_op_types=frozenset({"Softmax"})))
    assert "attention" not in _kinds(res)
    sm = next(p for p in res.placements if p.op_type == "Softmax")
    assert sm.placement == "cpu" and sm.reason.startswith("excluded")
    res = analyze(ms.encoder_layer(), CapabilityOptions(disable_kinds=frozenset({"gelu"})))
    assert "gelu" not in _kinds(res) and "attention" in _kinds(res)
    with pytest.raises(ValueError, match="disable_kinds"):
        CapabilityOptions(disable_kinds=frozenset({"nonsense"}))


def test_unnamed_nodes_get_stable_names() -> None:
    model = ms.gelu_model("erf")
    for n in model.graph.node:
        n.name = ""
    a = analyze(model)
    names = [p.name for p in a.placements]
    assert len(set(names)) == len(names) and all(names)
    assert names[0] == f"{model.graph.node[0].op_type}_0"


def test_graph_view_scalar_and_consumers() -> None:
    model = ms.gelu_model("erf")
    view = GraphView.build(model.graph)
    div = next(n for n in model.graph.node if n.op_type == "Div")
    assert view.scalar(div.input[1]) == pytest.approx(math.sqrt(2.0))
    assert view.single_consumer(div.output[0]).op_type == "Erf"
