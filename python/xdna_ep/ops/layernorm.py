"""LayerNormalization: the onnx op, the decomposed pattern torch emits below
opset 17, and com.microsoft SkipLayerNormalization (residual add fused in).

Decomposed pattern (x normalised over its last axis):
    mean = ReduceMean(x); d = Sub(x, mean); var = ReduceMean(Pow(d, 2) | Mul(d, d))
    y = Div(d, Sqrt(Add(var, eps)))  |  Mul(d, Reciprocal(Sqrt(Add(var, eps))))
    y = Add(Mul(y, gamma), beta)     (gamma and beta optional)

Lowering: a layernorm LOp (gamma, beta float constants; beta zeros if absent);
a SkipLayerNormalization first gets an add LOp for x + skip (its bias is folded
into the matmul producing x or skip, passes/fold_bias.py). Emission: one
layernorm stage; it reads x in whatever dtype its producer emits (int8 or
float32) and writes int8 or float32.

Why the matching is hand-written: the decomposed form must reduce over the
last axis only (axes from the attribute or a constant input, rank from shape
inference) and the epsilon is read from a constant; these are GraphView facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from ..capability.graph import GraphView, attr
from ..capability.matching import build_match, const_operand, near
from ..compile.ir import LOp
from ..compile.model_index import ModelIndex, NotLowerable
from ..plan import OpMatch
from .base import MatchAttrs, OpFamily, StageRule

if TYPE_CHECKING:
    from ..compile.build import Emitter


@dataclass(frozen=True, kw_only=True)
class LayerNormAttrs(MatchAttrs):
    """x: the normalised tensor; gamma/beta: constants [C] (beta may be None);
    skip: SkipLayerNormalization's second addend (None otherwise), bias its
    constant bias, sum_output the x + skip tensor when the graph reads it."""

    epsilon: float = 1e-5
    gamma: str | None = None
    beta: str | None = None
    skip: str | None = None
    bias: str | None = None
    x: str = ""
    sum_output: str | None = None


def _reduces_last_axis(view: GraphView, node: onnx.NodeProto) -> bool:
    axes = attr(node, "axes", None)
    if axes is None and len(node.input) > 1 and node.input[1]:
        v = view.const_value(node.input[1])
        axes = None if v is None else [int(a) for a in v.reshape(-1)]
    if axes is None or len(axes) != 1:
        return False
    rank = view.info(node.input[0]).shape
    return axes[0] == -1 or (rank is not None and axes[0] == len(rank) - 1)


def _decomposed(view: GraphView, r1: onnx.NodeProto) -> OpMatch | None:
    if not _reduces_last_axis(view, r1) or not int(attr(r1, "keepdims", 1)):
        return None
    x = r1.input[0]
    mean = r1.output[0]
    sub = view.single_consumer(mean)
    if sub is None or sub.op_type != "Sub" or list(sub.input) != [x, mean]:
        return None
    d = sub.output[0]
    cons = view.consumers_of(d)
    if d in view.outputs or len(cons) != 2:
        return None
    sq = next((c for c in cons if c.op_type in ("Pow", "Mul") and c is not None), None)
    if sq is None:
        return None
    if sq.op_type == "Pow" and not (sq.input[0] == d and near(view.scalar(sq.input[1]), 2.0)):
        return None
    if sq.op_type == "Mul" and list(sq.input) != [d, d]:
        return None
    div = next(c for c in cons if c is not sq)
    r2 = view.single_consumer(sq.output[0])
    if r2 is None or r2.op_type != "ReduceMean" or not _reduces_last_axis(view, r2):
        return None
    add = view.single_consumer(r2.output[0])
    if add is None or add.op_type != "Add":
        return None
    pair = const_operand(view, add)
    if pair is None or pair[0] != r2.output[0]:
        return None
    eps = view.scalar(pair[1])
    if eps is None:
        return None
    sqrt = view.single_consumer(add.output[0])
    if sqrt is None or sqrt.op_type != "Sqrt":
        return None
    nodes = [r1, sub, sq, r2, add, sqrt]
    if div.op_type == "Div":
        if list(div.input) != [d, sqrt.output[0]] or view.single_consumer(sqrt.output[0]) is not div:
            return None
        nodes.append(div)
    elif div.op_type == "Mul":
        rec = view.single_consumer(sqrt.output[0])
        if rec is None or rec.op_type != "Reciprocal" or view.single_consumer(rec.output[0]) is not div:
            return None
        if set(div.input) != {d, rec.output[0]}:
            return None
        nodes += [rec, div]
    else:
        return None
    y = div.output[0]
    affine: dict[str, str | None] = {"Mul": None, "Add": None}  # y * gamma + beta, each optional
    nxt = view.single_consumer(y)
    for op_type in affine:
        p = const_operand(view, nxt) if nxt is not None and nxt.op_type == op_type else None
        if p is None or p[0] != y:
            continue
        affine[op_type], y = p[1], nxt.output[0]
        nodes.append(nxt)
        nxt = view.single_consumer(y)
    attrs = LayerNormAttrs(epsilon=float(eps), gamma=affine["Mul"], beta=affine["Add"], x=x)
    return build_match(view, "layernorm", nodes, attrs, "decomposed")


def match_layernorm(view: GraphView, node: onnx.NodeProto) -> OpMatch | None:
    op = node.op_type
    if op == "ReduceMean":
        return _decomposed(view, node)
    if op == "LayerNormalization":
        rank = view.info(node.input[0]).shape
        axis = int(attr(node, "axis", -1))
        if not (axis == -1 or (rank is not None and axis == len(rank) - 1)):
            return None
        gamma = node.input[1] if len(node.input) > 1 else None
        beta = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if gamma is None or not view.is_const(gamma) or (beta and not view.is_const(beta)):
            return None
        if any(o and view.consumers_of(o) for o in node.output[1:]):
            return None  # Mean / InvStdDev outputs are not produced by the kernel
        attrs = LayerNormAttrs(epsilon=float(attr(node, "epsilon", 1e-5)), gamma=gamma,
                               beta=beta, x=node.input[0])
        return build_match(view, "layernorm", [node], attrs, "LayerNormalization")
    if op == "SkipLayerNormalization":
        ins = list(node.input) + [""] * 5
        x, skip, gamma, beta, bias = ins[:5]
        for c in (gamma, beta, bias):
            if c and not view.is_const(c):
                return None
        if any(o and view.consumers_of(o) for o in node.output[1:3]):
            return None
        attrs = LayerNormAttrs(
            epsilon=float(attr(node, "epsilon", 1e-12)), gamma=gamma, beta=beta or None,
            skip=skip, bias=bias or None, x=x,
            sum_output=node.output[3] if len(node.output) > 3 and node.output[3] else None)
        return build_match(view, "layernorm", [node], attrs, "SkipLayerNormalization")
    return None


def lower_layernorm(idx: ModelIndex, m: OpMatch) -> list[LOp]:
    a: LayerNormAttrs = m.attrs
    # without gamma (a decomposed form with no scale Mul) float_weight says "not a constant"
    gamma = idx.float_weight(a.gamma)  # type: ignore[arg-type]
    beta = idx.float_weight(a.beta) if a.beta else np.zeros_like(gamma)
    ops: list[LOp] = []
    x = a.x or m.inputs[0]
    if a.skip:
        s = a.sum_output or f"{m.outputs[0]}::skipsum"
        # a SkipLayerNormalization bias joins the matmul producing x or skip
        fold = {"fold_bias": a.bias} if a.bias else {}
        ops.append(LOp("add", (x, a.skip), (s,), {}, fold, m.nodes))
        x = s
    elif a.bias:
        raise NotLowerable(f"layernorm {m.nodes[0]!r}: a bias without skip input")
    ops.append(LOp("layernorm", (x,), (m.outputs[0],),
                   {"gamma": gamma.reshape(-1), "beta": beta.reshape(-1)},
                   {"epsilon": float(a.epsilon)}, m.nodes))
    return ops


def emit_layernorm(em: Emitter, i: int, op: LOp) -> None:
    x, y = op.inputs[0], op.outputs[0]
    attrs: dict[str, Any] = {"epsilon": op.attrs["epsilon"]}
    if em.bp.produced.get(x) == "int8":
        ins: tuple[str, ...] = em.int8_in(x)
        if not em.dynamic:
            attrs["in_scale"] = em.scale(x)
    else:
        ins = (em.float_in(x),)
    out_int8 = em.bp.produced[y] == "int8"
    attrs["out"] = "int8" if out_int8 else "float32"
    if out_int8:
        attrs["out_scale"] = em.scale(y)
    # "dynamic" concerns int8 inputs only: a float32-input layernorm has no scale to carry
    em.push("layernorm", ins, em.out_bufs(y), em.consts(i, ("gamma", "beta")), attrs, op,
            dynamic=em.dynamic and len(ins) == 2)


def cpu_reason(view: GraphView, node: onnx.NodeProto) -> str | None:
    """Why a (Skip)LayerNormalization was not taken (None for other op types)."""
    if node.op_type not in ("LayerNormalization", "SkipLayerNormalization"):
        return None
    return ("shape: normalisation over a non-last axis, non-constant gamma/beta, or "
            "Mean/InvStdDev outputs in use")


OP = OpFamily(
    "layernorm", LayerNormAttrs, (match_layernorm,), lower_layernorm,
    stages=(StageRule("layernorm", emit_layernorm, flex_inputs=(0,), int8_output="static"),),
    cpu_reason=cpu_reason)
