"""Adds the add kernel takes: the residual Add (two float32 activations of the
same shape) and the audio front end's position add.

The position add is Whisper's `Transpose(conv_out, perm=[0, 2, 1]) + table`:
the conv front end produces [B, D, T] and the encoder adds a constant
[T, D] position table to its transpose. The add kernel takes that as one
stage (a transposed `a` plus a constant `b`, kernels/STAGES.md), so the
front end's chain reaches the encoder layers without a CPU round trip and
matches the manifest's `conv_frontend` design (one launch). Any other Add
with a constant operand (a bias not next to a MatMul, broadcasting against a
vector) still stays on the CPU.
"""

from __future__ import annotations

import onnx

from ...plan import OpMatch
from ..graph import GraphView, attr
from .common import build_match, const_operand, is_float32


def add_problem(view: GraphView, node: onnx.NodeProto) -> str | None:
    """Why an Add cannot be a residual add (None if it can)."""
    if len(node.input) != 2:
        return "shape: Add needs exactly two inputs"
    a, b = node.input
    if view.is_const(a) or view.is_const(b):
        return ("unmatched: Add with a constant operand (a bias not following a MatMul, "
                "or a table not added to a transposed conv output) stays on CPU")
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


def _position_table_fits(view: GraphView, table: str, out_shape: tuple) -> bool:
    """The table is float32 and its shape is a suffix of the transposed output
    ([T, D] or [1, T, D] for a [B, T, D] output): the kernel repeats it over B."""
    if not is_float32(view, table):
        return False
    ts = view.info(table).concrete()
    if ts is None or not 2 <= len(ts) <= len(out_shape):
        return False
    lead, tail = ts[: len(ts) - 2], ts[len(ts) - 2:]
    return all(d == 1 for d in lead) and tuple(tail) == tuple(out_shape[-2:])


def match_position_add(view: GraphView, node: onnx.NodeProto) -> OpMatch | None:
    """Add(Transpose(x, perm=[0, 2, 1]), table) with a constant table (anchor: the Add)."""
    if node.op_type != "Add":
        return None
    pair = const_operand(view, node)
    if pair is None:
        return None
    act, table = pair
    tr = view.producer_of(act)
    if tr is None or tr.op_type != "Transpose" or list(attr(tr, "perm", [])) != [0, 2, 1]:
        return None
    only = view.single_consumer(act)
    if only is None or only.name != node.name:
        return None  # the transposed tensor is needed elsewhere in its own right
    x = tr.input[0]
    if view.is_const(x) or not is_float32(view, x):
        return None
    xs, ys = view.info(x).concrete(), view.info(node.output[0]).concrete()
    if xs is None or ys is None or len(xs) != 3 or tuple(ys) != (xs[0], xs[2], xs[1]):
        return None
    if not _position_table_fits(view, table, ys):
        return None
    return build_match(view, "add", [tr, node], {"a": x, "table": table, "transpose_a": True},
                       "TransposePositionAdd")
