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

Export forms: the head split is the Reshape of [B, T, H*Dh] (or ORT's flattened
[B*T, H*Dh] Gemm output, ops/matmul.py) to [B, T, H, Dh]; the walk stops right
after it. A constant mask that is the causal one (GPT-2's bias, often a slice
that constant-folds) becomes the kernel's causal flag; any other constant mask
is refused with its reason. On a model whose
input dims are all fixed, Shape reads of the match's internal tensors fold
(capability/folding.py: torch's sdpa scale sqrt(1/sqrt(Dh)) computed from Shape,
the head merge's target shape) and join the match. Not compiled yet: q/k/v that
reach the MatMul as [B, H, T, Dh] without the head split in the match
(q_layout 'bhsd'), and the same Shape chains on a model with symbolic dims (a
guessed size is never folded): they stay on the CPU with the reason. A match
whose q/k/v or output layout the walks cannot name ('unknown', e.g. the output
read by an op other than the head-merge Transpose/Reshape) is refused when
matched: its Softmax and MatMuls stay on the CPU with the reason and the rest
of the region (the projections) compiles.

Integer masks of the fused ops (Attention mask_index, MultiHeadAttention
key_padding_mask; ops/attention_masks.py): an int32 [B] end-position, [2B]
end/start-position (Attention), [B, T] or [B, S, T] 0/1 mask gets a float twin,
the additive mask [B, 1, 1, T] or [B, 1, S, T] (0 keep; masked: the
node's mask_filter_value, or -9999 where that is <= -10000), computed by three to
eleven ONNX nodes (Greater or Cast/Less, Where, Reshape) that partition_model adds before
capability and that stay on ONNX Runtime's CPU provider; the match reads the
twin, so the region's edge stays float32 and the attention stage is unchanged.
Why CPU nodes and not a mask-conversion stage in the program: the conversion is
B*T element-wise comparisons, nothing an NPU launch would pay for; a stage would
need a new kernel in the numpy reference, the emulator, the plugin's stage table
and the NPU, a stage version and its bit-exactness tests, for no speed; and the
model stays valid for ONNX Runtime whatever runs the node (the attention node
keeps its int32 input; twins no NPU region reads are removed again). Other forms
([3B+2], 4-D, non-int32, a mask with attention_bias, a [B] / [2B] mask whose
symbolic key length no graph input dim carries) are not matched: that node stays
on the CPU with the reason and the rest of its region compiles. A [B] / [2B]
mask's key length is a constant when fixed, else read at run time from the graph
input dim of the same symbolic name (GraphView.dim_names).
An Attention's attention_bias (input 5) alone is its additive mask, as for
MultiHeadAttention.

Lowering: one attention LOp on q, k, v [B, T, H*Dh] (+ an additive float mask);
a packed com.microsoft Attention first gets three matmul LOps (the q/k/v column
blocks of its weight), a MultiHeadAttention bias is folded into the projection
matmuls (passes/fold_bias.py), and separate q/k/v projections are fused into
one split matmul (passes/fuse_qkv.py). Emission: one attention stage, int8
q/k/v, int8 or float32 output.

Why the matching is hand-written: the walk from Softmax back to the q/k/v
projections crosses head reshapes/transposes and scalar scalings in any order,
must stop at a tensor read elsewhere (the KV-cache Concat), and records the
head layout of each boundary tensor from inferred ranks and transpose perms;
a fixed pattern expression would need one rule per ordering and still could
not state the layouts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from ..capability.graph import GraphView, attr
from ..capability.matching import build_match, const_operand
from ..compile.ir import LOp
from ..compile.model_index import ModelIndex, NotLowerable
from ..plan import OpMatch
from . import attention_masks as masks
from .base import MatchAttrs, OpFamily, StageRule
from .matmul import flattened_gemm_output

if TYPE_CHECKING:
    from ..compile.build import Emitter


@dataclass(frozen=True, kw_only=True)
class AttentionAttrs(MatchAttrs):
    """What capability found and compile reads (None / 0 = absent or unknown).

    q, k, v: float tensors [B, T, H*Dh] consumed (before the head split); scale:
    the total constant factor on q.k^T (None: 1/sqrt(Dh), fused forms); mask: an
    additive float mask; num_heads, head_dim; causal; tq, tk: query/key lengths.
    Layouts of the boundary tensors: bsd = [B,T,H*Dh], bhsd, bshd, bhds, unknown.
    fused: None (decomposed), "Attention" (packed weight/bias) or
    "MultiHeadAttention" (bias = packed q/k/v bias). Decoder KV cache: past_*,
    present_*, kv_concat_* (the CPU Concat node). shape_inputs: the head-split
    Reshapes' shape tensors (not data dependencies).
    """

    q: str | None = None
    k: str | None = None
    v: str | None = None
    mask: str | None = None
    has_mask: bool = False
    scale: float | None = None
    num_heads: int = 0
    head_dim: int = 0
    causal: bool = False
    tq: int = 0
    tk: int = 0
    q_layout: str = "bsd"
    k_layout: str = "bsd"
    v_layout: str = "bsd"
    out: str | None = None
    out_layout: str = "bsd"
    nan_guard: bool = False
    shape_inputs: list[str] = field(default_factory=list)
    fused: str | None = None
    weight: str | None = None
    bias: str | None = None
    qkv_hidden_sizes: list[int] = field(default_factory=list)
    past: str | None = None
    past_key: str | None = None
    past_value: str | None = None
    present_key: str | None = None
    present_value: str | None = None
    kv_concat_key: str | None = None
    kv_concat_value: str | None = None
    key_padding_mask: str | None = None
    attention_bias: str | None = None
    int_mask: str | None = None

TRANSPARENT = ("Transpose", "Reshape")


def _head_split(view: GraphView, r: onnx.NodeProto) -> bool:
    """A Reshape of [B, T, H*Dh] (or [B*T, H*Dh]) to [B, T, H, Dh]."""
    src, out = view.info(r.input[0]).shape, view.info(r.output[0]).shape
    if src is None or out is None or len(out) != 4 or len(src) not in (2, 3):
        return False
    d, h, dh = src[-1], out[2], out[3]
    return all(isinstance(v, int) for v in (d, h, dh)) and d == h * dh


def _walk_back(
    view: GraphView, t: str
) -> tuple[str, list[onnx.NodeProto], float]:
    """Walk from `t` up through head reshapes/transposes/scalar scalings."""
    nodes: list[onnx.NodeProto] = []
    scale = 1.0
    split = False  # the head split (a Reshape to rank 4) has been crossed
    for _ in range(8):
        p = view.producer_of(t)
        if p is None or t in view.outputs or len(view.data_consumers(t)) != 1:
            break
        if p.op_type in TRANSPARENT:
            if split:
                break  # e.g. the Reshape back to [B, T, N] after ORT's Gemm (ops/matmul.py)
            if p.op_type == "Reshape" and _head_split(view, p):
                split = True
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
        if shape is not None and len(shape) == 2 and flattened_gemm_output(view, boundary):
            return "bsd"  # produced as [B, T, N] by the flattened-Gemm matmul match
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


def _shape_chains(view: GraphView, nodes: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
    """The Shape reads of the match's internal tensors and the arithmetic on them
    (torch's sdpa scale sqrt(1/sqrt(Dh)), the head merge's target shape), which
    fold on a static-shape model: they join the match, so nothing outside reads
    a tensor the region removes."""
    names = {n.name for n in nodes}
    extra: list[onnx.NodeProto] = []
    for n in nodes:
        for o in n.output:
            for read in view.shape_reads(o):
                for c in view.fold_chain(read):
                    if c.name not in names:
                        names.add(c.name)
                        extra.append(c)
    return extra


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
        if p is None or len(view.data_consumers(t)) != 1 or t in view.outputs:
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
        readers = view.data_consumers(o)
        c = readers[0] if len(readers) == 1 and o not in view.outputs else None
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
    nodes += _shape_chains(view, nodes)
    kv: dict[str, Any] = {}
    for role, name in (("key", k), ("value", v)):
        cat = view.producer_of(name)
        if cat is not None and cat.op_type == "Concat":
            past = [i for i in cat.input if view.producer_of(i) is None and not view.is_const(i)]
            kv[f"past_{role}"] = past[0] if past else None
            kv[f"kv_concat_{role}"] = cat.name
            kv[f"present_{role}"] = name if name in view.outputs else None
    attrs = AttentionAttrs(
        q=q, k=k, v=v, mask=mask, has_mask=mask is not None,
        scale=float(scale * q_scale * k_scale), num_heads=num_heads,
        head_dim=head_dim, causal=False,
        tq=logits[-2] if logits and len(logits) >= 2 else 0,
        tk=logits[-1] if logits else 0,
        q_layout=_layout(view, q, q_walk, "q"), k_layout=_layout(view, k, k_walk, "k"),
        v_layout=_layout(view, v, v_walk, "v"), out=o,
        out_layout="bsd" if any(n.op_type == "Reshape" for n in out_walk) else "unknown",
        nan_guard=nan_guard is not None,
        shape_inputs=[n.input[1] for n in nodes if n.op_type == "Reshape"], **kv)
    match = build_match(view, "attention", nodes, attrs, "decomposed")
    if list(match.outputs) != [o]:
        return None  # an intermediate (probabilities, heads) is read elsewhere
    return match


def _fused(view: GraphView, node: onnx.NodeProto) -> OpMatch | None:
    ins = list(node.input) + [""] * 8
    heads = int(attr(node, "num_heads", 0))
    scale = float(attr(node, "scale", 0.0))
    causal = bool(attr(node, "unidirectional", 0))
    slot = masks.mask_slot(node)
    if ins[slot] and ins[5]:
        return None  # a mask and attention_bias: not combined (cpu_reason)
    converted = None
    if masks.int_mask(view, node) is not None:
        form = masks.mask_form(view, node, not view.static_shapes)
        if isinstance(form, str):
            return None  # the node stays on the CPU (cpu_reason); the rest of the region runs
        converted = masks.converted_name(form)
        if view.producer_of(converted) is None:
            return None  # not converted (partition_model adds the conversion nodes)
    if node.op_type == "Attention":
        weight, bias = ins[1], ins[2]
        if not view.is_const(weight) or (bias and not view.is_const(bias)):
            return None
        xs = view.info(ins[0]).concrete()
        attrs = AttentionAttrs(
            fused="Attention", weight=weight, bias=bias or None,
            mask=converted or ins[3] or ins[5] or None, int_mask=ins[3] if converted else None,
            past=ins[4] or None, num_heads=heads, scale=scale or None, causal=causal,
            q=ins[0], k=None, v=None, has_mask=bool(ins[3] or ins[5]),
            qkv_hidden_sizes=list(attr(node, "qkv_hidden_sizes", []) or []),
            tq=xs[1] if xs and len(xs) == 3 else 0)
        return _with_mask(build_match(view, "attention", [node], attrs,
                                      "com.microsoft.Attention"), ins[slot], converted)
    if node.op_type == "MultiHeadAttention":
        bias = ins[3]
        if bias and not view.is_const(bias):
            return None
        qs = view.info(ins[0]).concrete()
        k_shape = view.info(ins[1]).shape if ins[1] else None
        attrs = AttentionAttrs(
            fused="MultiHeadAttention", q=ins[0], k=ins[1] or None, v=ins[2] or None,
            bias=bias or None, mask=converted or ins[4] or ins[5] or None,
            key_padding_mask=None if converted else ins[4] or None,
            int_mask=ins[4] if converted else None, attention_bias=ins[5] or None,
            past_key=ins[6] or None, past_value=ins[7] or None, num_heads=heads,
            scale=scale or None, causal=causal, has_mask=bool(ins[4] or ins[5]),
            tq=qs[1] if qs and len(qs) >= 2 else 0,
            k_layout="bhsd" if k_shape is not None and len(k_shape) == 4 else "bsd")
        return _with_mask(build_match(view, "attention", [node], attrs,
                                      "com.microsoft.MultiHeadAttention"), ins[slot], converted)
    return None


def _with_mask(m: OpMatch, int_mask: str, converted: str | None) -> OpMatch:
    """The match reads the converted float mask instead of the int32 one."""
    if converted is None:
        return m
    inputs = tuple(converted if t == int_mask else t for t in m.inputs)
    return dataclasses.replace(m, inputs=tuple(dict.fromkeys(inputs)))


LAYOUTS = ("q_layout", "k_layout", "v_layout", "out_layout")


def layout_problem(a: AttentionAttrs, *, lowering: bool = False) -> str | None:
    """Why the attention stage cannot take the match's boundary tensors (None: it can).

    The stage takes [B, T, H*Dh] ("bsd") only: the lowering refuses every other
    layout. The matcher refuses 'unknown' (no walk could name it), so that
    attention stays on the CPU alone instead of its region failing at compile;
    the known head layouts (bhsd, bshd, bhds: the decoders' KV-cache and
    cross-attention inputs) keep their match, whose facts the KV-cache reasons
    read, and are refused by the lowering."""
    for key in LAYOUTS:
        value = getattr(a, key)
        if value != "bsd" and (lowering or value == "unknown"):
            return f"{key} is {value!r}; the attention stage takes [B, T, H*Dh] tensors"
    return None


def match_attention(view: GraphView, node: onnx.NodeProto) -> OpMatch | None:
    if node.op_type == "Softmax":
        m = _decomposed(view, node)
        if m is not None and layout_problem(m.attrs) is not None:
            return None  # the Softmax stays on the CPU (cpu_reason); the rest of the region runs
        return m
    if node.op_type in ("Attention", "MultiHeadAttention") and node.domain == "com.microsoft":
        return _fused(view, node)
    return None


def is_causal_mask(value: np.ndarray) -> bool:
    """True if a constant additive mask is the causal one: [.., T, T] (leading 1s)
    with 0 on and below the diagonal and <= -1e4 (or -inf) above it, which is
    what the attention kernel's causal flag computes (GPT-2's exported bias)."""
    v = np.asarray(value, dtype=np.float64)
    if v.ndim < 2 or any(d != 1 for d in v.shape[:-2]) or v.shape[-1] != v.shape[-2]:
        return False
    v = v.reshape(v.shape[-2:])
    upper = np.triu(np.ones(v.shape, dtype=bool), k=1)
    return bool(np.all(v[~upper] == 0.0) and np.all(v[upper] <= -1e4))


def _float_mask(idx: ModelIndex, m: OpMatch, mask: str | None) -> str | None:
    if mask and idx.elem_type(mask) not in (None, 1):
        raise NotLowerable(f"attention {m.nodes[0]!r}: mask {mask!r} is not an additive float32 "
                           f"mask (elem type {idx.elem_type(mask)})")
    return mask or None


def lower_attention(idx: ModelIndex, m: OpMatch) -> list[LOp]:
    """Decomposed attention, com.microsoft Attention (packed QKV) or MultiHeadAttention."""
    a: AttentionAttrs = m.attrs
    node = m.nodes[0]
    for key in ("past", "past_key", "past_value", "key_padding_mask"):
        if getattr(a, key):
            raise NotLowerable(f"attention {node!r}: {key} input ({getattr(a, key)!r}) is not "
                               f"supported (KV cache and unconverted padding masks stay on "
                               f"the CPU)")
    problem = layout_problem(a, lowering=True)
    if problem:
        raise NotLowerable(f"attention {node!r}: {problem}")
    heads = int(a.num_heads or 0)
    if heads <= 0:
        raise NotLowerable(f"attention {node!r}: number of heads unknown")
    mask = a.mask or a.attention_bias
    causal = bool(a.causal)
    if mask and a.fused is None and idx.is_foldable(mask):
        if not is_causal_mask(idx.constant(mask)):
            raise NotLowerable(f"attention {node!r}: constant mask {mask!r} is not a causal "
                               f"mask (only run-time float masks and constant causal masks "
                               f"are supported)")
        mask, causal = None, True  # the kernel's causal flag (query i sees keys j <= i)
    mask = _float_mask(idx, m, mask)
    out = m.outputs[0]
    ops: list[LOp] = []
    if a.fused == "Attention":
        assert a.weight is not None
        w = idx.float_weight(a.weight)
        if w.ndim != 2 or w.shape[1] % 3 or (a.qkv_hidden_sizes and
                                             len(set(a.qkv_hidden_sizes)) != 1):
            raise NotLowerable(f"attention {node!r}: packed QKV weight {w.shape} is not three "
                               f"equal blocks")
        d = w.shape[1] // 3
        b = idx.float_weight(a.bias) if a.bias else None
        x = a.q or m.inputs[0]
        qkv: list[str | None] = []
        for j, role in enumerate("qkv"):
            t = f"{out}::{role}"
            wts = {"weight": np.ascontiguousarray(w[:, j * d:(j + 1) * d])}
            if b is not None:
                wts["bias"] = np.ascontiguousarray(b.reshape(-1)[j * d:(j + 1) * d])
            # the q/k/v slices are observed by recomputing them on the FP32 model
            ops.append(LOp("matmul", (x,), (t,), wts,
                           {"tap": (a.weight, (j * d, (j + 1) * d), a.bias)}, m.nodes))
            qkv.append(t)
    elif a.fused in (None, "MultiHeadAttention"):
        qkv = [a.q, a.k, a.v]
        if not all(qkv):
            raise NotLowerable(f"attention {node!r}: separate q, k and v inputs are required "
                               f"(packed forms are not supported)")
        d = 0
        shape = idx.shape(qkv[0])  # type: ignore[arg-type]
        if shape and isinstance(shape[-1], int):
            d = shape[-1]
    else:
        raise NotLowerable(f"attention {node!r}: form {a.fused!r} is not supported")
    scale = a.scale
    if scale is None:
        if d <= 0:
            raise NotLowerable(f"attention {node!r}: no scale and unknown head size")
        scale = 1.0 / float(np.sqrt(d // heads))
    attrs: dict[str, Any] = {"num_heads": heads, "softmax_scale": float(scale),
                             "causal": causal, "has_mask": bool(mask)}
    if a.fused == "MultiHeadAttention" and a.bias:
        attrs["fold_qkv_bias"] = a.bias
    if a.fused is None:  # 2-D [B*T, N] boundaries (ops/matmul.py): [B, T, N] in the program
        flat = [t for t in (*qkv, out) if t and len(idx.shape(t)) == 2]
        if flat:
            attrs["unflattened"] = tuple(flat)
    ins = (*qkv, mask) if mask else tuple(qkv)
    ops.append(LOp("attention", ins, (out,), {}, attrs, m.nodes))  # type: ignore[arg-type]
    return ops


def emit_attention(em: Emitter, i: int, op: LOp) -> None:
    ins: list[str] = []
    for t in op.inputs[:3]:
        ins.extend(em.int8_in(t))
    if op.attrs["has_mask"]:
        ins.append(em.float_in(op.inputs[3]))
    y = op.outputs[0]
    out_int8 = em.bp.produced[y] == "int8"
    attrs: dict[str, Any] = {k: op.attrs[k] for k in
                             ("num_heads", "softmax_scale", "causal", "has_mask")}
    attrs["out"] = "int8" if out_int8 else "float32"
    if not em.dynamic:
        for role, t in zip(("q", "k", "v"), op.inputs[:3], strict=False):
            attrs[f"{role}_scale"] = em.scale(t)
        if out_int8:
            attrs["out_scale"] = em.scale(y)
    em.push("attention", ins, em.out_bufs(y), {}, attrs, op)


def _softmax_of(view: GraphView, node: onnx.NodeProto) -> onnx.NodeProto | None:
    """The Softmax a decomposed attention's Softmax or MatMul (q.k^T, probs.v) anchors on."""
    if node.op_type == "Softmax":
        return node
    if node.op_type != "MatMul":
        return None
    p = view.producer_of(node.input[0])
    if p is not None and p.op_type == "Where" and len(p.input) == 3:  # the NaN guard
        p = view.producer_of(p.input[2])
    if p is not None and p.op_type == "Softmax":
        return p
    t = node.output[0]
    for _ in range(4):  # q.k^T -> [Mul|Div scalar] [Add mask] -> Softmax
        c = view.single_consumer(t)
        if c is not None and c.op_type == "Softmax":
            return c
        if c is None or not c.output:
            return None
        t = c.output[0]
    return None


def cpu_reason(view: GraphView, node: onnx.NodeProto) -> str | None:
    """Why a fused Attention/MultiHeadAttention, or the Softmax of a decomposed
    attention refused for its layout, was not taken (None otherwise)."""
    softmax = _softmax_of(view, node)
    if softmax is not None:
        m = _decomposed(view, softmax)
        problem = layout_problem(m.attrs) if m is not None and node.name in m.nodes else None
        return (f"shape: attention at Softmax {softmax.name!r}: {problem}: the attention "
                f"runs on the CPU") if problem else None
    if node.op_type not in ("Attention", "MultiHeadAttention"):
        return None
    ins = list(node.input) + [""] * 8
    slot = masks.mask_slot(node)
    if ins[slot] and ins[5]:
        return (f"shape: {node.op_type} has both a mask ({ins[slot]!r}) and attention_bias "
                f"({ins[5]!r}); the attention stage takes one additive mask: the node runs "
                f"on the CPU")
    mask = masks.int_mask(view, node)
    if mask is not None:
        form = masks.mask_form(view, node, not view.static_shapes)
        if isinstance(form, str):
            cat = "dtype" if view.info(mask).dtype != onnx.TensorProto.INT32 else "shape"
            return f"{cat}: {form}: the node runs on the CPU"
        return (f"unmatched: {node.op_type} mask {mask!r} was not converted to an additive "
                f"float mask (partition_model converts those of the main graph): the node runs "
                f"on the CPU")
    return "non-constant weight: fused attention with run-time weights or bias"


OP = OpFamily(
    "attention", AttentionAttrs, (match_attention,), lower_attention,
    stages=(StageRule("attention", emit_attention, int8_inputs=(0, 1, 2),
                      int8_output="static"),),
    cpu_reason=cpu_reason)
