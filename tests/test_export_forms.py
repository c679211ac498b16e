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
