"""MatMul/Gemm with a constant weight (+ the bias Add that follows).

Lowering: one matmul LOp with the weight as [K, N] (a Gemm's transB undone, alpha
folded into the weight, beta into the bias). Emission: one matmul stage, int8
input (a static matmul whose input exists only as float32 quantizes it itself),
int8 or float32 output, per-channel int8 weight; a split-output matmul (the
fused q/k/v projection, passes/fuse_qkv.py) writes one output per column block.

ONNX Runtime's transformer optimizer (MatMulAddFusion) turns a 3-D MatMul + Add
into Reshape([B*T, K]) -> Gemm -> Reshape([B, T, N]); the match takes the two
Reshapes with the Gemm (`flat_input`: the matmul reads the 3-D tensor before the
first Reshape). When the second Reshape is not a restore (the optimizer merged it
with an attention head split, [B, T, H, Dh]), the Gemm output stays in the match
as its output (`flat_output`): in the program it is [B, T, N] (the kernel keeps
the input's leading dims), which the attention reading it takes as [B, T, H*Dh];
compile/lower.py refuses it as a region output (ONNX Runtime expects 2-D there).
A Split of the output's last axis into column blocks (GPT-2's fused q/k/v
projection) joins the match: one matmul LOp per block, which passes/fuse_qkv.py
fuses back into one split-output stage when they feed one attention.

Why the matching is hand-written: the weight must be a constant whose shape
is known (GraphView resolves constants and inferred shapes), and the bias Add
that follows a MatMul joins the match only when it adds a constant [N] vector
to this matmul's output alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from ..capability.graph import GraphView, attr, numel
from ..capability.matching import build_match, const_operand, is_float32
from ..compile.ir import LOp
from ..compile.model_index import ModelIndex, NotLowerable
from ..plan import OpMatch
from .base import MatchAttrs, OpFamily, StageRule

if TYPE_CHECKING:
    from ..compile.build import Emitter


@dataclass(frozen=True, kw_only=True)
class MatmulAttrs(MatchAttrs):
    """weight: constant [K, N] ([N, K] when transpose_b); bias: constant [N] or None;
    alpha/beta: Gemm's factors; m, k, n: the GEMM's sizes (m = 0 if unknown)."""

    weight: str = ""
    bias: str | None = None
    transpose_b: bool = False
    alpha: float = 1.0
    beta: float = 1.0
    m: int = 0
    k: int = 0
    n: int = 0
    flat_input: str | None = None
    flat_output: bool = False
    merged_input: bool = False
    split: list[int] = field(default_factory=list)


def _flatten_input(view: GraphView, a: str, k: int) -> tuple[onnx.NodeProto, str] | None:
    """(Reshape, x) if `a` = Reshape(x) flattens a rank >= 3 x [..., K] to [M, K] and
    only this matmul reads it (ONNX Runtime's MatMulAddFusion input)."""
    r = view.producer_of(a)
    if r is None or r.op_type != "Reshape" or view.single_consumer(a) is None:
        return None
    x = r.input[0]
    xs, out = view.info(x).shape, view.info(a).shape
    if xs is None or out is None or len(xs) < 3 or len(out) != 2 or xs[-1] != k:
        return None
    if view.is_const(x) or not is_float32(view, x):
        return None
    return r, x


def _restore_output(view: GraphView, y: str, n: int, lead: tuple) -> onnx.NodeProto | None:
    """The Reshape after a flattened Gemm that gives back the input's leading dims
    ([M, N] -> [..., N]), if it is the Gemm output's only reader."""
    r = view.single_consumer(y)
    if r is None or r.op_type != "Reshape" or r.input[0] != y:
        return None
    out = view.info(r.output[0]).shape
    if out is None or len(out) != len(lead) + 1 or out[-1] != n:
        return None
    if any(isinstance(p, int) and isinstance(q, int) and p != q
           for p, q in zip(out[:-1], lead, strict=True)):
        return None
    return r


def _split_after(view: GraphView, y: str, n: int) -> tuple[onnx.NodeProto, list[int]] | None:
    """(Split, sizes) if the only reader of `y` splits its last axis into column
    blocks (GPT-2's fused q/k/v projection, c_attn)."""
    sp = view.single_consumer(y)
    ys = view.info(y).shape
    if sp is None or sp.op_type != "Split" or ys is None:
        return None
    axis = int(attr(sp, "axis", 0))
    if axis not in (-1, len(ys) - 1):
        return None
    sizes = attr(sp, "split", None)
    if sizes is None and len(sp.input) > 1 and sp.input[1]:
        v = view.const_value(sp.input[1])
        sizes = None if v is None else [int(x) for x in v.reshape(-1)]
    parts = len(sp.output)
    if sizes is None:
        if n % parts:
            return None
        sizes = [n // parts] * parts
    sizes = [int(x) for x in sizes]
    if sum(sizes) != n or len(sizes) != parts or any(x <= 0 for x in sizes):
        return None
    if any(o in view.outputs or not view.consumers_of(o) for o in sp.output):
        return None
    return sp, sizes


def _merged_heads(view: GraphView, a: str) -> tuple | None:
    """(B, T) if `a` is Reshape(o) from an attention's [B, T, H, Dh] to [B*T, H*Dh]
    (ONNX Runtime merges the head merge with the Gemm's flatten); the attention
    stage writes `a` as [B, T, H*Dh]."""
    r = view.producer_of(a)
    if r is None or r.op_type != "Reshape" or view.single_consumer(a) is None:
        return None
    src, out = view.info(r.input[0]).shape, view.info(a).shape
    if src is None or out is None or len(src) != 4 or len(out) != 2:
        return None
    p = view.producer_of(r.input[0])
    if p is None or p.op_type != "Transpose" or list(attr(p, "perm", [])) != [0, 2, 1, 3]:
        return None
    return tuple(src[:2])


def flattened_gemm_output(view: GraphView, t: str) -> bool:
    """True if `t` is the 2-D output of a Gemm/MatMul whose input is a flattening
    Reshape of a rank-3 tensor (the matmul match then produces it as [B, T, N])."""
    g = view.producer_of(t)
    if g is None or g.op_type not in ("Gemm", "MatMul") or len(g.input) < 2:
        return False
    w = view.info(g.input[1]).concrete()
    if not w or len(w) != 2 or (g.op_type == "Gemm" and attr(g, "transA", 0)):
        return False
    k = w[1] if g.op_type == "Gemm" and attr(g, "transB", 0) else w[0]
    found = _flatten_input(view, g.input[0], k)
    return found is not None and len(view.info(found[1]).shape or ()) == 3


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
    pattern = "Gemm" if node.op_type == "Gemm" else ("MatMul+Add" if len(nodes) > 1 else "MatMul")
    flat = _flatten_input(view, a, k)
    flat_input: str | None = None
    flat_output = False
    if flat is not None:
        flat_input = flat[1]
        nodes.insert(0, flat[0])
        lead = tuple(view.info(flat_input).shape or ())[:-1]
        restore = _restore_output(view, nodes[-1].output[0], n, lead)
        if restore is not None:
            nodes.append(restore)
        else:
            flat_output = True
        pattern = f"Reshape+{pattern}" + ("+Reshape" if restore is not None else "")
    merged = _merged_heads(view, a) if flat is None else None
    merged_input = False
    if merged is not None:
        restore = _restore_output(view, nodes[-1].output[0], n, merged)
        if restore is not None:
            nodes.append(restore)
            merged_input = True
            pattern = f"{pattern}+Reshape"
    split: list[int] = []
    if not flat_output:
        found_split = _split_after(view, nodes[-1].output[0], n)
        if found_split is not None:
            nodes.append(found_split[0])
            split = found_split[1]
            pattern = f"{pattern}+Split"
    attrs = MatmulAttrs(weight=w, bias=bias, transpose_b=transpose_b, alpha=alpha, beta=beta,
                        m=m, k=k, n=n, flat_input=flat_input, flat_output=flat_output,
                        merged_input=merged_input, split=split)
    return build_match(view, "matmul", nodes, attrs, pattern)


def lower_matmul(idx: ModelIndex, m: OpMatch) -> list[LOp]:
    a: MatmulAttrs = m.attrs
    w = idx.float_weight(a.weight)
    if w.ndim != 2:
        raise NotLowerable(f"matmul {m.nodes[0]!r}: weight {a.weight!r} is "
                           f"{w.ndim}-D (expected 2-D)")
    if a.transpose_b:
        w = np.ascontiguousarray(w.T)
    alpha = float(a.alpha)
    if alpha != 1.0:
        w = (w * np.float32(alpha)).astype(np.float32)
    weights: dict[str, np.ndarray] = {"weight": w}
    if a.bias:
        b = idx.float_weight(a.bias)
        b = (np.broadcast_to(b, (w.shape[1],)) * np.float32(float(a.beta))).astype(np.float32)
        weights["bias"] = np.ascontiguousarray(b)
    x = a.flat_input or m.inputs[0]
    attrs: dict[str, Any] = {}
    if a.flat_output:
        attrs["unflattened"] = (m.outputs[0],)
    elif a.merged_input:
        attrs["unflattened"] = (x,)
    if a.split:
        # one matmul per column block (passes/fuse_qkv.py fuses them back into one
        # split-output stage when they feed one attention)
        if len(m.outputs) != len(a.split):
            raise NotLowerable(f"matmul {m.nodes[0]!r}: Split outputs {list(m.outputs)} do not "
                               f"match its {len(a.split)} blocks")
        ops: list[LOp] = []
        start = 0
        for out, size in zip(m.outputs, a.split, strict=True):
            block = {"weight": np.ascontiguousarray(weights["weight"][:, start:start + size])}
            if "bias" in weights:
                block["bias"] = np.ascontiguousarray(weights["bias"][start:start + size])
            ops.append(LOp("matmul", (x,), (out,), block, dict(attrs), m.nodes))
            start += size
        return ops
    return [LOp("matmul", (x,), (m.outputs[0],), weights, attrs, m.nodes)]


def emit_matmul(em: Emitter, i: int, op: LOp) -> None:
    a = op.inputs[0]
    if not em.dynamic and em.bp.produced.get(a) == "float32" and em.q8(a) not in em.have:
        # The input exists only as float32 (a region input, or a tensor that must also
        # leave the region): the static matmul quantizes it itself (the quantize kernel's
        # rule, same bytes), saving a quantize launch that would split a fused chain.
        ins: tuple[str, ...] = (em.float_in(a),)
    else:
        ins = em.int8_in(a)
    out_int8 = em.bp.produced[op.outputs[0]] == "int8"
    attrs: dict[str, Any] = {"out": "int8" if out_int8 else "float32"}
    if not em.dynamic:
        attrs["in_scale"] = em.scale(a)
        if out_int8:
            scales = [em.scale(t) for t in op.outputs]
            if len(scales) == 1:
                attrs["out_scale"] = scales[0]
            else:
                attrs["out_scales"] = scales
    if "split" in op.attrs:
        attrs["split"] = list(op.attrs["split"])
    outs = [b for t in op.outputs for b in em.out_bufs(t)]
    consts = em.consts(i, ("weight", "w_scale", "bias"))
    if a in em.offsets:
        # input code q stands for q * s + offset: sum_k (q_k s + offset) W[k, n] adds
        # offset x sum_k W[k, n] to every output, which the bias carries (W as the
        # device has it: int8 codes x per-channel scale)
        c = em.qr.op_constants[i]
        w = c["weight"].astype(np.float64) * c["w_scale"].astype(np.float64)
        bias = c.get("bias")
        base = np.zeros(w.shape[1]) if bias is None else bias.astype(np.float64)
        folded = (base + em.offsets[a][0] * w.sum(axis=0)).astype(np.float32)
        consts["bias"] = em.const(i, "bias", folded)
    em.push("matmul", ins, outs, consts, attrs, op)


def cpu_reason(view: GraphView, node: onnx.NodeProto) -> str | None:
    """Why a MatMul/Gemm was not taken (None for other op types)."""
    op = node.op_type
    if op not in ("MatMul", "Gemm"):
        return None
    if len(node.input) < 2:
        return f"unsupported op: {op} with {len(node.input)} input(s)"
    a, b = node.input[0], node.input[1]
    if view.is_const(a) and view.is_const(b):
        return "unmatched: both inputs are constants (a constant-folding candidate)"
    if not view.is_const(b):
        return (f"non-constant weight: input '{b}' is computed at run time "
                "(MatMul of two activations outside a recognised attention pattern)")
    shape = view.info(b).shape
    if shape is None or len(shape) != 2:
        return f"shape: weight '{b}' has shape {shape}, need a 2-D [K, N] matrix"
    if op == "Gemm" and attr(node, "transA", 0):
        return "shape: Gemm with transA=1 is not supported"
    return "shape: activation/weight shapes do not line up for the matmul kernel"


OP = OpFamily(
    "matmul", MatmulAttrs, (match_matmul,), lower_matmul,
    stages=(StageRule("matmul", emit_matmul, int8_inputs=(0,), int8_output="static",
                      int8_weight=("weight", 1)),),
    cpu_reason=cpu_reason)
