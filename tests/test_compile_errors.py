"""compile_plan on small graphs: bad weights/data -> CPU placement with a reason or a clear
error; BiasGelu folding, Gemm transB, mixed int8/float32 buffer choices."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from xdna_ep.compile import CompileOptions, compile_plan, compile_region
from xdna_ep.compile.execute import run_program
from xdna_ep.compile.observe import sqnr_db
from xdna_ep.plan import NodePlacement, OpMatch, PartitionPlan, Region
from xdna_ep.quantize import CalibrationError

RNG = np.random.default_rng(11)
K, N = 64, 96
MLP_SQNR_DB = 25.0  # int8 MLP without a float residual (stated bound)


def _w(shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    return (RNG.standard_normal(shape) / np.sqrt(shape[0])).astype(dtype)


def _mm_gelu_model(w: np.ndarray, weight_as_input: bool = False) -> onnx.ModelProto:
    """y = Gelu(x @ W + b)."""
    inits = [numpy_helper.from_array(np.full(N, 0.1, np.float32), "b")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", K])]
    if weight_as_input:
        inputs.append(helper.make_tensor_value_info("W", TensorProto.FLOAT, [K, N]))
    else:
        inits.append(numpy_helper.from_array(w, "W"))
    nodes = [helper.make_node("MatMul", ["x", "W"], ["mm"], name="mm"),
             helper.make_node("Add", ["mm", "b"], ["h"], name="add_b"),
             helper.make_node("Gelu", ["h"], ["y"], name="gelu")]
    g = helper.make_graph(nodes, "g", inputs,
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", N])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)])


def _mm_gelu_region(rid: int = 0) -> Region:
    return Region(rid, [
        OpMatch("matmul", ("mm", "add_b"), ("x",), ("h",), {"weight": "W", "bias": "b"}),
        OpMatch("gelu", ("gelu",), ("h",), ("y",), {"approximate": "none", "bias": None}),
    ], ["x"], ["y"])


def _plan(*regions: Region) -> PartitionPlan:
    nodes = [NodePlacement(n, "?", "npu", "supported", r.id) for r in regions for n in r.nodes]
    return PartitionPlan("m", nodes, list(regions))


def _samples(n: int = 3, k: int = K) -> list[dict[str, np.ndarray]]:
    return [{"x": RNG.standard_normal((40, k)).astype(np.float32)} for _ in range(n)]


@pytest.mark.parametrize(("w", "reason"), [
    (_w((K, N), np.float16), "float16"),
    (_w((K, N), np.float64), "float64"),
    (np.zeros((0, N), np.float32), "empty"),
    (np.where(np.eye(K, N) > 0, np.nan, _w((K, N))).astype(np.float32), "NaN or infinity"),
    (np.where(np.eye(K, N) > 0, np.inf, _w((K, N))).astype(np.float32), "NaN or infinity"),
    # one bit flip in a real weight (fuzz finding F1 of docs/RELIABILITY.md): finite,
    # but int8 would keep nothing of its channel except that value
    (np.where(np.arange(K * N).reshape(K, N) == 101, np.float32(4.8e36),
              _w((K, N))).astype(np.float32), "int8 cannot represent it"),
])
def test_bad_weight_moves_region_to_cpu(w: np.ndarray, reason: str) -> None:
    plan = _plan(_mm_gelu_region())
    progs = compile_plan(_mm_gelu_model(w), plan, CompileOptions("dynamic"))
    assert progs == {}
    r = plan.regions[0]
    where = "'node mm/add_b.weight'" if "int8" in reason else "'W'"  # the node, or the tensor
    assert r.placement == "cpu" and reason in r.cost_reason and where in r.cost_reason
    assert len(plan.fallbacks) == 1 and reason in plan.fallbacks[0]
    assert all(n.placement == "cpu" and reason in n.reason for n in plan.nodes)


def test_unknown_boundary_shape_moves_region_to_cpu() -> None:
    """A region input whose shape nothing determined would be recorded as rank 0 and
    fail at every run (finding F4): the region stays on the CPU instead."""
    model = _mm_gelu_model(_w((K, N)))
    model.graph.input[0].type.tensor_type.ClearField("shape")
    plan = _plan(_mm_gelu_region())
    assert compile_plan(model, plan, CompileOptions("dynamic")) == {}
    r = plan.regions[0]
    assert r.placement == "cpu" and "shape of region input 'x' is unknown" in \
        r.cost_reason


def test_non_constant_weight_moves_region_to_cpu() -> None:
    plan = _plan(_mm_gelu_region())
    assert compile_plan(_mm_gelu_model(_w((K, N)), weight_as_input=True), plan,
                        CompileOptions("dynamic")) == {}
    assert plan.regions[0].placement == "cpu"
    assert "not a constant" in plan.regions[0].cost_reason


def test_unsupported_kind_and_non_float_edges() -> None:
    soft = Region(0, [OpMatch("softmax", ("sm",), ("x",), ("y",))], ["x"], ["y"])
    plan = _plan(soft)
    compile_plan(_mm_gelu_model(_w((K, N))), plan, CompileOptions("dynamic"))
    assert "no NPU lowering for kind 'softmax'" in plan.regions[0].cost_reason
    m = _mm_gelu_model(_w((K, N)))
    m.graph.input[0].type.tensor_type.elem_type = TensorProto.DOUBLE
    plan = _plan(_mm_gelu_region())
    compile_plan(m, plan, CompileOptions("dynamic"))
    assert "'x' is not float32" in plan.regions[0].cost_reason


def test_good_and_bad_regions_in_one_plan_static() -> None:
    """Region 0 compiles (and is measured), region 1 (float16 weight) goes to the CPU."""
    model = _mm_gelu_model(_w((K, N)))
    bad = numpy_helper.from_array(_w((K, N), np.float16), "W16")
    model.graph.initializer.append(bad)
    r1 = Region(1, [OpMatch("matmul", ("mm16",), ("x",), ("z",), {"weight": "W16"})], ["x"], ["z"])
    plan = _plan(_mm_gelu_region(0), r1)
    progs = compile_plan(model, plan, CompileOptions("static", _samples()))
    assert set(progs) == {0}
    assert plan.regions[0].placement == "npu" and plan.regions[0].sqnr_db >= MLP_SQNR_DB
    assert plan.regions[1].placement == "cpu" and "float16" in plan.regions[1].cost_reason
    assert plan.fallbacks == [f"region 1: {plan.regions[1].cost_reason.split(': ', 1)[1]}"]


@pytest.mark.parametrize("bad_value", [np.float32(4.8e36), np.float32(np.nan)])
def test_corrupted_weight_keeps_every_region_on_cpu(bad_value: np.float32) -> None:
    """A damaged weight (one flipped bit: 0.014 -> 4.8e36, or a NaN) in region 1 also
    keeps region 0 on the CPU: values computed from it would reach int8 regions
    far outside any scale (fuzz finding F1, docs/RELIABILITY.md)."""
    model = _mm_gelu_model(_w((K, N)))
    w2 = _w((K, N))
    w2[3, 7] = bad_value
    model.graph.initializer.append(numpy_helper.from_array(w2, "W2"))
    for mode in ("dynamic", "static"):
        r1 = Region(1, [OpMatch("matmul", ("mm2",), ("x",), ("z",), {"weight": "W2"})],
                    ["x"], ["z"])
        plan = _plan(_mm_gelu_region(0), r1)
        opts = CompileOptions(mode, _samples() if mode == "static" else None)
        assert compile_plan(model, plan, opts) == {}
        assert [r.placement for r in plan.regions] == ["cpu", "cpu"]
        assert "corrupted weight" in plan.regions[0].cost_reason
        assert "'node mm2.weight'" in plan.regions[0].cost_reason or "'W2'" in \
            plan.regions[0].cost_reason
        assert all(n.placement == "cpu" for n in plan.nodes)


def test_calibration_data_errors() -> None:
    model = _mm_gelu_model(_w((K, N)))
    bad = _samples(2)
    bad[1]["x"][0, 0] = np.nan
    with pytest.raises(CalibrationError, match="sample 1, input 'x'.*NaN"):
        compile_plan(model, _plan(_mm_gelu_region()), CompileOptions("static", bad))
    with pytest.raises(ValueError, match="static quantization needs calibration data"):
        compile_plan(model, _plan(_mm_gelu_region()), CompileOptions("static"))
    with pytest.raises(ValueError, match="quantization must be"):
        CompileOptions("int4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="calibrate_method"):
        CompileOptions("static", calibrate_method="kl")
    with pytest.raises(TypeError, match="CompileOptions"):
        compile_plan(model, _plan(_mm_gelu_region()), {"quantization": "static"})  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_overflowing_activation_moves_region_to_cpu(method: str) -> None:
    """float32 overflow (inf) in a quantized tensor on the calibration data: that region
    goes to the CPU, a healthy region in the same plan is still calibrated."""
    model = _mm_gelu_model(np.full((K, N), 3e37, np.float32))
    model.graph.initializer.append(numpy_helper.from_array(_w((K, N)), "W_ok"))
    model.graph.node.append(helper.make_node("MatMul", ["x", "W_ok"], ["z"], name="mm_ok"))
    model.graph.output.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n", N]))
    ok = Region(1, [OpMatch("matmul", ("mm_ok",), ("x",), ("z",), {"weight": "W_ok"})],
                ["x"], ["z"])
    plan = _plan(_mm_gelu_region(), ok)
    progs = compile_plan(model, plan, CompileOptions("static", _samples(2), method))
    assert set(progs) == {1} and plan.regions[0].placement == "cpu"
    assert "non-finite range" in plan.regions[0].cost_reason
    assert plan.regions[1].sqnr_db is not None and plan.regions[1].sqnr_db >= MLP_SQNR_DB


def _fp32(model: onnx.ModelProto, samples: list[dict[str, np.ndarray]], name: str = "y"
          ) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return [sess.run([name], s)[0] for s in samples]


def test_bias_gelu_bias_is_folded_into_the_matmul() -> None:
    """MatMul -> com.microsoft BiasGelu(bias) -> MatMul: the gelu bias joins the first matmul,
    and its calibration tap (mm + bias) is computed inside the FP32 model."""
    w1, w2 = _w((K, N)), _w((N, K))
    gb = (RNG.standard_normal(N) * 0.5).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "W1"), (w2, "W2"), (gb, "gb"))]
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["mm"], name="mm1"),
             helper.make_node("BiasGelu", ["mm", "gb"], ["g"], name="bgelu", domain="com.microsoft"),
             helper.make_node("MatMul", ["g", "W2"], ["y"], name="mm2")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     ["n", K])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", K])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                                helper.make_opsetid("com.microsoft", 1)])
    region = Region(0, [
        OpMatch("matmul", ("mm1",), ("x",), ("mm",), {"weight": "W1", "bias": None}),
        OpMatch("gelu", ("bgelu",), ("mm",), ("g",), {"approximate": "none", "bias": "gb"}),
        OpMatch("matmul", ("mm2",), ("g",), ("y",), {"weight": "W2", "bias": None}),
    ], ["x"], ["y"])
    samples = _samples(3)
    prog, plan = compile_region(model, region, CompileOptions("static", samples, "minmax"))
    assert prog is not None, plan.fallbacks
    st = prog.stages()
    # the float32 region input goes straight into the static matmul (it quantizes it)
    assert [s.kernel for s in st] == ["matmul", "gelu", "matmul"]
    assert st[0].inputs == ("x",)
    np.testing.assert_array_equal(prog.constants[st[0].consts["bias"]], gb)
    assert st[0].attrs["out"] == "int8" and st[0].outputs == ("mm::biased::q8",)
    assert st[0].source_nodes == ("mm1", "bgelu")
    # the gelu input scale was calibrated on mm + gb (independently computed here)
    pre = np.concatenate([s["x"] @ w1 + gb for s in samples])
    assert st[1].attrs["in_scale"] == pytest.approx(np.abs(pre).max() / 127, rel=1e-4)
    out = [run_program(prog, s).outputs["y"] for s in samples]
    db = sqnr_db(_fp32(model, samples), out)
    assert db >= MLP_SQNR_DB and plan.regions[0].sqnr_db == pytest.approx(db, abs=0.01)


def test_gemm_transb_and_float_output_with_int8_consumer() -> None:
    """Gemm(transB) weights are transposed to [K, N]; a layernorm output that is both a
    region output (float32) and a matmul input is emitted once as float32; the static
    matmul quantizes it itself (no quantize stage between the two)."""
    wt = _w((N, K))  # [N, K], as Gemm with transB=1 stores it
    gamma = np.ones(K, np.float32)
    beta = np.zeros(K, np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in
             ((wt, "Wt"), (gamma, "g"), (beta, "be"), (np.full(N, 0.2, np.float32), "b"))]
    nodes = [helper.make_node("LayerNormalization", ["x", "g", "be"], ["ln"], name="ln",
                              epsilon=1e-5),
             helper.make_node("Gemm", ["ln", "Wt", "b"], ["y"], name="gemm", transB=1)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     [40, K])],
                          [helper.make_tensor_value_info("ln", TensorProto.FLOAT, [40, K]),
                           helper.make_tensor_value_info("y", TensorProto.FLOAT, [40, N])],
                          inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    region = Region(0, [
        OpMatch("layernorm", ("ln",), ("x",), ("ln",), {"epsilon": 1e-5, "gamma": "g",
                                                        "beta": "be", "skip": None}),
        OpMatch("matmul", ("gemm",), ("ln",), ("y",), {"weight": "Wt", "bias": "b",
                                                       "transpose_b": True}),
    ], ["x"], ["ln", "y"])
    samples = _samples(3)
    prog, plan = compile_region(model, region, CompileOptions("static", samples))
    assert prog is not None, plan.fallbacks
    st = prog.stages()
    assert [s.kernel for s in st] == ["layernorm", "matmul"]
    assert st[0].attrs["out"] == "float32" and st[1].attrs["out"] == "float32"
    assert st[1].inputs == ("ln",) and "in_scale" in st[1].attrs
    assert prog.constants[st[1].consts["weight"]].shape == (K, N)
    assert [t.shape for t in prog.outputs] == [(40, K), (40, N)]
    outs = [run_program(prog, s).outputs for s in samples]
    assert sqnr_db(_fp32(model, samples), [o["y"] for o in outs]) >= MLP_SQNR_DB
    # the float32 layernorm output leaves the region unquantized
    assert sqnr_db(_fp32(model, samples, "ln"), [o["ln"] for o in outs]) >= 60.0


def _if_model() -> onnx.ModelProto:
    """cond ? Gelu(x @ W + b) : x @ W, weights inside the then-branch."""
    then_inits = [numpy_helper.from_array(_w((K, N)), "W"),
                  numpy_helper.from_array(np.full(N, 0.1, np.float32), "b")]
    then_g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["mm"], name="mm"),
         helper.make_node("Add", ["mm", "b"], ["h"], name="add_b"),
         helper.make_node("Gelu", ["h"], ["y"], name="gelu")],
        "then", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", N])],
        then_inits)
    else_g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W_else"], ["y_else"], name="mm_else")], "else", [],
        [helper.make_tensor_value_info("y_else", TensorProto.FLOAT, ["n", N])],
        [numpy_helper.from_array(_w((K, N)), "W_else")])
    g = helper.make_graph(
        [helper.make_node("If", ["cond"], ["out"], name="if", then_branch=then_g,
                          else_branch=else_g)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", K]),
         helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", N])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)])


def test_region_inside_if_branch() -> None:
    model = _if_model()
    samples = [{"x": s["x"], "cond": np.array(True)} for s in _samples(2)]
    region = _mm_gelu_region()
    region.graph = "if/then_branch"
    prog, plan = compile_region(model, region, CompileOptions("dynamic", samples))
    assert prog is not None and plan.regions[0].sqnr_db is None
    assert "If branch" in prog.meta["sqnr_note"]
    assert prog.constants[prog.stages()[1].consts["weight"]].shape == (K, N)
    region.placement = "npu"
    prog, plan = compile_region(model, region, CompileOptions("static", samples))
    assert prog is None and "If branch" in plan.regions[0].cost_reason
