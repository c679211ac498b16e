"""Adds the add kernel takes: the residual Add (two float32 activations of the
same shape) and the audio front end's position add.

The position add is Whisper's `Transpose(conv_out, perm=[0, 2, 1]) + table`:
the conv front end produces [B, D, T] and the encoder adds a constant
[T, D] position table to its transpose. The add kernel takes that as one
stage (a transposed `a` plus a constant `b`, kernels/STAGES.md), so the
front end's chain reaches the encoder layers without a CPU round trip and
matches the manifest's `conv_frontend` design (one launch). An Add of a
constant table of rank >= 2 that broadcasts over the leading dims ([B, T, D] +
[1, T, D] or [T, D]: position embeddings without the Transpose, as torch's
dynamo export writes them) is one add stage with a constant b. An Add of a
constant vector (a bias not next to a MatMul) still stays on the CPU.

Lowering: one add LOp (two activations; or, for the position add, the
transposed activation and the table as constant "b", its leading 1s dropped).
Emission: one float32 add stage. A SkipLayerNormalization also lowers to an add
LOp (ops/layernorm.py); this module emits it the same way.

The residual form also takes two float32 activations where b broadcasts over
a's LEADING dims: [B, T, D] + [1, T, D] or [T, D] (GPT-2's token embedding
plus its position embedding, both Gather outputs), rank <= 4. b stays a
second activation input and the kernel repeats it over B (the add stage drops
b's leading 1s, kernel_version 3). Other broadcasts (b broadcasting on one of
the last two dims, a broadcasting, rank > 4) stay on the CPU with the reason
add_problem gives.

Why the matching is hand-written: whether an Add qualifies depends on its
operands' inferred float32-ness and shapes (and, for the position add,
on the producer being a [0, 2, 1] Transpose read by this Add only), which the
reasons reported for a CPU Add (add_problem) restate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import onnx

from ..capability.graph import GraphView, attr
from ..capability.matching import build_match, const_operand, is_float32
from ..compile.ir import LOp
from ..compile.model_index import ModelIndex, NotLowerable
from ..plan import OpMatch
from .base import MatchAttrs, OpFamily, StageRule

if TYPE_CHECKING:
    from ..compile.build import Emitter


@dataclass(frozen=True, kw_only=True)
class AddAttrs(MatchAttrs):
    """a, b: the two addends (residual form); position form: a is the tensor
    before the Transpose, table the constant position table, transpose_a True."""

    a: str = ""
    b: str | None = None
    table: str | None = None
    transpose_a: bool = False


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
    if len(sa) == len(sb) and len(sa) >= 2 and all(
        x is not None and y is not None and x == y for x, y in zip(sa, sb, strict=True)
    ):
        return None
    return _broadcast_problem(list(sa), list(sb))


MAX_BROADCAST_RANK = 4


def _broadcast_problem(sa: list, sb: list) -> str | None:
    """Why a broadcasting activation + activation Add is not one add stage (None if
    it is): b, its leading 1s dropped, must equal a's trailing [..., T, D] (at
    least two dims, concrete) with rank(b) <= rank(a) <= 4; the kernel repeats b
    over a's leading dims (kernel_version 3), which may be symbolic."""
    head = f"shape: broadcasting Add {sa} + {sb}"
    if len(sa) < 2:
        return f"{head} (the add kernel broadcasts b over a of rank >= 2 only)"
    if len(sa) > MAX_BROADCAST_RANK:
        return f"{head} (rank {len(sa)} > {MAX_BROADCAST_RANK}: the add kernel broadcasts up to rank 4)"
    if len(sb) > len(sa) or any(x == 1 and y != 1 for x, y in zip(sa[::-1], sb[::-1], strict=False)):
        return f"{head} (a broadcasts; the add kernel repeats only b, the second operand)"
    if any(not isinstance(d, int) for d in sb):
        return f"{head} (b's shape is not concrete; the add kernel needs it to broadcast)"
    core = list(sb)
    while core and core[0] == 1:
        core.pop(0)
    if len(core) < 2 or core != list(sa[len(sa) - len(core):]):
        return (f"{head} (b must be a's trailing [..., T, D] after leading 1s; a b that "
                f"broadcasts on one of the last two dims is not an add stage)")
    return None


