"""q/k/v fusion: the three projection matmuls of an attention that read the same
input become ONE matmul stage with concatenated weights and three outputs (the
split-output form of the matmul kernel, attrs["split"]): one launch and one
pass over the input instead of three.

Skipped for cross attention (q from the decoder, k/v from the encoder: different
inputs) and when a projection is not a plain single-output matmul. Runs when
CompileOptions.fuse_qkv is on (by default when kernel_specs.matmul announces
SUPPORTS_SPLIT).
"""

from __future__ import annotations

import numpy as np

from ..compile.ir import LOp, LoweredRegion, producers
from .base import PassContext


def run(lr: LoweredRegion, ctx: PassContext) -> None:
    """Merges the q/k/v projections of each attention into one split matmul (in place)."""
    ops = lr.ops
    for att in [op for op in ops if op.kernel == "attention"]:
        prod = producers(ops)
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
    lr.ops[:] = ops
