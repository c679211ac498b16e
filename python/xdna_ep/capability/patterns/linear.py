"""MatMul/Gemm with a constant weight (+ the bias Add that follows), and Conv1d."""

from __future__ import annotations

import onnx

from ...plan import OpMatch
from ..graph import GraphView, attr, numel
from .common import build_match, const_operand


def _bias_add(view: GraphView, out: str, n: int) -> tuple[onnx.NodeProto, str] | None:
    """The Add right after a matmul that adds a constant [N] vector, if any."""
    cons = view.single_consumer(out)
    if cons is None or cons.op_type != "Add":
        return None
    pair = const_operand(view, cons)
    if pair is None or pair[0] != out:
        return None
    bias = pair[1]
    shape = view.info(bias).concrete()
    if shape is None or numel(shape) != n or (shape and shape[-1] != n):
        return None
    return cons, bias


def match_matmul(view: GraphView, node: onnx.NodeProto) -> OpMatch | None:
    if node.op_type not in ("MatMul", "Gemm") or len(node.input) < 2:
        return None
    a, w = node.input[0], node.input[1]
    if view.is_const(a) or not view.is_const(w):
        return None
    wshape = view.info(w).concrete()
    if wshape is None or len(wshape) != 2 or 0 in wshape:
        return None
    transpose_b = False
    alpha = beta = 1.0
    bias: str | None = None
    nodes = [node]
    if node.op_type == "Gemm":
        if attr(node, "transA", 0):
            return None
        transpose_b = bool(attr(node, "transB", 0))
        alpha = float(attr(node, "alpha", 1.0))
        beta = float(attr(node, "beta", 1.0))
        if len(node.input) > 2 and node.input[2]:
            if not view.is_const(node.input[2]):
                return None
            bias = node.input[2]
    k, n = (wshape[1], wshape[0]) if transpose_b else wshape
    ashape = view.info(a).shape
    if ashape is not None and ashape and isinstance(ashape[-1], int) and ashape[-1] != k:
        return None
    if bias is None:
        found = _bias_add(view, node.output[0], n)
        if found is not None:
            nodes.append(found[0])
            bias = found[1]
    ac = view.info(a).concrete()
    m = numel(ac[:-1]) if ac else 0
    attrs = {
        "weight": w, "bias": bias, "transpose_b": transpose_b, "alpha": alpha, "beta": beta,
        "m": m, "k": k, "n": n,
    }
    pattern = "Gemm" if node.op_type == "Gemm" else ("MatMul+Add" if len(nodes) > 1 else "MatMul")
    return build_match(view, "matmul", nodes, attrs, pattern)


def match_conv1d(view: GraphView, node: onnx.NodeProto) -> OpMatch | None:
    if node.op_type != "Conv" or len(node.input) < 2:
        return None
    x, w = node.input[0], node.input[1]
    if view.is_const(x) or not view.is_const(w):
        return None
    wshape = view.info(w).concrete()
    if wshape is None or len(wshape) != 3:
        return None
    if int(attr(node, "group", 1)) != 1:
        return None
    dil = list(attr(node, "dilations", [1]))
    if any(d != 1 for d in dil):
        return None
    if attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return None
    bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
    if bias is not None and not view.is_const(bias):
        return None
    pads = list(attr(node, "pads", [0, 0]))
    if len(pads) != 2 or pads[0] != pads[1]:
        return None  # the conv1d kernel pads symmetrically
    strides = list(attr(node, "strides", [1]))
    xc = view.info(x).concrete()
    attrs = {
        "weight": w, "bias": bias, "stride": int(strides[0]), "pads": pads,
        "pad": int(pads[0]), "dilation": 1, "group": 1, "kernel": int(wshape[2]),
        "cin": int(wshape[1]),
        "cout": int(wshape[0]), "m": (xc[0] * xc[2]) if xc and len(xc) == 3 else 0,
    }
    return build_match(view, "conv1d", [node], attrs, "Conv1d")
