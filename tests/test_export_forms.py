"""Export forms on small synthetic graphs (fast; the exporters' real output is in
test_generalisation.py): ORT's MatMulAddFusion (Reshape + Gemm + Reshape), a
weight that constant-folds (Transpose of an initializer: a tied LM head), and a
constant [T, D] table broadcast over the batch."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from xdna_ep.compile import CompileOptions, ProgramRunner
from xdna_ep.compile.api import compile_plan
from xdna_ep.partition import partition_model

B, T, D, N = 2, 6, 8, 5


def _model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((D, D)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal(D).astype(np.float32), "b"),
        numpy_helper.from_array(np.array([-1, D], np.int64), "flat"),
        numpy_helper.from_array(np.array([B, T, D], np.int64), "restore"),
        numpy_helper.from_array(rng.standard_normal((T, D)).astype(np.float32), "table"),
        numpy_helper.from_array(rng.standard_normal((N, D)).astype(np.float32), "wte"),
    ]
    nodes = [
        helper.make_node("Reshape", ["x", "flat"], ["x2"], name="flatten"),
        helper.make_node("Gemm", ["x2", "w", "b"], ["g"], name="gemm"),
        helper.make_node("Reshape", ["g", "restore"], ["h"], name="unflatten"),
        helper.make_node("Add", ["h", "table"], ["p"], name="table_add"),
        helper.make_node("Transpose", ["wte"], ["wte_t"], name="tied", perm=[1, 0]),
        helper.make_node("MatMul", ["p", "wte_t"], ["y"], name="head"),
    ]
    g = helper.make_graph(nodes, "forms", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [B, T, D])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [B, T, N])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_gemm_reshapes_folded_weight_and_table_add_compile_to_one_region():
    model = _model()
    plan = partition_model(model, use_cost_model=False)
    by_name = {n.name: n for n in plan.nodes}
    for name in ("flatten", "gemm", "unflatten", "table_add", "head"):
        assert by_name[name].placement == "npu", by_name[name].reason
    assert by_name["tied"].placement == "cpu"  # folded into the head's weight
    programs = compile_plan(model, plan, CompileOptions(quantization="dynamic",
                                                        measure_sqnr=False))
    assert len(programs) == 1 and plan.fallbacks == []
    x = np.random.default_rng(1).standard_normal((B, T, D)).astype(np.float32)
    ref = ort.InferenceSession(model.SerializeToString(),
                               providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = ProgramRunner(next(iter(programs.values()))).run({"x": x}).outputs["y"]
    assert got.shape == ref.shape
    cos = float((got * ref).sum() / (np.linalg.norm(got) * np.linalg.norm(ref)))
    assert cos > 0.99


def test_flattened_gemm_output_never_leaves_a_region_with_the_wrong_shape():
    """A Gemm whose input was flattened, read outside the match: its output is 2-D in
    the model, so the match keeps it 2-D or the region goes to the CPU with a reason."""
    model = _model()
    model.graph.output.append(helper.make_tensor_value_info("g", TensorProto.FLOAT, None))
    plan = partition_model(model, use_cost_model=False)
    programs = compile_plan(model, plan, CompileOptions(quantization="dynamic",
                                                        measure_sqnr=False))
    assert all("g" not in {t.name for t in p.outputs} for p in programs.values())
    assert any("'g' is 2-D [B*T, N] in the model" in f for f in plan.fallbacks), plan.fallbacks
    gemm = next(n for n in plan.nodes if n.name == "gemm")
    assert gemm.placement == "cpu" and "cannot be a region edge" in gemm.reason


def test_constant_causal_mask_is_recognised_and_nothing_else():
    from xdna_ep.ops.attention import is_causal_mask

    t = 5
    causal = np.triu(np.full((t, t), np.finfo(np.float32).min, np.float32), k=1)
    assert is_causal_mask(causal[None, None])
    assert is_causal_mask(np.where(causal < 0, -np.inf, 0.0))
    assert not is_causal_mask(causal.T)  # anti-causal
    assert not is_causal_mask(np.zeros((t, t), np.float32))  # no mask at all
    shifted = causal.copy()
    shifted[0, 1] = 0.0  # one extra visible key
    assert not is_causal_mask(shifted)
    assert not is_causal_mask(causal[:, :4])  # not square


def _shape_model(dims: list) -> onnx.ModelProto:
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("Cast", ["s"], ["sf"], name="cast", to=TensorProto.FLOAT),
             helper.make_node("Relu", ["x"], ["y"], name="relu")]
    g = helper.make_graph(nodes, "shape", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, dims)], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, None), helper.make_tensor_value_info(
            "sf", TensorProto.FLOAT, None)])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_shape_folds_only_when_every_input_dim_is_fixed():
    """A Shape bound to a guessed size (a symbolic dim) must never become a constant."""
    from xdna_ep.capability import analyze
    from xdna_ep.compile.model_index import ModelIndex

    static = analyze(_shape_model([2, 3]))
    assert static.views[""].static_shapes
    np.testing.assert_array_equal(static.views[""].const_value("sf"), [2.0, 3.0])
    assert ModelIndex(_shape_model([2, 3])).is_foldable("sf")
    dynamic = analyze(_shape_model(["batch", 3]))
    assert not dynamic.views[""].static_shapes
    assert dynamic.views[""].const_value("sf") is None
    assert not ModelIndex(_shape_model(["batch", 3])).is_foldable("sf")


def _attention_model(merge: str) -> onnx.ModelProto:
    """x -> q/k/v projections -> head split -> softmax(q.k^T * s).v -> Transpose ->
    `merge` -> o_proj. "Reshape" merges the heads back to [B, T, D] (the form the
    attention stage takes); "Flatten" is an op the output walk does not know, so
    the attention's output layout cannot be determined."""
    t, d, h = 16, 32, 4
    rng = np.random.default_rng(2)
    inits = [numpy_helper.from_array((rng.standard_normal((d, d)) * 0.2).astype(np.float32), n)
             for n in ("wq", "wk", "wv", "wo")]
    inits += [numpy_helper.from_array(np.array([1, t, h, d // h], np.int64), "split"),
              numpy_helper.from_array(np.array([1, t, d], np.int64), "merged"),
              numpy_helper.from_array(np.array((d // h) ** -0.5, np.float32), "scale")]
    nodes = []
    for r, perm in (("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3])):
        nodes += [helper.make_node("MatMul", ["x", f"w{r}"], [r], name=f"{r}_proj"),
                  helper.make_node("Reshape", [r, "split"], [f"{r}4"], name=f"{r}_split"),
                  helper.make_node("Transpose", [f"{r}4"], [f"{r}h"], name=f"{r}_heads",
                                   perm=perm)]
    merge_node = (helper.make_node("Reshape", ["ot", "merged"], ["om"], name="merge")
                  if merge == "Reshape" else
                  helper.make_node("Flatten", ["ot"], ["om"], name="merge", axis=2))
    nodes += [helper.make_node("MatMul", ["qh", "kh"], ["s"], name="qk"),
              helper.make_node("Mul", ["s", "scale"], ["ss"], name="scale_mul"),
              helper.make_node("Softmax", ["ss"], ["p"], name="softmax", axis=-1),
              helper.make_node("MatMul", ["p", "vh"], ["o"], name="pv"),
              helper.make_node("Transpose", ["o"], ["ot"], name="merge_heads", perm=[0, 2, 1, 3]),
              merge_node,
              helper.make_node("MatMul", ["om", "wo"], ["y"], name="o_proj")]
    g = helper.make_graph(nodes, "attn", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, t, d])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_attention_with_an_unknown_output_layout_is_refused_at_match_time():
    """Refused when matched (not at compile, where the failure took the q/k/v
    projections in its region back to the CPU too): the attention's nodes keep the
    reason, every projection compiles."""
    from xdna_ep.capability import analyze

    control = analyze(_attention_model("Reshape"))
    att = [m for m in control.matches if m.kind == "attention"]
    assert len(att) == 1 and att[0].attrs.out_layout == "bsd"

    model = _attention_model("Flatten")
    res = analyze(model)
    assert [m.kind for m in res.matches] == ["matmul"] * 4  # no attention match
    plan = partition_model(model, use_cost_model=False)
    by_name = {n.name: n for n in plan.nodes}
    for name in ("softmax", "qk", "pv"):
        assert by_name[name].placement == "cpu"
        assert by_name[name].reason == (
            "shape: attention at Softmax 'softmax': out_layout is 'unknown'; the attention "
            "stage takes [B, T, H*Dh] tensors: the attention runs on the CPU")
    projections = ("q_proj", "k_proj", "v_proj", "o_proj")
    assert all(by_name[n].placement == "npu" for n in projections)
    programs = compile_plan(model, plan, CompileOptions(quantization="dynamic",
                                                        measure_sqnr=False))
    npu = [r for r in plan.regions if r.placement == "npu"]
    assert sorted(n for r in npu for m in r.matches for n in m.nodes) == sorted(projections)
    assert set(programs) == {r.id for r in npu}
    assert not any("not compiled" in f for f in plan.fallbacks), plan.fallbacks
    after = {n.name: n for n in plan.nodes}
    assert all(after[n].placement == "npu" for n in projections)
    assert after["softmax"].reason == by_name["softmax"].reason
