"""LayerNormalization: the onnx op, the decomposed pattern torch emits below
opset 17, and com.microsoft SkipLayerNormalization (residual add fused in).

Decomposed pattern (x normalised over its last axis):
    mean = ReduceMean(x); d = Sub(x, mean); var = ReduceMean(Pow(d, 2) | Mul(d, d))
    y = Div(d, Sqrt(Add(var, eps)))  |  Mul(d, Reciprocal(Sqrt(Add(var, eps))))
    y = Add(Mul(y, gamma), beta)     (gamma and beta optional)
"""

from __future__ import annotations

import onnx

from ...plan import OpMatch
from ..graph import GraphView, attr
from .common import build_match, const_operand, near


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
    gamma = beta = None
    nxt = view.single_consumer(y)
    if nxt is not None and nxt.op_type == "Mul":
        p = const_operand(view, nxt)
        if p is not None and p[0] == y:
            gamma, y = p[1], nxt.output[0]
            nodes.append(nxt)
            nxt = view.single_consumer(y)
    if nxt is not None and nxt.op_type == "Add":
        p = const_operand(view, nxt)
        if p is not None and p[0] == y:
            beta, y = p[1], nxt.output[0]
            nodes.append(nxt)
    attrs = {"epsilon": float(eps), "gamma": gamma, "beta": beta, "skip": None, "x": x}
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
        attrs = {"epsilon": float(attr(node, "epsilon", 1e-5)), "gamma": gamma, "beta": beta,
                 "skip": None, "x": node.input[0]}
        return build_match(view, "layernorm", [node], attrs, "LayerNormalization")
    if op == "SkipLayerNormalization":
        ins = list(node.input) + [""] * 5
        x, skip, gamma, beta, bias = ins[:5]
        for c in (gamma, beta, bias):
            if c and not view.is_const(c):
                return None
        if any(o and view.consumers_of(o) for o in node.output[1:3]):
            return None
        attrs = {"epsilon": float(attr(node, "epsilon", 1e-12)), "gamma": gamma,
                 "beta": beta or None, "skip": skip, "bias": bias or None, "x": x,
                 "sum_output": node.output[3] if len(node.output) > 3 and node.output[3] else None}
        return build_match(view, "layernorm", [node], attrs, "SkipLayerNormalization")
    return None