def match_residual_add(view: GraphView, node: onnx.NodeProto) -> OpMatch | None:
    if node.op_type != "Add" or add_problem(view, node) is not None:
        return None
    return build_match(view, "add", [node], AddAttrs(a=node.input[0], b=node.input[1]), "residual")


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
    return build_match(view, "add", [tr, node], AddAttrs(a=x, table=table, transpose_a=True),
                       "TransposePositionAdd")


def match_table_add(view: GraphView, node: onnx.NodeProto) -> OpMatch | None:
    """Add(x, table) with a constant float32 table of rank >= 2 (leading 1s aside)
    that is a suffix of x's shape: [B, T, D] + [1, T, D] or [T, D] (position
    embeddings in torch's dynamo export, often a Gather of the table that
    constant-folds). The kernel repeats the table over x's leading dims."""
    if node.op_type != "Add":
        return None
    pair = const_operand(view, node)
    if pair is None:
        return None
    x, table = pair
    xs = view.info(x).concrete()
    if xs is None or len(xs) < 2 or not is_float32(view, x):
        return None
    ts = view.info(table).concrete()
    if ts is None:
        value = view.const_value(table)
        ts = None if value is None else tuple(value.shape)
    if ts is None or not is_float32(view, table):
        return None
    core = list(ts)
    while core and core[0] == 1:
        core.pop(0)
    if len(core) < 2 or len(core) > len(xs) or tuple(core) != tuple(xs[len(xs) - len(core):]):
        return None
    return build_match(view, "add", [node], AddAttrs(a=x, table=table), "TableAdd")


def lower_add(idx: ModelIndex, m: OpMatch) -> list[LOp]:
    a: AddAttrs = m.attrs
    if a.table and not a.transpose_a:
        table = idx.float_weight(a.table)
        lead = 0
        while lead < table.ndim - 2 and table.shape[lead] == 1:
            lead += 1
        core = table.reshape(table.shape[lead:])
        return [LOp("add", (a.a,), (m.outputs[0],),
                    {"b": np.ascontiguousarray(core, dtype=np.float32)}, {}, m.nodes)]
    if a.table:
        return [_lower_position_add(idx, m, a)]
    if len(m.inputs) != 2:
        raise NotLowerable(f"add {m.nodes[0]!r}: needs two activation inputs")
    for t in m.inputs:
        if idx.is_constant(t):
            raise NotLowerable(f"add {m.nodes[0]!r}: operand {t!r} is a constant; the add "
                               f"kernel takes two activations")
    return [LOp("add", tuple(m.inputs), (m.outputs[0],), {}, {}, m.nodes)]


def _lower_position_add(idx: ModelIndex, m: OpMatch, a: AddAttrs) -> LOp:
    """Transpose(x, [0, 2, 1]) + table: one add stage with a transposed `a` and a
    constant `b` (the table, its leading 1s dropped: the kernel repeats it over B)."""
    assert a.table is not None
    table = idx.float_weight(a.table)
    if table.ndim < 2 or any(d != 1 for d in table.shape[:-2]):
        raise NotLowerable(f"add {m.nodes[-1]!r}: position table {a.table!r} has shape "
                           f"{list(table.shape)} (expected [T, D])")
    return LOp("add", (a.a,), (m.outputs[0],),
               {"b": np.ascontiguousarray(table.reshape(table.shape[-2:]), dtype=np.float32)},
               {"transpose_a": True}, m.nodes)


def emit_add(em: Emitter, i: int, op: LOp) -> None:
    ins = [em.float_in(t) for t in op.inputs]
    consts = em.consts(i, ("b",))  # the position add's table
    attrs = ({"transpose_a": True, "table_rows": int(op.weights["b"].shape[0])}
             if op.attrs.get("transpose_a") else {})
    em.push("add", ins, (op.outputs[0],), consts, attrs, op, dynamic=False)


# the position add first: a residual Add would not claim it (constant operand),
# but the order states which form wins


def cpu_reason(view: GraphView, node: onnx.NodeProto) -> str | None:
    """Why an Add was not taken (None for other op types)."""
    if node.op_type != "Add":
        return None
    return add_problem(view, node) or "unmatched: Add not on the residual stream"


OP = OpFamily(
    "add", AddAttrs, (match_position_add, match_residual_add, match_table_add), lower_add,
    stages=(StageRule("add", emit_add),),
    cpu_reason=cpu_reason)
