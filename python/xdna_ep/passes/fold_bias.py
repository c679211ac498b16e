"""Bias folding: a bias that an ONNX pattern adds to a matmul's output, but that
its op family cannot apply itself, joins that matmul's bias.

Which biases: a BiasGelu/FastGelu bias (LOp attr "fold_bias" on the gelu; the
gelu stage is a table on int8 codes and has no bias), a SkipLayerNormalization
bias ("fold_bias" on its add: it joins the matmul producing x or skip) and a
MultiHeadAttention's packed q/k/v bias ("fold_qkv_bias": each third joins its
projection). Why here and not in the op family: the matmul belongs to another
match; only the region sees both. The folded matmul's output is renamed
`<t>::biased` and gets a calibration tap computing the same value on the FP32
model.
"""

from __future__ import annotations

import numpy as np

from ..compile.ir import LOp, LoweredRegion, producers, uses
from ..compile.model_index import ModelIndex, NotLowerable
from ..quantize.calibration import Tap
from .base import PassContext


def _fold_bias(idx: ModelIndex, ops: list[LOp], user: LOp, t: str, bname: str,
               cols: tuple[int, int] | None, region_outputs: set[str],
               taps: dict[str, Tap]) -> bool:
    """Adds constant `bname`[cols] to the matmul producing `t` (which must feed only `user`).

    Renames the matmul output to `<t>::biased` in the matmul and in `user`; the
    calibration tap computes the same value on the FP32 model. False if `t` is
    not produced by such a matmul.
    """
    p = producers(ops).get(t)
    mm = ops[p] if p is not None else None
    if (mm is None or mm.kernel != "matmul" or len(mm.outputs) != 1
            or t in region_outputs
            or [ops[i] for i in uses(ops, t)] != [user]):
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


def run(lr: LoweredRegion, ctx: PassContext) -> None:
    """Folds every pending bias of the region (in place); NotLowerable if one cannot be."""
    idx, ops, region_outputs, taps = ctx.idx, lr.ops, set(lr.outputs), lr.taps
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


