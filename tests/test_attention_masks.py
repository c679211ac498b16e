"""Integer attention masks of com.microsoft Attention (mask_index) and
MultiHeadAttention (key_padding_mask): the supported forms run with the attention
in an NPU region (the mask converted to an additive float mask by CPU nodes,
ops/attention_masks.py), the others stay on the CPU with the reason. ONNX
Runtime's CPU provider on the unmodified model is the reference."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import xdna_ep

B, T, D, H = 2, 64, 64, 2
COSINE = 0.999




def _model(op: str, mask_shape: list | None, *, mask_type: int = TensorProto.INT32,
           seed: int = 0, attention_bias: bool = False, **node_attrs) -> onnx.ModelProto:
    """x [B, T, D] -> (packed Attention | q/k/v MatMuls -> MultiHeadAttention) with the
    mask graph input `mask` -> out-projection MatMul."""
    rng = np.random.default_rng(seed)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def weight(name: str, shape: tuple[int, ...]) -> str:
        inits.append(numpy_helper.from_array(
            (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32), name))
        return name

    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [B, T, D])]
    mask = ""
    if mask_shape is not None:
        mask = "mask"
        inputs.append(helper.make_tensor_value_info(mask, mask_type, mask_shape))
    bias = ""
    if attention_bias:
        bias = "attention_bias"
        inputs.append(helper.make_tensor_value_info(bias, TensorProto.FLOAT, [B, 1, T, T]))
    if op == "Attention":
        ins = ["x", weight("qkv.weight", (D, 3 * D)), "", mask] + (["", bias] if bias else [])
        nodes.append(helper.make_node("Attention", ins, ["attn"], name="attn",
                                      domain="com.microsoft", num_heads=H, **node_attrs))
    else:
        for role in "qkv":
            nodes.append(helper.make_node("MatMul", ["x", weight(f"{role}.weight", (D, D))],
                                          [role], name=f"{role}_proj"))
        ins = ["q", "k", "v", "", mask] + ([bias] if bias else [])
        nodes.append(helper.make_node("MultiHeadAttention", ins, ["attn"], name="attn",
                                      domain="com.microsoft", num_heads=H, **node_attrs))
    nodes.append(helper.make_node("MatMul", ["attn", weight("out.weight", (D, D))], ["y"],
                                  name="out_proj"))
    graph = helper.make_graph(nodes, "masks", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [B, T, D])],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid("com.microsoft", 1)])


def _feed(mask: np.ndarray | None, seed: int = 1, **extra: np.ndarray) -> dict[str, np.ndarray]:
    x = np.random.default_rng(seed).standard_normal((B, T, D)).astype(np.float32)
    return {"x": x, **({"mask": mask} if mask is not None else {}), **extra}


def _ort_cpu(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feed)[0]


def _xdna(model: onnx.ModelProto, feed: dict[str, np.ndarray], tmp_path):  # type: ignore[no-untyped-def]
    sess = xdna_ep.InferenceSession(
        model.SerializeToString(), providers=["XDNAExecutionProvider", "CPUExecutionProvider"],
        provider_options=[{"device": "emulator", "cache_dir": str(tmp_path)}, {}])
    return sess, sess.run(None, feed)[0]


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _node(plan, name: str):  # type: ignore[no-untyped-def]
    return next(n for n in plan.nodes if n.name == name)


def _lengths_mask(lengths: list[int]) -> np.ndarray:
    return np.array(lengths, np.int32)


def _key_mask(seed: int) -> np.ndarray:
    """Raw 0/1 mask with other values too: ORT keeps key j iff mask > 0."""
    rng = np.random.default_rng(seed)
    m = rng.choice(np.array([0, 1, 1, 3, -2], np.int32), size=(B, T))
    m[1, 40:] = 0  # right padding on batch 1
    return m


def _query_key_mask(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rng.choice(np.array([0, 1, 1, 2, -1], np.int32), size=(B, T, T))
    m[1, :, 30:] = 0
    return m


# (op, form): mask shape, mask values
FORMS = {
    ("Attention", "lengths"): ([B], lambda: _lengths_mask([T, 23])),
    ("MultiHeadAttention", "lengths"): ([B], lambda: _lengths_mask([T, 23])),
    ("Attention", "key_mask"): ([B, T], lambda: _key_mask(3)),
    ("MultiHeadAttention", "key_mask"): ([B, T], lambda: _key_mask(3)),
    # end positions then start positions; batch 0 keeps keys 9..49, batch 1 none
    # (its start 80 is clipped to T: ORT's fully masked row)
    ("Attention", "start_end"): ([2 * B], lambda: np.array([50, T + 3, 9, 80], np.int32)),
    ("Attention", "query_key_mask"): ([B, T, T], lambda: _query_key_mask(4)),
    ("MultiHeadAttention", "query_key_mask"): ([B, T, T], lambda: _query_key_mask(4)),
}


@pytest.mark.parametrize(("op", "form"), sorted(FORMS))
def test_mask_form_runs_in_npu_region(op, form, tmp_path, no_cost_model):
    shape, make = FORMS[(op, form)]
    model, mask = _model(op, shape), make()
    feed = _feed(mask)
    sess, got = _xdna(model, feed, tmp_path)
    plan = sess.xdna_plan
    assert _node(plan, "attn").placement == "npu", _node(plan, "attn").reason
    conv = [n for n in plan.nodes if n.reason.startswith("mask conversion:")]
    assert conv and all(n.placement == "cpu" for n in conv)
    assert all("'mask'" in n.reason and "'attn'" in n.reason for n in conv)
    want = _ort_cpu(model, feed)
    unmasked = _ort_cpu(_model(op, None), _feed(None))
    for b in range(B):  # each batch row (different lengths / masks)
        assert _cos(got[b], want[b]) >= COSINE, (b, _cos(got[b], want[b]))
    # the mask matters: the unmasked output is far from the masked reference
    assert min(_cos(unmasked[b], want[b]) for b in range(B)) < 0.99


@pytest.mark.parametrize("op", ["Attention", "MultiHeadAttention"])
def test_fully_masked_row_matches_ort(op, tmp_path, no_cost_model):
    """A length 0 (every key masked): ORT CPU adds mask_filter_value to every logit
    of the row, i.e. softmax over the raw logits; no NaN."""
    model = _model(op, [B])
    feed = _feed(_lengths_mask([17, 0]))
    sess, got = _xdna(model, feed, tmp_path)
    assert _node(sess.xdna_plan, "attn").placement == "npu"
    want = _ort_cpu(model, feed)
    assert np.isfinite(got).all() and np.isfinite(want).all()
    for b in range(B):
        assert _cos(got[b], want[b]) >= COSINE, (b, _cos(got[b], want[b]))
    # batch 1's row is the unmasked attention's (what ORT computes for it)
    unmasked = _ort_cpu(_model(op, None), _feed(None))
    assert _cos(got[1], unmasked[1]) >= COSINE


def test_mask_filter_value_attribute(tmp_path, no_cost_model):
    """A mask_filter_value above -10000 is the additive value used as it is."""
    model = _model("MultiHeadAttention", [B, T], mask_filter_value=-3.0)
    feed = _feed(_key_mask(5))
    sess, got = _xdna(model, feed, tmp_path)
    assert _node(sess.xdna_plan, "attn").placement == "npu"
    want = _ort_cpu(model, feed)
    default = _ort_cpu(_model("MultiHeadAttention", [B, T]), feed)
    assert _cos(default, want) < 0.999  # -3 leaves the masked keys some weight
    assert _cos(got, want) >= COSINE


FLOAT_MIN = float(np.finfo(np.float32).min)


@pytest.mark.parametrize("op", ["Attention", "MultiHeadAttention"])
def test_float_min_filter_value(op, tmp_path, no_cost_model):
    """mask_filter_value = float32's lowest (what onnxruntime.transformers' optimizer
    writes for Hugging Face BERT): rows with a kept key agree with ORT CPU; a fully
    masked row is where they differ (ORT: the logits round away, a uniform average;
    the region: softmax over the raw logits), and the plan says so."""
    model = _model(op, [B], mask_filter_value=FLOAT_MIN)
    feed = _feed(_lengths_mask([41, 0]))
    sess, got = _xdna(model, feed, tmp_path)
    plan = sess.xdna_plan
    assert _node(plan, "attn").placement == "npu"
    assert any("every key is masked" in n for n in plan.notes), plan.notes
    want = _ort_cpu(model, feed)
    assert _cos(got[0], want[0]) >= COSINE
    # batch 1 (length 0): ORT's rows are all one uniform average over the keys
    assert np.ptp(want[1], axis=0).max() < 1e-4
    unmasked = _ort_cpu(_model(op, None), _feed(None))
    assert _cos(got[1], unmasked[1]) >= COSINE
    # the default filter value has no such note
    sess2, _ = _xdna(_model(op, [B]), feed, tmp_path / "default")
    assert not any("every key is masked" in n for n in sess2.xdna_plan.notes)


REFUSED = {
    # name: (op, mask shape, mask value, node attrs, words of the reason)
    "3B+2": ("MultiHeadAttention", [3 * B + 2], np.array([T, 20, 0, 0, T, T, 0, 0], np.int32),
             {}, "only the [B] end positions are converted"),
    "filter-not-negative": ("MultiHeadAttention", [B], _lengths_mask([T, 9]),
                            {"mask_filter_value": 0.0}, "mask_filter_value 0 is not negative"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_forms_stay_on_cpu(case, tmp_path, no_cost_model):
    op, shape, mask, attrs, words = REFUSED[case]
    model = _model(op, shape, **attrs)
    feed = _feed(mask)
    sess, got = _xdna(model, feed, tmp_path)
    node = _node(sess.xdna_plan, "attn")
    assert node.placement == "cpu" and words in node.reason, node.reason
    assert not any(n.reason.startswith("mask conversion:") for n in sess.xdna_plan.nodes)
    # the rest (projections) may still be on the NPU: the output stays close to ORT
    assert _cos(got, _ort_cpu(model, feed)) >= COSINE


def test_four_d_mask_is_refused_with_its_reason():
    """A 4-D mask_index (Megatron GPT-2; ORT's CPU kernel does not run it either)."""
    from xdna_ep.partition import partition_model

    plan = partition_model(_model("Attention", [B, 1, T, T]), use_cost_model=False)
    node = _node(plan, "attn")
    assert node.placement == "cpu" and "4-D" in node.reason, node.reason


def test_mask_and_attention_bias_stay_on_cpu(tmp_path, no_cost_model):
    model = _model("MultiHeadAttention", [B], attention_bias=True)
    bias = np.random.default_rng(4).standard_normal((B, 1, T, T)).astype(np.float32)
    feed = _feed(_lengths_mask([T, 20]), attention_bias=bias)
    sess, got = _xdna(model, feed, tmp_path)
    node = _node(sess.xdna_plan, "attn")
    assert node.placement == "cpu" and "attention_bias" in node.reason, node.reason
    assert _cos(got, _ort_cpu(model, feed)) >= COSINE


def test_attention_bias_alone_is_the_additive_mask(tmp_path, no_cost_model):
    """com.microsoft Attention's attention_bias (input 5) without mask_index."""
    model = _model("Attention", None, attention_bias=True)
    bias = np.where(np.random.default_rng(6).random((B, 1, T, T)) < 0.3, -10000.0,
                    np.random.default_rng(7).standard_normal((B, 1, T, T))).astype(np.float32)
    feed = _feed(None, attention_bias=bias)
    sess, got = _xdna(model, feed, tmp_path)
    assert _node(sess.xdna_plan, "attn").placement == "npu"
    want = _ort_cpu(model, feed)
    assert _cos(got, want) >= COSINE
    assert _cos(_ort_cpu(_model("Attention", None), _feed(None)), want) < 0.99


def _symbolic_mha(projections: bool) -> onnx.ModelProto:
    """MultiHeadAttention with symbolic batch/sequence dims and a [batch] lengths
    mask; q/k/v are graph inputs, or MatMul projections of x (then the key length
    is no graph input's dim)."""
    if projections:
        model = _model("MultiHeadAttention", [B])
    else:
        rng = np.random.default_rng(8)
        wo = numpy_helper.from_array((rng.standard_normal((D, D)) / 8).astype(np.float32),
                                     "out.weight")
        nodes = [helper.make_node("MultiHeadAttention", ["q", "k", "v", "", "mask"], ["attn"],
                                  name="attn", domain="com.microsoft", num_heads=H),
                 helper.make_node("MatMul", ["attn", "out.weight"], ["y"], name="out_proj")]
        inputs = [helper.make_tensor_value_info(r, TensorProto.FLOAT, ["batch", "seq", D])
                  for r in "qkv"]
        inputs.append(helper.make_tensor_value_info("mask", TensorProto.INT32, ["batch"]))
        graph = helper.make_graph(nodes, "masks", inputs, [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, ["batch", "seq", D])], [wo])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                        helper.make_opsetid("com.microsoft", 1)])
    for vi in (*model.graph.input, *model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        dims[0].dim_param = "batch"
        if len(dims) == 3:
            dims[1].dim_param = "seq"
    return model


def test_lengths_with_symbolic_dims_read_the_key_length_at_run_time(tmp_path, no_cost_model):
    """[B] lengths, key a graph input with a symbolic length: the conversion reads
    the length with Shape at run time; each input shape compiles at its first run."""
    model = _symbolic_mha(projections=False)
    sess = xdna_ep.InferenceSession(
        model.SerializeToString(), providers=["XDNAExecutionProvider", "CPUExecutionProvider"],
        provider_options=[{"device": "emulator", "cache_dir": str(tmp_path)}, {}])
    for t, lengths in ((64, [64, 30]), (48, [5, 48])):
        rng = np.random.default_rng(t)
        feed = {r: rng.standard_normal((B, t, D)).astype(np.float32) for r in "qkv"}
        feed["mask"] = _lengths_mask(lengths)
        got = sess.run(None, feed)[0]
        assert _node(sess.xdna_plan, "attn").placement == "npu"
        assert any(n.op_type == "Shape" and n.reason.startswith("mask conversion:")
                   for n in sess.xdna_plan.nodes)
        want = _ort_cpu(model, feed)
        for b in range(B):
            assert _cos(got[b], want[b]) >= COSINE, (t, b, _cos(got[b], want[b]))


def _internal_key(op: str, mask_shape: list, *, doubled_key: bool = False) -> onnx.ModelProto:
    """`_model` with symbolic batch/sequence dims and its attention input computed
    inside the graph: the graph input x_in [batch, seq, D] is scaled by a CPU Mul
    first (exact, so the cosine measures the mask; a MultiHeadAttention's key is
    also a projection inside the region). doubled_key: the key (and value)
    of a MultiHeadAttention read Concat(h, h) instead, a key length of 2*seq that
    no graph input carries."""
    model = _model(op, mask_shape)
    model.graph.initializer.append(numpy_helper.from_array(np.array(1.5, np.float32),
                                                           "pre.scale"))
    pre = [helper.make_node("Mul", ["x_in", "pre.scale"], ["x"], name="pre_scale")]
    if doubled_key:
        pre.append(helper.make_node("Concat", ["x", "x"], ["xx"], name="cat", axis=1))
        for n in model.graph.node:
            if n.name in ("k_proj", "v_proj"):
                n.input[0] = "xx"
    nodes = pre + list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    model.graph.input[0].name = "x_in"
    for vi in (model.graph.input[0], model.graph.output[0]):
        dims = vi.type.tensor_type.shape.dim
        dims[0].dim_param, dims[1].dim_param = "batch", "seq"
    mask = model.graph.input[1].type.tensor_type.shape.dim
    mask[0].dim_param = "batch" if mask_shape == [B] else "two_batch"
    return model


INTERNAL = {
    ("Attention", "lengths"): ([B], {64: [64, 30], 48: [5, 48]}),
    ("MultiHeadAttention", "lengths"): ([B], {64: [64, 30], 48: [5, 48]}),
    # end positions then start positions
    ("Attention", "start_end"): ([2 * B], {64: [50, 64, 9, 3], 48: [48, 20, 0, 11]}),
}


@pytest.mark.parametrize(("op", "form"), sorted(INTERNAL))
def test_symbolic_internal_key_length_is_read_at_run_time(op, form, tmp_path, no_cost_model):
    """[B] / [2B] masks whose key length is symbolic and computed inside the region:
    the conversion reads it from the graph input dim of the same name ("seq", found by
    symbolic shape inference) with Shape at run time; the dynamic-axes model runs at
    two sequence lengths (each compiled at its first run) and matches ORT CPU."""
    shape, masks = INTERNAL[(op, form)]
    model = _internal_key(op, shape)
    sess = xdna_ep.InferenceSession(
        model.SerializeToString(), providers=["XDNAExecutionProvider", "CPUExecutionProvider"],
        provider_options=[{"device": "emulator", "cache_dir": str(tmp_path)}, {}])
    unmasked_model = _internal_key(op, shape)
    for t, values in masks.items():
        rng = np.random.default_rng(t)
        feed = {"x_in": rng.standard_normal((B, t, D)).astype(np.float32),
                "mask": np.array(values, np.int32)}
        got = sess.run(None, feed)[0]
        plan = sess.xdna_plan
        assert _node(plan, "attn").placement == "npu", _node(plan, "attn").reason
        shape_reads = [n for n in plan.nodes if n.op_type == "Shape"
                       and n.reason.startswith("mask conversion:")]
        assert len(shape_reads) == 1
        want = _ort_cpu(model, feed)
        for b in range(B):
            assert _cos(got[b], want[b]) >= COSINE, (t, b, _cos(got[b], want[b]))
        # the mask matters at this length
        full = np.array([t] * B + ([0] * B if form == "start_end" else []), np.int32)
        unmasked = _ort_cpu(unmasked_model, {**feed, "mask": full})
        assert min(_cos(unmasked[b], want[b]) for b in range(B)) < 0.99


def test_conversion_shape_reads_the_graph_input_of_the_key_length():
    from xdna_ep.partition import partition_model

    model = _internal_key("MultiHeadAttention", [B])
    plan = partition_model(model, use_cost_model=False, dims={"batch": B, "seq": T})
    assert _node(plan, "attn").placement == "npu"
    (shape,) = [n for n in model.graph.node if n.op_type == "Shape"]
    assert list(shape.input) == ["x_in"]  # [batch, seq, D]: seq is axis 1


def test_symbolic_key_length_no_graph_input_carries_stays_on_cpu(tmp_path, no_cost_model):
    """Key length 2*seq (a Concat inside the graph): no graph input has that dim, so
    T cannot be read at run time and is not guessed: the node stays on the CPU."""
    model = _internal_key("MultiHeadAttention", [B], doubled_key=True)
    rng = np.random.default_rng(11)
    feed = {"x_in": rng.standard_normal((B, 24, D)).astype(np.float32),
            "mask": _lengths_mask([40, 13])}
    sess = xdna_ep.InferenceSession(
        model.SerializeToString(), providers=["XDNAExecutionProvider", "CPUExecutionProvider"],
        provider_options=[{"device": "emulator", "cache_dir": str(tmp_path)}, {}])
    got = sess.run(None, feed)[0]
    node = _node(sess.xdna_plan, "attn")
    assert node.placement == "cpu"
    assert "'2*seq'" in node.reason and "no graph input has a dim of that name" in node.reason, \
        node.reason
    assert not any(n.reason.startswith("mask conversion:") for n in sess.xdna_plan.nodes)
    assert _cos(got, _ort_cpu(model, feed)) >= COSINE


def test_unidirectional_attention_with_lengths(tmp_path, no_cost_model):
    """unidirectional=1 and a [B] mask_index: the kernel's causal flag plus the
    converted mask (ORT adds mask_filter_value for both)."""
    model = _model("Attention", [B], unidirectional=1)
    feed = _feed(_lengths_mask([50, 0]))
    sess, got = _xdna(model, feed, tmp_path)
    assert _node(sess.xdna_plan, "attn").placement == "npu"
    want = _ort_cpu(model, feed)
    for b in range(B):
        assert _cos(got[b], want[b]) >= COSINE, (b, _cos(got[b], want[b]))
    assert _cos(_ort_cpu(_model("Attention", [B]), feed), want) < 0.99  # causal matters


def test_static_calibration_reads_the_converted_mask():
    """partition_model + compile_plan with static scales: the calibration and the
    SQNR measurement run the FP32 model, which holds the conversion nodes."""
    from xdna_ep.compile import CompileOptions, compile_plan
    from xdna_ep.compile.execute import run_program
    from xdna_ep.partition import partition_model

    model = _model("MultiHeadAttention", [B, T])
    samples = [_feed(_key_mask(s), seed=s) for s in range(3)]
    plan = partition_model(model, use_cost_model=False)
    programs = compile_plan(model, plan, CompileOptions("static", samples, "minmax"))
    (rid, prog), = programs.items()
    region = next(r for r in plan.regions if r.id == rid)
    twin = next(t.name for t in prog.inputs if t.name != "x")
    assert twin.startswith("mask::xdna_additive_mask") and region.sqnr_db >= 30.0
    # the program on the twin's values (ORT CPU on the rewritten FP32 graph) vs ORT CPU
    observe = onnx.ModelProto()
    observe.CopyFrom(model)
    observe.graph.output.append(helper.make_tensor_value_info(twin, TensorProto.FLOAT, None))
    sess = ort.InferenceSession(observe.SerializeToString(), providers=["CPUExecutionProvider"])
    for s in samples:
        want, mask = sess.run(None, s)
        assert mask.shape == (B, 1, 1, T)
        np.testing.assert_array_equal(mask[:, 0, 0, :], np.where(s["mask"] > 0, 0.0, -9999.0))
        got = run_program(prog, {"x": s["x"], twin: mask}).outputs["y"]
        assert _cos(got, want) >= COSINE


def test_conversion_removed_when_no_npu_region_reads_it():
    """An attention kept on the CPU (here by exclude_nodes) keeps its int32 mask: the
    conversion nodes go again, from the model and from the plan."""
    from xdna_ep.partition import partition_model

    model = _model("MultiHeadAttention", [B])
    before = {n.name for n in model.graph.node}
    plan = partition_model(model, use_cost_model=False, exclude_nodes=["attn"])
    assert _node(plan, "attn").placement == "cpu"
    assert {n.name for n in model.graph.node} == before
    assert not any(n.reason.startswith("mask conversion:") for n in plan.nodes)
    assert not any("xdna_additive_mask" in t.name for t in model.graph.initializer)
    kept = _model("MultiHeadAttention", [B])
    plan = partition_model(kept, use_cost_model=False)
    assert _node(plan, "attn").placement == "npu"
    assert len({n.name for n in kept.graph.node} - before) == 5  # Cast Reshape Less Where Reshape
    # a second partition of the same (already converted) model adds nothing
    n_nodes = len(kept.graph.node)
    plan = partition_model(kept, use_cost_model=False)
    assert _node(plan, "attn").placement == "npu" and len(kept.graph.node) == n_nodes


def test_bool_key_padding_mask_is_refused_with_its_reason():
    """ONNX Runtime's schema takes int32 only (a bool key_padding_mask model does not
    load on its CPU provider), so there is no reference to match: refused."""
    from xdna_ep.partition import partition_model

    model = _model("MultiHeadAttention", [B, T], mask_type=TensorProto.BOOL)
    with pytest.raises(Exception, match="bool"):
        _ort_cpu(model, _feed(np.ones((B, T), bool)))
    plan = partition_model(model, use_cost_model=False)
    node = _node(plan, "attn")
    assert node.placement == "cpu" and node.reason.startswith("dtype:") and "bool" in node.reason
