"""Issue 15: an Add of two float32 activations where b broadcasts over a's
leading dims ([B, T, D] + [1, T, D] or [T, D]: GPT-2's token embedding plus
its position embedding, both Gather outputs) is one add stage with b as a
second activation input (add kernel_version 3 drops b's leading 1s). Other
broadcasts stay on the CPU with their reason."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import xdna_ep
from xdna_ep.kernel_specs import add as add_spec
from xdna_ep.partition import partition_model

B, T, D, TMAX = 3, 5, 8, 7


def _model(pos_ids_shape: tuple[int, ...]) -> onnx.ModelProto:
    """x[B, T, D] -> MatMul -> + Gather(pos_table, ids) -> MatMul."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((D, D)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.standard_normal((D, D)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.standard_normal((TMAX, D)).astype(np.float32), "wpe"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
        helper.make_node("Gather", ["wpe", "ids"], ["pos"], name="pos_gather"),
        helper.make_node("Add", ["h", "pos"], ["s"], name="pos_add"),
        helper.make_node("MatMul", ["s", "w2"], ["y"], name="mm2"),
    ]
    g = helper.make_graph(
        nodes, "badd",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [B, T, D]),
         helper.make_tensor_value_info("ids", TensorProto.INT64, list(pos_ids_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [B, T, D])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("ids_shape", [(1, T), (T,)], ids=["1TD", "TD"])
def test_activation_position_add_runs_as_one_add_stage(ids_shape, tmp_path, no_cost_model):
    model = _model(ids_shape)
    rng = np.random.default_rng(1)
    feed = {"x": rng.standard_normal((B, T, D)).astype(np.float32),
            "ids": np.arange(T, dtype=np.int64).reshape(ids_shape)}
    sess = xdna_ep.InferenceSession(
        model.SerializeToString(), providers=["XDNAExecutionProvider", "CPUExecutionProvider"],
        provider_options=[{"device": "emulator", "cache_dir": str(tmp_path)}, {}])
    node = {n.name: n for n in sess.xdna_plan.nodes}["pos_add"]
    assert node.placement == "npu", node.reason
    got = sess.run(None, feed)[0]
    ref = ort.InferenceSession(model.SerializeToString(),
                               providers=["CPUExecutionProvider"]).run(None, feed)[0]
    assert got.shape == ref.shape == (B, T, D)
    cos = float((got * ref).sum() / (np.linalg.norm(got) * np.linalg.norm(ref)))
    assert cos >= 0.999, cos


def test_stage_leading_ones_b_is_bit_identical_to_numpy():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((B, T, D)).astype(np.float32)
    for b in (rng.standard_normal((1, T, D)).astype(np.float32),
              rng.standard_normal((1, 1, T, D)[1:]).astype(np.float32),
              rng.standard_normal((T, D)).astype(np.float32)):
        want = (a + b).astype(np.float32)
        assert add_spec.add(a, b).tobytes() == want.tobytes()
        assert add_spec.reference(a, b).tobytes() == want.tobytes()
    for bad in ((B, T, 1), (2, T, D), (T, 1), (1, B, T, D)):
        with pytest.raises(ValueError):
            add_spec.add(a, np.zeros(bad, np.float32))
        with pytest.raises(ValueError):
            add_spec.reference(a, np.zeros(bad, np.float32))


def _two_input_add(sa: list, sb: list) -> onnx.ModelProto:
    g = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["c"], name="add")], "refused",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, sa),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, sb)],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, None)])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(("sa", "sb", "why"), [
    ([B, T, D], [B, T, 1], "broadcasts on one of the last two dims"),
    ([B, T, D], [1, 1, D], "broadcasts on one of the last two dims"),
    ([B, T, D], [D], "broadcasts on one of the last two dims"),
    ([1, T, D], [B, T, D], "a broadcasts"),
    ([T, D], [B, T, D], "a broadcasts"),
    ([2, B, 1, T, D], [1, T, D], "rank 5 > 4"),
])
def test_other_broadcasts_stay_on_cpu_with_their_reason(sa, sb, why):
    plan = partition_model(_two_input_add(sa, sb), use_cost_model=False)
    node = {n.name: n for n in plan.nodes}["add"]
    assert node.placement == "cpu"
    assert "broadcasting Add" in node.reason and why in node.reason, node.reason


def test_symbolic_leading_dims_of_a_broadcast_but_b_must_be_concrete():
    from xdna_ep.ops.add import _broadcast_problem

    assert _broadcast_problem(["batch", T, D], [1, T, D]) is None
    assert _broadcast_problem(["batch", "seq", D], [T, D]) is not None
    assert "not concrete" in _broadcast_problem(["batch", T, D], [1, "t", D])


@pytest.mark.parametrize("fc2_first", [True, False])
def test_outlier_split_keeps_the_broadcast_operand_as_b(fc2_first):
    """passes/split_outliers.py's FFN-block form rebuilds the residual add per group:
    the operand order of the original add is kept, so a broadcasting residual
    ([1, T, D]) stays b, the operand the add kernel repeats."""
    from xdna_ep.compile.ir import LOp, LoweredRegion
    from xdna_ep.passes.split_outliers import MlpChain, _split_ffn

    rng = np.random.default_rng(3)
    ops = [
        LOp("layernorm", ("x",), ("ln",), {"gamma": np.ones(4, np.float32),
                                          "beta": np.zeros(4, np.float32)}),
        LOp("matmul", ("ln",), ("h",), {"weight": rng.standard_normal((4, 6)).astype(np.float32)}),
        LOp("gelu", ("h",), ("g",)),
        LOp("matmul", ("g",), ("o",), {"weight": rng.standard_normal((6, 4)).astype(np.float32)}),
        LOp("add", ("o", "pos") if fc2_first else ("pos", "o"), ("y",)),
    ]
    lr = LoweredRegion(0, ops, ["x", "pos"], ["y"], {})
    _split_ffn(lr, MlpChain(1, 2, 3), 0, 4, [("hi", np.array([1])), ("lo", np.array([0, 2, 3, 4, 5]))],
               "none")
    adds = [op for op in lr.ops if op.kernel == "add"]
    assert len(adds) == 2 and adds[-1].outputs == ("y",)
    first = adds[0].inputs
    assert first == (("o::hi", "pos") if fc2_first else ("pos", "o::hi"))
    assert adds[1].inputs == (("o::lo", "y::hi") if fc2_first else ("y::hi", "o::lo"))
