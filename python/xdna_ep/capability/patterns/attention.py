"""Attention: the decomposed head pattern Optimum exports for Whisper, and the
fused com.microsoft Attention / MultiHeadAttention ops.

Decomposed pattern, anchored on Softmax (last axis):

    q' = walk(q)   k' = walk(k)   v' = walk(v)       walk = Reshape/Transpose/
    s  = MatMul(q', k')                               Mul|Div by a scalar
    s  = s [* or / scalar] [+ mask]                   (any order)
    p  = Softmax(s)
    o  = MatMul(p, v') -> Transpose -> Reshape        (heads merged back)

The q/k/v projections are separate matmul matches (regions merge them); a
walk stops at a tensor read elsewhere, so in decoder_with_past k/v stop at the
KV-cache Concat (its output is the graph output present.*): the Concat stays a
CPU node and the match records past/present names and the head layout of k/v.
`scale` is the product of every scalar on the q, k and logits paths (torch's
SDPA export multiplies q and k by sqrt(scale) each).
"""

from __future__ import annotations

import onnx

from ...plan import OpMatch
from ..graph import GraphView, attr
from .common import build_match, const_operand

TRANSPARENT = ("Transpose", "Reshape")


def _walk_back(
    view: GraphView, t: str
) -> tuple[str, list[onnx.NodeProto], float]:
    """Walk from `t` up through head reshapes/transposes/scalar scalings."""
    nodes: list[onnx.NodeProto] = []
    scale = 1.0
    for _ in range(8):
        p = view.producer_of(t)
        if p is None or t in view.outputs or len(view.consumers_of(t)) != 1:
            break
        if p.op_type in TRANSPARENT:
            nodes.append(p)
            t = p.input[0]
            continue
        if p.op_type in ("Mul", "Div"):
            pair = const_operand(view, p)
            c = view.scalar(pair[1]) if pair else None
            if pair is None or c is None or c == 0.0:
                break
            if p.op_type == "Div" and p.input[0] != pair[0]:
                break
            scale *= c if p.op_type == "Mul" else 1.0 / c
            nodes.append(p)
            t = pair[0]
            continue
        break
    return t, nodes, scale


def _layout(view: GraphView, boundary: str, walk: list[onnx.NodeProto], role: str) -> str:
    """Layout of a boundary tensor, from its rank and the transposes between it
    and the MatMul operand: bsd = [B,T,H*Dh]; bhsd = [B,H,T,Dh]; bshd = [B,T,H,Dh];
    bhds = [B,H,Dh,T] (a key that arrives already transposed)."""
    shape = view.info(boundary).shape
    if any(n.op_type == "Reshape" for n in walk):
        return "bsd" if shape is None or len(shape) == 3 else "unknown"
    if shape is not None and len(shape) != 4:
        return "unknown"
    axes = [0, 1, 2, 3]  # operand axis -> boundary axis, composed boundary -> operand
    for n in reversed(walk):
        if n.op_type == "Transpose":
            perm = list(attr(n, "perm", []))
            if sorted(perm) != [0, 1, 2, 3]:
                return "unknown"
            axes = [axes[p] for p in perm]
    # operands: q/v are [B,H,T,Dh], k is [B,H,Dh,T]; invert to name the boundary
    table = {
        "q": {(0, 1, 2, 3): "bhsd", (0, 2, 1, 3): "bshd"},
        "v": {(0, 1, 2, 3): "bhsd", (0, 2, 1, 3): "bshd"},
        "k": {(0, 1, 3, 2): "bhsd", (0, 2, 3, 1): "bshd", (0, 1, 2, 3): "bhds"},
    }
    return table[role].get(tuple(axes), "unknown")


