"""Region -> a float "op graph" in kernel terms, before any quantization.

This is where ONNX patterns become the kernels of kernels/STAGES.md: a
SkipLayerNormalization becomes add + layernorm, a BiasGelu bias is folded into
the matmul that feeds it, and the q/k/v projections that share an input become
one matmul with concatenated weights (one launch instead of three). Weights
stay float here; quantize/ turns them into int8 and build.py into stages.
"""

from __future__ import annotations

import numpy as np

from ..plan import OpMatch, Region
from ..quantize.calibration import Tap
from .ir import LOp, LoweredRegion
from .model_index import ModelIndex, NotLowerable

__all__ = ["LOp", "LoweredRegion", "lower_region"]


def _lower_match(idx: ModelIndex, m: OpMatch) -> list[LOp]:
    """The match's kernel calls, from its op family's lowering (ops/registry.py)."""
    from ..ops import registry as op_registry  # at call time: ops/ imports compile/

    k = m.kind
    if not m.inputs or not m.outputs:
        raise NotLowerable(f"{k} match {m.nodes} has no inputs/outputs")
    if k not in op_registry.kinds():
        raise NotLowerable(f"{k} match {m.nodes[0]!r}: no NPU lowering for kind {k!r}")
    return op_registry.family(k).lower(idx, m)


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
