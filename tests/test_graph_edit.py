"""rewrite/graph_edit.py: the in-place graph edits that undo pre-capability rewrites."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from xdna_ep.rewrite.graph_edit import drop_unread_initializers, remove_nodes


def _chain_model() -> onnx.ModelProto:
    """x -> A -> B -> C -> y, with B reading initializer w and nothing reading u."""
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="A"),
             helper.make_node("Add", ["a", "w"], ["b"], name="B"),
             helper.make_node("Relu", ["b"], ["y"], name="C")]
    inits = [numpy_helper.from_array(np.ones(3, np.float32), "w"),
             numpy_helper.from_array(np.ones(3, np.float32), "u"),
             numpy_helper.from_array(np.ones(3, np.float32), "v")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])], inits)
    return helper.make_model(g)


def test_remove_nodes_keeps_order_and_restores_in_place() -> None:
    m = _chain_model()
    original = helper.make_node("Sub", ["a", "w"], ["b"], name="B0")
    remove_nodes(m, ["B"], restore={"B": original})
    assert [n.name for n in m.graph.node] == ["A", "B0", "C"]
    remove_nodes(m, {"A"})
    assert [n.name for n in m.graph.node] == ["B0", "C"]


def test_remove_nodes_without_names_changes_nothing() -> None:
    m = _chain_model()
    before = m.SerializeToString()
    remove_nodes(m, [])
    assert m.SerializeToString() == before


def test_drop_unread_initializers_only_drops_unread_candidates() -> None:
    m = _chain_model()
    gone = drop_unread_initializers(m, {"w", "u"})   # w is read by B, v is no candidate
    assert gone == {"u"}
    assert sorted(t.name for t in m.graph.initializer) == ["v", "w"]
    remove_nodes(m, ["B"])
    assert drop_unread_initializers(m, {"w"}) == {"w"}
    assert [t.name for t in m.graph.initializer] == ["v"]


def test_an_initializer_that_is_a_graph_output_stays() -> None:
    m = _chain_model()
    m.graph.output.append(helper.make_tensor_value_info("u", TensorProto.FLOAT, [3]))
    assert drop_unread_initializers(m, {"u"}) == set()