def _heads(view: GraphView, q_in: str, walk: list[onnx.NodeProto]) -> tuple[int, int]:
    """(num_heads, head_dim) from the head-split tensors (0 if unknown)."""
    shape = view.info(q_in).concrete()
    if shape and len(shape) == 4:
        return shape[1], shape[3]
    for n in walk:  # 3-D [B*H, T, Dh] form: the Reshape to [B, T, H, Dh] tells H
        out = view.info(n.output[0]).concrete()
        if n.op_type == "Reshape" and out and len(out) == 4:
            return out[2], out[3]
    return 0, 0


def _nan_guard(
    view: GraphView, probs: str
) -> tuple[onnx.NodeProto, onnx.NodeProto] | None:
    """(IsNaN, Where) if `probs` goes through Where(IsNaN(probs), 0, probs).

    The NPU softmax never yields NaN (a fully masked row gives zeros), which is
    what the guard computes, so the two nodes belong to the match."""
    cons = view.consumers_of(probs)
    if probs in view.outputs or len(cons) != 2:
        return None
    isnan = next((c for c in cons if c.op_type == "IsNaN"), None)
    where = next((c for c in cons if c.op_type == "Where"), None)
    if isnan is None or where is None or view.single_consumer(isnan.output[0]) is not where:
        return None
    if list(where.input)[0::2] != [isnan.output[0], probs] or view.scalar(where.input[1]) != 0.0:
        return None
    return isnan, where


def _decomposed(view: GraphView, softmax: onnx.NodeProto) -> OpMatch | None:
    rank = view.info(softmax.input[0]).shape
    axis = int(attr(softmax, "axis", -1))
    if not (axis == -1 or (rank is not None and axis == len(rank) - 1)):
        return None
    # logits side: Softmax <- [Add mask] [Mul/Div scalar] ... <- MatMul(q', k')
    mid: list[onnx.NodeProto] = []
    mask: str | None = None
    scale = 1.0
    t = softmax.input[0]
    qk = None
    for _ in range(4):
        p = view.producer_of(t)
        if p is None or len(view.consumers_of(t)) != 1 or t in view.outputs:
            return None
        if p.op_type == "MatMul":
            qk = p
            break
        if p.op_type in ("Mul", "Div"):
            pair = const_operand(view, p)
            c = view.scalar(pair[1]) if pair else None
            if c is None or c == 0.0 or (p.op_type == "Div" and p.input[0] != pair[0]):
                return None
            scale *= c if p.op_type == "Mul" else 1.0 / c
            mid.append(p)
            t = pair[0]
        elif p.op_type == "Add" and mask is None:
            a, b = p.input
            chain = a if view.producer_of(a) is not None and view.producer_of(a).op_type in (
                "MatMul", "Mul", "Div") else b
            mask = b if chain == a else a
            mid.append(p)
            t = chain
        else:
            return None
    if qk is None:
        return None
    q, q_walk, q_scale = _walk_back(view, qk.input[0])
    k, k_walk, k_scale = _walk_back(view, qk.input[1])
    if view.is_const(q) or view.is_const(k):
        return None
    probs = softmax.output[0]
    nan_guard = _nan_guard(view, probs)
    if nan_guard is not None:  # torch SDPA export: Where(IsNaN(p), 0, p)
        probs = nan_guard[1].output[0]
    pv = view.single_consumer(probs)
    if pv is None or pv.op_type != "MatMul" or pv.input[0] != probs:
        return None
    v, v_walk, v_scale = _walk_back(view, pv.input[1])
    if view.is_const(v) or v_scale != 1.0:
        return None
    out_walk: list[onnx.NodeProto] = []
    o = pv.output[0]
    for _ in range(3):
        c = view.single_consumer(o)
        if c is None or c.op_type not in TRANSPARENT:
            break
        out_walk.append(c)
        o = c.output[0]
    num_heads, head_dim = _heads(view, qk.input[0], q_walk)
    logits = view.info(softmax.input[0]).concrete()
    guard = list(nan_guard) if nan_guard is not None else []
    nodes = [*q_walk, *k_walk, qk, *mid, softmax, *guard, pv, *v_walk, *out_walk]
    if len({n.name for n in nodes}) != len(nodes):
        return None
    attrs = {
        "q": q, "k": k, "v": v, "mask": mask, "has_mask": mask is not None,
        "scale": float(scale * q_scale * k_scale), "num_heads": num_heads,
        "head_dim": head_dim, "causal": False,
        "tq": logits[-2] if logits and len(logits) >= 2 else 0,
        "tk": logits[-1] if logits else 0,
        "q_layout": _layout(view, q, q_walk, "q"), "k_layout": _layout(view, k, k_walk, "k"),
        "v_layout": _layout(view, v, v_walk, "v"), "out": o,
        "out_layout": "bsd" if any(n.op_type == "Reshape" for n in out_walk) else "unknown",
        "nan_guard": nan_guard is not None,
        "shape_inputs": [n.input[1] for n in nodes if n.op_type == "Reshape"],
    }
    for role, name in (("key", k), ("value", v)):
        cat = view.producer_of(name)
        if cat is not None and cat.op_type == "Concat":
            past = [i for i in cat.input if view.producer_of(i) is None and not view.is_const(i)]
            attrs[f"past_{role}"] = past[0] if past else None
            attrs[f"kv_concat_{role}"] = cat.name
            attrs[f"present_{role}"] = name if name in view.outputs else None
    match = build_match(view, "attention", nodes, attrs, "decomposed")
    if list(match.outputs) != [o]:
        return None  # an intermediate (probabilities, heads) is read elsewhere
    return match


