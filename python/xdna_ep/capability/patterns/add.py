"""Residual Add: float32 + float32, both activations of the same shape.

The add kernel does not broadcast and has no constant operand, so an Add with
an initializer (position embedding, a bias not next to a MatMul) or with
broadcasting stays on CPU.
"""

from __future__ import annotations

import onnx

from ...plan import OpMatch
from ..graph import GraphView
from .common import build_match, is_float32


def add_problem(view: GraphView, node: onnx.NodeProto) -> str | None:
    """Why an Add cannot be a residual add (None if it can)."""
    if len(node.input) != 2:
        return "shape: Add needs exactly two inputs"
    a, b = node.input
    if view.is_const(a) or view.is_const(b):
        return ("unmatched: Add with a constant operand (bias/position embedding) not "
                "following a MatMul stays on CPU")
    if not (is_float32(view, a) and is_float32(view, b)):
        dt = view.info(a).dtype_name
        return f"unsupported op: {dt} Add (index/shape arithmetic) runs on CPU"
    sa, sb = view.info(a).shape, view.info(b).shape
    if sa is None or sb is None:
        return "shape: operand shapes unknown (the add kernel needs equal shapes)"
    if len(sa) < 2 or len(sa) != len(sb) or any(
        x is None or y is None or x != y for x, y in zip(sa, sb, strict=True)
    ):
        return f"shape: broadcasting Add {list(sa)} + {list(sb)} (the add kernel needs equal shapes)"
    return None


def match_residual_add(view: GraphView, node: onnx.NodeProto) -> OpMatch | None:
    if node.op_type != "Add" or add_problem(view, node) is not None:
        return None
    return build_match(view, "add", [node], {"a": node.input[0], "b": node.input[1]}, "residual")
