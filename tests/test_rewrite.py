"""rewrite: one custom node per region; the rest of the graph untouched."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from test_ort_support import (
    K,
    N,
    compile_linear,
    direct,
    linear_model,
    linear_plan,
)

from xdna_ep.ort.epcontext import epcontext_model
from xdna_ep.ort.plugin_route import runtime_options, session_options
from xdna_ep.rewrite import (
    DOMAIN,
    check_program_ref,
    node_program,
    op_type_for,
    region_nodes,
    rewrite_model,
)
from xdna_ep.rewrite.graph import _toposort


def _session(model: onnx.ModelProto, programs: dict, nodes) -> tuple[ort.InferenceSession, dict]:
    """An ORT session over a rewritten model the way sessions run it: its region
    nodes as EPContext nodes on the plugin library (emulator), the rest on the CPU."""
    by_ref = {rn.program: programs[rn.region] for rn in nodes}
    assert {node_program(n)[0] for n in region_nodes(model)} == set(by_ref)
    so = session_options(ort.SessionOptions(), runtime_options("emulator", "error", None))
    sess = ort.InferenceSession(epcontext_model(model, by_ref).SerializeToString(), so)
    return sess, by_ref


def test_region_becomes_one_node_and_checker_passes():
    lm = linear_model(two_regions=True)
    plan = linear_plan(lm.model)
    programs = compile_linear(lm.model, plan)
    new, nodes = rewrite_model(lm.model, plan, programs)
    onnx.checker.check_model(new)
    ops = [(n.domain, n.op_type) for n in new.graph.node]
    assert ops.count((DOMAIN, op_type_for(1, 1))) == 2
    assert ("", "MatMul") not in ops and ("", "Add") not in ops
    assert [n.op_type for n in new.graph.node if n.domain == ""] == ["Relu", "Sigmoid"]
    assert any(o.domain == DOMAIN for o in new.opset_import)
    # initializers only the regions read are gone (their INT8 copies are in the programs)
    assert [t.name for t in new.graph.initializer] == []
    for rn in nodes:
        node = next(n for n in new.graph.node if n.name == rn.node_name)
        ref, digest = node_program(node)
        assert digest == programs[rn.region].digest()
        assert ref == rn.program and "/" not in ref
    # the input model is not modified
    assert [n.op_type for n in lm.model.graph.node][:2] == ["MatMul", "Add"]


def test_shared_initializer_is_kept():
    lm = linear_model(share_weight=True)
    plan = linear_plan(lm.model)
    new, _ = rewrite_model(lm.model, plan, compile_linear(lm.model, plan))
    assert [t.name for t in new.graph.initializer] == ["W"]  # Shape(W) still reads it
    onnx.checker.check_model(new)


def test_rewritten_model_runs_on_the_plugin_library():
    lm = linear_model(two_regions=True)
    plan = linear_plan(lm.model)
    programs = compile_linear(lm.model, plan)
    new, nodes = rewrite_model(lm.model, plan, programs)
    sess, _ = _session(new, programs, nodes)
    x = np.random.default_rng(1).standard_normal((7, K)).astype(np.float32)
    y, z = sess.run(["y", "z"], {"x": x})
    # exactly what the program computes, then ORT's Relu / Sigmoid on top
    h = direct(programs[0], {"x": x})["h"]
    h2 = direct(programs[1], {"x": x})["h2"]
    np.testing.assert_array_equal(y, np.maximum(h, 0))
    np.testing.assert_allclose(z, 1 / (1 + np.exp(-h2)), rtol=1e-6, atol=1e-7)
    # and close to the float32 model (INT8 dynamic quantization error)
    ref = lm.fp32(x)
    assert np.abs(y - ref["y"]).max() < 0.05 * np.abs(ref["y"]).max()


def _if_model(lm) -> onnx.ModelProto:
    """The linear model's MatMul+Add+Relu moved into an If's then-branch
    (reading x, W and b from the outer scope)."""
    then_nodes = list(lm.model.graph.node)
    then_g = helper.make_graph(then_nodes, "then", [],
                               [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["M", N])])
    else_g = helper.make_graph(
        [helper.make_node("Neg", ["x2"], ["y_else"], name="neg0")], "else", [],
        [helper.make_tensor_value_info("y_else", TensorProto.FLOAT, ["M", N])])
    nodes = [helper.make_node("Identity", ["xs"], ["x2"], name="id0"),
             helper.make_node("If", ["cond"], ["out"], name="if0", then_branch=then_g,
                              else_branch=else_g)]
    g = helper.make_graph(
        nodes, "ifg",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, ["M", K]),
         helper.make_tensor_value_info("xs", TensorProto.FLOAT, ["M", N])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["M", N])],
        list(lm.model.graph.initializer))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(m)
    return m


def test_region_inside_if_branch():
    lm = linear_model()
    m = _if_model(lm)
    plan = linear_plan(lm.model, graph="if0/then_branch")
    programs = compile_linear(lm.model, plan)  # same weights: compile from the flat model
    new, nodes = rewrite_model(m, plan, programs)
    assert nodes[0].graph == "if0/then_branch"
    then_g = next(a.g for a in new.graph.node[1].attribute if a.name == "then_branch")
    assert [n.domain for n in then_g.node] == [DOMAIN, ""]
    assert [t.name for t in new.graph.initializer] == []  # outer-scope W, b no longer read
    onnx.checker.check_model(new)
    sess, _ = _session(new, programs, nodes)
    x = np.random.default_rng(2).standard_normal((3, K)).astype(np.float32)
    xs = np.ones((3, N), np.float32)
    got = sess.run(None, {"cond": np.array(True), "x": x, "xs": xs})[0]
    np.testing.assert_array_equal(got, np.maximum(direct(programs[0], {"x": x})["h"], 0))
    got_else = sess.run(None, {"cond": np.array(False), "x": x, "xs": xs})[0]
    np.testing.assert_array_equal(got_else, -xs)


@pytest.mark.parametrize("ref", ["../evil.xdp", "/etc/passwd", "a/b.xdp", "", "..", "x" * 200])
def test_program_reference_must_be_a_plain_name(ref):
    with pytest.raises(ValueError, match="program reference"):
        check_program_ref(ref)


def test_program_refs_from_caller_are_checked():
    lm = linear_model()
    plan = linear_plan(lm.model)
    with pytest.raises(ValueError, match="program reference"):
        rewrite_model(lm.model, plan, compile_linear(lm.model, plan), refs={0: "../x"})


def test_missing_program_and_mismatched_outputs_are_errors():
    lm = linear_model(two_regions=True)
    plan = linear_plan(lm.model)
    programs = compile_linear(lm.model, plan)
    with pytest.raises(ValueError, match="no compiled program"):
        rewrite_model(lm.model, plan, {0: programs[0]})
    with pytest.raises(ValueError, match="program outputs"):
        rewrite_model(lm.model, plan, {0: programs[1], 1: programs[0]})


def test_region_must_export_every_tensor_read_outside():
    # the CPU node relu_mid reads "mm", produced inside the region {mm0, add0}
    lm = linear_model()
    nodes = [helper.make_node("MatMul", ["x", "W"], ["mm"], name="mm0"),
             helper.make_node("Relu", ["mm"], ["r"], name="relu_mid"),
             helper.make_node("Add", ["mm", "b"], ["h"], name="add0"),
             helper.make_node("Add", ["h", "r"], ["y"], name="add_out")]
    g = helper.make_graph(nodes, "leak", list(lm.model.graph.input),
                          list(lm.model.graph.output), list(lm.model.graph.initializer))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    plan = linear_plan(lm.model)
    with pytest.raises(ValueError, match="not region outputs"):
        rewrite_model(m, plan, compile_linear(lm.model, plan))


def test_cycle_is_detected():
    a = helper.make_node("Relu", ["q"], ["p"], name="a")
    b = helper.make_node("Relu", ["p"], ["q"], name="b")
    g = helper.make_graph([a, b], "cyc", [], [])
    with pytest.raises(ValueError, match="cycle"):
        _toposort(g)


def test_too_many_outputs_is_not_implemented():
    with pytest.raises(NotImplementedError, match="outputs"):
        op_type_for(1, 99)


def test_constant_nodes_only_the_region_read_are_dropped():
    lm = linear_model(share_weight=False)
    m = onnx.ModelProto()
    m.CopyFrom(lm.model)
    # b becomes a Constant node feeding the region's Add; a second Constant feeds Relu's consumer
    b = next(t for t in m.graph.initializer if t.name == "b")
    m.graph.node.insert(0, helper.make_node("Constant", [], ["b"], name="const_b", value=b))
    m.graph.node.insert(0, helper.make_node("Constant", [], ["k"], name="const_k",
                                            value_float=2.0))
    m.graph.node.append(helper.make_node("Mul", ["y", "k"], ["y2"], name="mul_k"))
    m.graph.output.append(helper.make_tensor_value_info("y2", TensorProto.FLOAT, ["M", N]))
    keep = [t for t in m.graph.initializer if t.name != "b"]
    del m.graph.initializer[:]
    m.graph.initializer.extend(keep)
    onnx.checker.check_model(m)
    plan = linear_plan(lm.model)
    new, _ = rewrite_model(m, plan, compile_linear(lm.model, plan))
    names = [n.name for n in new.graph.node]
    assert "const_b" not in names and "const_k" in names
    onnx.checker.check_model(new)
