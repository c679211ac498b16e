"""Region -> a float "op graph" in kernel terms, before any quantization.

This is where ONNX patterns become the kernels of kernels/STAGES.md: a
SkipLayerNormalization becomes add + layernorm, a BiasGelu bias is folded into
the matmul that feeds it, and the q/k/v projections that share an input become
one matmul with concatenated weights (one launch instead of three). Weights
stay float here; quantize/ turns them into int8 and build.py into stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..plan import OpMatch, Region
from ..quantize.calibration import Tap
from .model_index import ModelIndex, NotLowerable


@dataclass(eq=False)
class LOp:
    """One kernel call on float tensors (tensor names are ONNX names or derived)."""

    kernel: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # float constants by role
    attrs: dict[str, Any] = field(default_factory=dict)
    source_nodes: tuple[str, ...] = ()


@dataclass
class LoweredRegion:
    region_id: int
    ops: list[LOp]
    inputs: list[str]
    outputs: list[str]
    taps: dict[str, Tap]  # every tensor name -> how to observe it in the FP32 model
    macs: int = 0


def _const_or_none(idx: ModelIndex, name: str | None) -> np.ndarray | None:
    return None if not name else idx.float_weight(name)


def _lower_matmul(idx: ModelIndex, m: OpMatch) -> LOp:
    w = idx.float_weight(m.attrs["weight"])
    if w.ndim != 2:
        raise NotLowerable(f"matmul {m.nodes[0]!r}: weight {m.attrs['weight']!r} is "
                           f"{w.ndim}-D (expected 2-D)")
    if m.attrs.get("transpose_b"):
        w = np.ascontiguousarray(w.T)
    alpha = float(m.attrs.get("alpha", 1.0))
    if alpha != 1.0:
        w = (w * np.float32(alpha)).astype(np.float32)
    weights: dict[str, np.ndarray] = {"weight": w}
    b = _const_or_none(idx, m.attrs.get("bias"))
    if b is not None:
        beta = float(m.attrs.get("beta", 1.0))
        b = (np.broadcast_to(b, (w.shape[1],)) * np.float32(beta)).astype(np.float32)
        weights["bias"] = np.ascontiguousarray(b)
    return LOp("matmul", (m.inputs[0],), (m.outputs[0],), weights, {}, m.nodes)


def _float_mask(idx: ModelIndex, m: OpMatch, mask: str | None) -> str | None:
    if mask and idx.elem_type(mask) not in (None, 1):
        raise NotLowerable(f"attention {m.nodes[0]!r}: mask {mask!r} is not an additive float32 "
                           f"mask (elem type {idx.elem_type(mask)})")
    return mask or None


def _lower_attention(idx: ModelIndex, m: OpMatch) -> list[LOp]:
    """Decomposed attention, com.microsoft Attention (packed QKV) or MultiHeadAttention."""
    a = m.attrs
    node = m.nodes[0]
    for key in ("past", "past_key", "past_value", "key_padding_mask"):
        if a.get(key):
            raise NotLowerable(f"attention {node!r}: {key} input ({a[key]!r}) is not supported "
                               f"(KV cache / padding masks stay on the CPU)")
    for key in ("q_layout", "k_layout", "v_layout", "out_layout"):
        if a.get(key, "bsd") != "bsd":
            raise NotLowerable(f"attention {node!r}: {key} is {a[key]!r}; the attention stage "
                               f"takes [B, T, H*Dh] tensors")
    heads = int(a.get("num_heads") or 0)
    if heads <= 0:
        raise NotLowerable(f"attention {node!r}: number of heads unknown")
    mask = _float_mask(idx, m, a.get("mask") or a.get("attention_bias"))
    out = m.outputs[0]
    ops: list[LOp] = []
    fused = a.get("fused")
    if fused == "Attention":
        w = idx.float_weight(a["weight"])
        if w.ndim != 2 or w.shape[1] % 3 or (a.get("qkv_hidden_sizes") and
                                             len(set(a["qkv_hidden_sizes"])) != 1):
            raise NotLowerable(f"attention {node!r}: packed QKV weight {w.shape} is not three "
                               f"equal blocks")
        d = w.shape[1] // 3
        b = _const_or_none(idx, a.get("bias"))
        x = a.get("q") or m.inputs[0]
        qkv = []
        for j, role in enumerate("qkv"):
            t = f"{out}::{role}"
            wts = {"weight": np.ascontiguousarray(w[:, j * d:(j + 1) * d])}
            if b is not None:
                wts["bias"] = np.ascontiguousarray(b.reshape(-1)[j * d:(j + 1) * d])
            ops.append(LOp("matmul", (x,), (t,), wts, {"tap": (a["weight"], (j * d, (j + 1) * d),
                                                              a.get("bias"))}, m.nodes))
            qkv.append(t)
    elif fused in (None, "MultiHeadAttention"):
        qkv = [a.get("q"), a.get("k"), a.get("v")]
        if not all(qkv):
            raise NotLowerable(f"attention {node!r}: separate q, k and v inputs are required "
                               f"(packed forms are not supported)")
        d = 0
        shape = idx.shape(qkv[0])
        if shape and isinstance(shape[-1], int):
            d = shape[-1]
    else:
        raise NotLowerable(f"attention {node!r}: form {fused!r} is not supported")
    scale = a.get("scale")
    if scale is None:
        if d <= 0:
            raise NotLowerable(f"attention {node!r}: no scale and unknown head size")
        scale = 1.0 / float(np.sqrt(d // heads))
    attrs = {"num_heads": heads, "softmax_scale": float(scale),
             "causal": bool(a.get("causal", False)), "has_mask": bool(mask)}
    if fused == "MultiHeadAttention" and a.get("bias"):
        attrs["fold_qkv_bias"] = a["bias"]
    ins = (*qkv, mask) if mask else tuple(qkv)
    ops.append(LOp("attention", ins, (out,), {}, attrs, m.nodes))
    return ops


def _lower_match(idx: ModelIndex, m: OpMatch) -> list[LOp]:
    k = m.kind
    if not m.inputs or not m.outputs:
        raise NotLowerable(f"{k} match {m.nodes} has no inputs/outputs")
    if k == "matmul":
        return [_lower_matmul(idx, m)]
    if k == "gelu":
        approx = m.attrs.get("approximate", "none")
        if approx not in ("none", "tanh"):
            raise NotLowerable(f"gelu {m.nodes[0]!r}: approximate={approx!r} is not supported")
        return [LOp("gelu", (m.attrs.get("x") or m.inputs[0],), (m.outputs[0],), {},
                    {"approximate": approx, "fold_bias": m.attrs.get("bias")}, m.nodes)]
    if k == "layernorm":
        gamma = idx.float_weight(m.attrs["gamma"])
        beta = (idx.float_weight(m.attrs["beta"]) if m.attrs.get("beta")
                else np.zeros_like(gamma))
        ops: list[LOp] = []
        x = m.attrs.get("x") or m.inputs[0]
        skip = m.attrs.get("skip")
        if skip:
            s = m.attrs.get("sum_output") or f"{m.outputs[0]}::skipsum"
            # a SkipLayerNormalization bias joins the matmul producing x or skip
            fold = {"fold_bias": m.attrs["bias"]} if m.attrs.get("bias") else {}
            ops.append(LOp("add", (x, skip), (s,), {}, fold, m.nodes))
            x = s
        elif m.attrs.get("bias"):
            raise NotLowerable(f"layernorm {m.nodes[0]!r}: a bias without skip input")
        ops.append(LOp("layernorm", (x,), (m.outputs[0],),
                       {"gamma": gamma.reshape(-1), "beta": beta.reshape(-1)},
                       {"epsilon": float(m.attrs.get("epsilon", 1e-5))}, m.nodes))
        return ops
    if k == "attention":
        return _lower_attention(idx, m)
    if k == "add" and m.attrs.get("table"):
        return [_lower_position_add(idx, m)]
    if k == "add":
        if len(m.inputs) != 2:
            raise NotLowerable(f"add {m.nodes[0]!r}: needs two activation inputs")
        for t in m.inputs:
            if idx.is_constant(t):
                raise NotLowerable(f"add {m.nodes[0]!r}: operand {t!r} is a constant; the add "
                                   f"kernel takes two activations")
        return [LOp("add", tuple(m.inputs), (m.outputs[0],), {}, {}, m.nodes)]
    if k == "conv1d":
        if int(m.attrs.get("dilation", 1)) != 1 or int(m.attrs.get("group", 1)) != 1:
            raise NotLowerable(f"conv1d {m.nodes[0]!r}: dilation/group other than 1")
        w = idx.float_weight(m.attrs["weight"])
        if w.ndim != 3:
            raise NotLowerable(f"conv1d {m.nodes[0]!r}: weight is {w.ndim}-D (expected 3-D)")
        b = _const_or_none(idx, m.attrs.get("bias"))
        if b is None:
            b = np.zeros(w.shape[0], np.float32)
        return [LOp("conv1d", (m.inputs[0],), (m.outputs[0],),
                    {"weight": w, "bias": b.reshape(-1)},
                    {"stride": int(m.attrs.get("stride", 1)), "pad": int(m.attrs.get("pad", 0))},
                    m.nodes)]
    raise NotLowerable(f"{k} match {m.nodes[0]!r}: no NPU lowering for kind {k!r}")


def _lower_position_add(idx: ModelIndex, m: OpMatch) -> LOp:
    """Transpose(x, [0, 2, 1]) + table: one add stage with a transposed `a` and a
    constant `b` (the table, its leading 1s dropped: the kernel repeats it over B)."""
    table = idx.float_weight(m.attrs["table"])
    if table.ndim < 2 or any(d != 1 for d in table.shape[:-2]):
        raise NotLowerable(f"add {m.nodes[-1]!r}: position table {m.attrs['table']!r} has shape "
                           f"{list(table.shape)} (expected [T, D])")
    return LOp("add", (m.attrs["a"],), (m.outputs[0],),
               {"b": np.ascontiguousarray(table.reshape(table.shape[-2:]), dtype=np.float32)},
               {"transpose_a": True}, m.nodes)


def _producers(ops: list[LOp]) -> dict[str, int]:
    return {t: i for i, op in enumerate(ops) for t in op.outputs}


def _uses(ops: list[LOp], t: str) -> list[int]:
    return [i for i, op in enumerate(ops) if t in op.inputs]


def _fold_bias(idx: ModelIndex, ops: list[LOp], user: LOp, t: str, bname: str,
               cols: tuple[int, int] | None, region_outputs: set[str],
               taps: dict[str, Tap]) -> bool:
    """Adds constant `bname`[cols] to the matmul producing `t` (which must feed only `user`).

    Renames the matmul output to `<t>::biased` in the matmul and in `user`; the
    calibration tap computes the same value on the FP32 model. False if `t` is
    not produced by such a matmul.
    """
    p = _producers(ops).get(t)
    mm = ops[p] if p is not None else None
    if (mm is None or mm.kernel != "matmul" or len(mm.outputs) != 1
            or t in region_outputs
            or [ops[i] for i in _uses(ops, t)] != [user]):
        return False
    b = idx.float_weight(bname).reshape(-1)
    if cols is not None:
        b = b[cols[0]:cols[1]]
    n = mm.weights["weight"].shape[1]
    if b.shape[0] != n:
        raise NotLowerable(f"{user.kernel} {user.source_nodes[0]!r}: bias {bname!r} has "
                           f"{b.shape[0]} values for a matmul with {n} outputs")
    mm.weights["bias"] = (mm.weights.get("bias", np.zeros(n, np.float32)) + b
                          ).astype(np.float32)
    biased = f"{t}::biased"
    mm.outputs = (biased,)
    mm.source_nodes = tuple(dict.fromkeys(mm.source_nodes + user.source_nodes))
    user.inputs = tuple(biased if x == t else x for x in user.inputs)
    taps[biased] = Tap(t, add=bname, add_cols=cols)
    return True


def _fold_biases(idx: ModelIndex, ops: list[LOp], region_outputs: set[str],
                 taps: dict[str, Tap]) -> None:
    for op in list(ops):
        bname = op.attrs.pop("fold_bias", None)
        if bname and op.kernel == "gelu":
            if not _fold_bias(idx, ops, op, op.inputs[0], bname, None, region_outputs, taps):
                raise NotLowerable(f"gelu {op.source_nodes[0]!r}: its bias can only be folded "
                                   f"into a matmul whose output feeds nothing else")
        elif bname and op.kernel == "add" and not any(  # SkipLayerNormalization: x or skip
                _fold_bias(idx, ops, op, t, bname, None, region_outputs, taps)
                for t in op.inputs):
            raise NotLowerable(f"layernorm {op.source_nodes[0]!r}: its bias can only be "
                               f"folded into a matmul producing x or skip")
        qkv_bias = op.attrs.pop("fold_qkv_bias", None)
        if qkv_bias:
            d = idx.float_weight(qkv_bias).size // 3
            for j, t in enumerate(op.inputs[:3]):
                if not _fold_bias(idx, ops, op, t, qkv_bias, (j * d, (j + 1) * d),
                                  region_outputs, taps):
                    raise NotLowerable(f"attention {op.source_nodes[0]!r}: its q/k/v bias can "
                                       f"only be folded into the projection matmuls")


def _fuse_qkv(ops: list[LOp], region_outputs: set[str]) -> list[LOp]:
    """Merges the q/k/v projections of each attention into one split matmul."""
    for att in [op for op in ops if op.kernel == "attention"]:
        prod = _producers(ops)
        idxs = [prod.get(t) for t in att.inputs[:3]]
        if any(i is None for i in idxs) or len(set(idxs)) != 3:
            continue
        mms = [ops[i] for i in idxs]  # type: ignore[index]
        if any(m.kernel != "matmul" or len(m.outputs) != 1 for m in mms):
            continue
        if len({m.inputs[0] for m in mms}) != 1:
            continue  # cross attention: q from the decoder, k/v from the encoder
        ks = {m.weights["weight"].shape[0] for m in mms}
        if len(ks) != 1:
            continue
        w = np.concatenate([m.weights["weight"] for m in mms], axis=1)
        bias = np.concatenate([m.weights.get("bias", np.zeros(m.weights["weight"].shape[1],
                                                               np.float32)) for m in mms])
        fused = LOp("matmul", mms[0].inputs, tuple(m.outputs[0] for m in mms),
                    {"weight": np.ascontiguousarray(w), "bias": bias.astype(np.float32)},
                    {"split": [int(m.weights["weight"].shape[1]) for m in mms]},
                    tuple(n for m in mms for n in m.source_nodes))
        first = min(idxs)  # type: ignore[type-var]
        ops = [fused if i == first else op for i, op in enumerate(ops)
               if i == first or i not in idxs]
    return ops


def _toposort(ops: list[LOp], inputs: list[str]) -> list[LOp]:
    """Stable topological order (graph order wherever the data flow allows)."""
    ready = set(inputs)
    out: list[LOp] = []
    pending = list(ops)
    while pending:
        for i, op in enumerate(pending):
            if all(t in ready for t in op.inputs):
                out.append(op)
                ready.update(op.outputs)
                del pending[i]
                break
        else:
            missing = sorted({t for op in pending for t in op.inputs} - ready
                             - {t for op in pending for t in op.outputs})
            raise NotLowerable(f"region reads tensors that are neither region inputs nor "
                               f"produced inside it: {missing[:5]}")
    return out


def lower_region(idx: ModelIndex, region: Region, fuse_qkv: bool = True) -> LoweredRegion:
    """The region as kernel ops on float tensors; NotLowerable says why not."""
    if not region.matches:
        raise NotLowerable(f"region {region.id} has no matches")
    for t in (*region.inputs, *region.outputs):
        et = idx.elem_type(t)
        if et is not None and et != 1:  # onnx.TensorProto.FLOAT
            raise NotLowerable(f"region {region.id}: tensor {t!r} is not float32 "
                               f"(ONNX elem type {et}); region edges must be float32")
    ops = [op for m in region.matches for op in _lower_match(idx, m)]
    taps: dict[str, Tap] = {}
    routs = set(region.outputs)
    _fold_biases(idx, ops, routs, taps)
    for op in ops:  # q/k/v slices of a packed projection: observed by recomputing them
        tap = op.attrs.pop("tap", None)
        if tap is not None:
            wname, cols, bname = tap
            taps[op.outputs[0]] = Tap(op.inputs[0], matmul=wname, cols=cols, add=bname,
                                      add_cols=cols if bname else None)
    if fuse_qkv:
        ops = _fuse_qkv(ops, routs)
    ops = _toposort(ops, list(region.inputs))
    produced = {t for op in ops for t in op.outputs}
    for t in region.outputs:
        if t not in produced:
            raise NotLowerable(f"region {region.id}: output {t!r} is not produced by its matches")
    for t in set(region.inputs) | produced:
        taps.setdefault(t, Tap(t))
    macs = region.macs or sum(m.macs for m in region.matches)
    return LoweredRegion(region.id, ops, list(region.inputs), list(region.outputs), taps, macs)
