"""Gelu in every form exporters produce.

- erf pattern  (torch nn.functional.gelu, opset < 20): x * 0.5 * (1 + erf(x / sqrt2))
  in any of its orderings (Div by sqrt2 or Mul by 1/sqrt2; the 0.5 applied to x
  first, to the product last, or to the erf term);
- tanh pattern (gelu_new / approximate="tanh"):
  0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)));
- onnx Gelu (opset 20, attribute approximate), com.microsoft Gelu, BiasGelu
  (x + bias, erf), FastGelu (tanh, optional bias).

Lowering: one gelu LOp; a BiasGelu/FastGelu bias is folded into the matmul that
produces x (passes/fold_bias.py). Emission: one int8 -> int8 gelu stage whose
static-mode 256-entry table is built by xdna_ep.kernel_specs.gelu.build_table.

Why the matching is hand-written graph walking: each form must also record x
(the activation the table is applied to) and every node it covers, resolved
through this project's GraphView (inferred shapes with bound symbolic dims,
constants behind Identity nodes, If-branch views) so that capability, the
region builder and the report agree on node names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import onnx

from ..capability.graph import GraphView, attr
from ..capability.matching import build_match, const_operand, near
from ..compile.ir import LOp
from ..compile.model_index import ModelIndex, NotLowerable
from ..kernel_specs.gelu import build_table
from ..plan import OpMatch
from .base import MatchAttrs, OpFamily, StageRule

if TYPE_CHECKING:
    from ..compile.build import Emitter



@dataclass(frozen=True, kw_only=True)
class GeluAttrs(MatchAttrs):
    """approximate: "none" (erf) or "tanh"; x: the input the GELU is applied to;
    bias: a constant added to x first (BiasGelu/FastGelu), folded into x's matmul."""

    approximate: str = "none"
    bias: str | None = None
    x: str = ""


SQRT2 = math.sqrt(2.0)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _tail(
    view: GraphView, t: str, x: str
) -> tuple[list[onnx.NodeProto], str] | None:
    """From the erf/tanh output `t`: Add 1, then multiply by x and 0.5 in any order."""
    add = view.single_consumer(t)
    if add is None or add.op_type != "Add":
        return None
    pair = const_operand(view, add)
    if pair is None or pair[0] != t or not near(view.scalar(pair[1]), 1.0):
        return None
    u = add.output[0]
    m1 = view.single_consumer(u)
    if m1 is None or m1.op_type != "Mul":
        return None
    other = m1.input[1] if m1.input[0] == u else m1.input[0]
    if other == x:  # (x * u) * 0.5
        m2 = view.single_consumer(m1.output[0])
        if m2 is None or m2.op_type != "Mul":
            return None
        p = const_operand(view, m2)
        if p is None or p[0] != m1.output[0] or not near(view.scalar(p[1]), 0.5):
            return None
        return [add, m1, m2], m2.output[0]
    if near(view.scalar(other), 0.5):  # (u * 0.5) * x
        m2 = view.single_consumer(m1.output[0])
        if m2 is None or m2.op_type != "Mul":
            return None
        rest = m2.input[1] if m2.input[0] == m1.output[0] else m2.input[0]
        if rest != x:
            return None
        return [add, m1, m2], m2.output[0]
    half = view.producer_of(other)  # (x * 0.5) * u
    if half is None or half.op_type != "Mul" or view.single_consumer(other) is not m1:
        return None
    p = const_operand(view, half)
    if p is None or p[0] != x or not near(view.scalar(p[1]), 0.5):
        return None
    return [half, add, m1], m1.output[0]


def _erf_pattern(view: GraphView, erf: onnx.NodeProto) -> OpMatch | None:
    pre = view.producer_of(erf.input[0])
    if pre is None or view.single_consumer(erf.input[0]) is not erf:
        return None
    pair = const_operand(view, pre)
    if pair is None:
        return None
    x, c = pair
    if pre.op_type == "Div" and pre.input[0] == x:
        ok = near(view.scalar(c), SQRT2)
    elif pre.op_type == "Mul":
        ok = near(view.scalar(c), 1.0 / SQRT2)
    else:
        ok = False
    if not ok:
        return None
    tail = _tail(view, erf.output[0], x)
    if tail is None:
        return None
    nodes, _y = tail
    return build_match(view, "gelu", [pre, erf, *nodes],
                       GeluAttrs(approximate="none", x=x), "erf-pattern")


def _cube(view: GraphView, name: str, x: str) -> list[onnx.NodeProto] | None:
    """Nodes computing x^3 as Pow(x, 3) or x*x*x."""
    p = view.producer_of(name)
    if p is None or view.single_consumer(name) is None:
        return None
    if p.op_type == "Pow" and p.input[0] == x and near(view.scalar(p.input[1]), 3.0):
        return [p]
    if p.op_type == "Mul":
        a, b = p.input
        if x in (a, b):
            sq = b if a == x else a
            q = view.producer_of(sq)
            if q is not None and q.op_type == "Mul" and list(q.input) == [x, x]:
                return [q, p]
            if q is not None and q.op_type == "Pow" and q.input[0] == x and near(
                view.scalar(q.input[1]), 2.0
            ):
                return [q, p]
    return None


