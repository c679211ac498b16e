"""Region -> a float "op graph" in kernel terms, before any quantization.

Each match is lowered by its op family (ops/<family>.py, e.g. a
SkipLayerNormalization becomes add + layernorm), then the "lowered" graph
passes run (passes/: bias folding, q/k/v fusion) and the ops are put in
topological order. Weights stay float here; quantize/ turns them into int8 and
build.py into stages.
"""

from __future__ import annotations

from .. import passes as graph_passes
from ..passes.base import PassContext
from ..plan import OpMatch, Region
from ..quantize.calibration import Tap
from .ir import LOp, LoweredRegion, toposort
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


def lower_region(idx: ModelIndex, region: Region, fuse_qkv: bool = True,
                 ctx: PassContext | None = None) -> LoweredRegion:
    """The region as kernel ops on float tensors, after the "lowered" passes (ctx: the
    compile's pass switches; default: all on, q/k/v fusion per `fuse_qkv`);
    NotLowerable says why not."""
    if not region.matches:
        raise NotLowerable(f"region {region.id} has no matches")
    for t in (*region.inputs, *region.outputs):
        et = idx.elem_type(t)
        if et is not None and et != 1:  # onnx.TensorProto.FLOAT
            raise NotLowerable(f"region {region.id}: tensor {t!r} is not float32 "
                               f"(ONNX elem type {et}); region edges must be float32")
    ops = [op for m in region.matches for op in _lower_match(idx, m)]
    edges = set(region.inputs) | set(region.outputs)
    for op in ops:  # tensors the program holds as [B, T, N] where ONNX has [B*T, N]
        for t in op.attrs.pop("unflattened", ()):  # (ops/matmul.py, ops/attention.py)
            if t in edges:
                raise NotLowerable(f"region {region.id}: {t!r} is 2-D [B*T, N] in the model "
                                   f"but [B, T, N] in the program (a flattening Reshape "
                                   f"around a Gemm); it cannot be a region edge")
    taps: dict[str, Tap] = {}
    for op in ops:  # q/k/v slices of a packed projection: observed by recomputing them
        tap = op.attrs.pop("tap", None)
        if tap is not None:
            wname, cols, bname = tap
            taps[op.outputs[0]] = Tap(op.inputs[0], matmul=wname, cols=cols, add=bname,
                                      add_cols=cols if bname else None)
    macs = region.macs or sum(m.macs for m in region.matches)
    lr = LoweredRegion(region.id, ops, list(region.inputs), list(region.outputs), taps, macs)
    graph_passes.run_lowered(lr, ctx or PassContext(idx, fuse_qkv=fuse_qkv))
    lr.ops[:] = toposort(lr.ops, list(region.inputs))
    produced = {t for op in lr.ops for t in op.outputs}
    for t in region.outputs:
        if t not in produced:
            raise NotLowerable(f"region {region.id}: output {t!r} is not produced by its matches")
    for t in set(region.inputs) | produced:
        taps.setdefault(t, Tap(t))
    return lr