def _fused(view: GraphView, node: onnx.NodeProto) -> OpMatch | None:
    ins = list(node.input) + [""] * 8
    heads = int(attr(node, "num_heads", 0))
    scale = float(attr(node, "scale", 0.0))
    causal = bool(attr(node, "unidirectional", 0))
    if node.op_type == "Attention":
        weight, bias = ins[1], ins[2]
        if not view.is_const(weight) or (bias and not view.is_const(bias)):
            return None
        attrs = {"fused": "Attention", "weight": weight, "bias": bias or None,
                 "mask": ins[3] or None, "past": ins[4] or None, "num_heads": heads,
                 "scale": scale or None, "causal": causal, "q": ins[0], "k": None, "v": None,
                 "has_mask": bool(ins[3]),
                 "qkv_hidden_sizes": list(attr(node, "qkv_hidden_sizes", []) or [])}
        xs = view.info(ins[0]).concrete()
        attrs["tq"] = xs[1] if xs and len(xs) == 3 else 0
        return build_match(view, "attention", [node], attrs, "com.microsoft.Attention")
    if node.op_type == "MultiHeadAttention":
        bias = ins[3]
        if bias and not view.is_const(bias):
            return None
        attrs = {"fused": "MultiHeadAttention", "q": ins[0], "k": ins[1] or None,
                 "v": ins[2] or None, "bias": bias or None, "mask": ins[4] or ins[5] or None,
                 "key_padding_mask": ins[4] or None, "attention_bias": ins[5] or None,
                 "past_key": ins[6] or None, "past_value": ins[7] or None,
                 "num_heads": heads, "scale": scale or None, "causal": causal,
                 "has_mask": bool(ins[4] or ins[5])}
        qs = view.info(ins[0]).concrete()
        attrs["tq"] = qs[1] if qs and len(qs) >= 2 else 0
        k_shape = view.info(ins[1]).shape if ins[1] else None
        attrs["k_layout"] = "bhsd" if k_shape is not None and len(k_shape) == 4 else "bsd"
        return build_match(view, "attention", [node], attrs, "com.microsoft.MultiHeadAttention")
    return None


def match_attention(view: GraphView, node: onnx.NodeProto) -> OpMatch | None:
    if node.op_type == "Softmax":
        return _decomposed(view, node)
    if node.op_type in ("Attention", "MultiHeadAttention") and node.domain == "com.microsoft":
        return _fused(view, node)
    return None