def _tanh_pattern(view: GraphView, tanh: onnx.NodeProto) -> OpMatch | None:
    scale = view.producer_of(tanh.input[0])
    if scale is None or scale.op_type != "Mul" or view.single_consumer(tanh.input[0]) is not tanh:
        return None
    pair = const_operand(view, scale)
    if pair is None or not near(view.scalar(pair[1]), SQRT_2_OVER_PI):
        return None
    inner = view.producer_of(pair[0])
    if inner is None or inner.op_type != "Add" or view.single_consumer(pair[0]) is not scale:
        return None
    for x, cubic in ((inner.input[0], inner.input[1]), (inner.input[1], inner.input[0])):
        mulc = view.producer_of(cubic)
        if mulc is None or mulc.op_type != "Mul":
            continue
        p = const_operand(view, mulc)
        if p is None or not near(view.scalar(p[1]), 0.044715):
            continue
        cube = _cube(view, p[0], x)
        if cube is None:
            continue
        tail = _tail(view, tanh.output[0], x)
        if tail is None:
            return None
        nodes = [*cube, mulc, inner, scale, tanh, *tail[0]]
        return build_match(view, "gelu", nodes,
                           GeluAttrs(approximate="tanh", x=x), "tanh-pattern")
    return None


def match_gelu(view: GraphView, node: onnx.NodeProto) -> OpMatch | None:
    op = node.op_type
    if op == "Erf":
        return _erf_pattern(view, node)
    if op == "Tanh":
        return _tanh_pattern(view, node)
    if op == "Gelu":  # onnx opset 20 or com.microsoft
        approx = attr(node, "approximate", b"none")
        approx = approx.decode() if isinstance(approx, bytes) else str(approx)
        pattern = "Gelu" if node.domain in ("", "ai.onnx") else "com.microsoft.Gelu"
        return build_match(view, "gelu", [node],
                           GeluAttrs(approximate=approx, x=node.input[0]), pattern)
    if op in ("BiasGelu", "FastGelu"):
        bias = node.input[1] if len(node.input) > 1 and node.input[1] else None
        if bias is not None and not view.is_const(bias):
            return None
        approx = "none" if op == "BiasGelu" else "tanh"
        return build_match(view, "gelu", [node],
                           GeluAttrs(approximate=approx, bias=bias, x=node.input[0]), op)
    return None


def lower_gelu(idx: ModelIndex, m: OpMatch) -> list[LOp]:
    a: GeluAttrs = m.attrs
    if a.approximate not in ("none", "tanh"):
        raise NotLowerable(f"gelu {m.nodes[0]!r}: approximate={a.approximate!r} is not "
                           f"supported")
    return [LOp("gelu", (a.x or m.inputs[0],), (m.outputs[0],), {},
                {"approximate": a.approximate, "fold_bias": a.bias}, m.nodes)]


# Dynamic mode: the quantize stage of a tensor only gelus read caps its negative
# range at -max(max x, GELU_NEG_LIMIT) (kernels/STAGES.md quantize neg_limit): below
# about -4 GELU is ~0 (|gelu(-4)| < 1.3e-4), so finer codes there buy nothing.
# Measured on tiny.en (docs/ACCURACY.md): with the gelu output-scale rule this
# lifts the no-calibration encoder from cosine 0.958 to 0.989 (worst window).
GELU_NEG_LIMIT = 4.0


def emit_gelu(em: Emitter, i: int, op: LOp) -> None:
    x, y = op.inputs[0], op.outputs[0]
    attrs: dict[str, Any] = {"approximate": op.attrs["approximate"]}
    consts: dict[str, str] = {}
    if not em.dynamic:
        attrs["in_scale"] = em.scale(x)
        attrs["out_scale"] = em.scale(y)
        if y in em.offsets:
            attrs["out_offset"] = em.offsets[y][0]
        consts["table"] = em.const(i, "table", build_table(
            attrs["in_scale"], attrs["out_scale"], attrs["approximate"],
            attrs.get("out_offset", 0.0)))
    only_gelu = all(o.kernel == "gelu" for o in em.lr.ops if x in o.inputs)
    q_attrs = {"neg_limit": GELU_NEG_LIMIT} if em.dynamic and only_gelu else None
    em.push("gelu", em.int8_in(x, q_attrs), em.out_bufs(y), consts, attrs, op)


def cpu_reason(view: GraphView, node: onnx.NodeProto) -> str | None:
    """Why a Gelu/BiasGelu/FastGelu was not taken (None for other op types)."""
    if node.op_type not in ("Gelu", "BiasGelu", "FastGelu"):
        return None
    return "non-constant weight: Gelu bias is computed at run time"


OP = OpFamily(
    "gelu", GeluAttrs, (match_gelu,), lower_gelu,
    stages=(StageRule("gelu", emit_gelu, int8_inputs=(0,), int8_output="always"),),
    cpu_reason=cpu_reason)
