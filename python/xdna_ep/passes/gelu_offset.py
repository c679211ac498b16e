"""GELU output offset (static mode): a GELU output read only by matmuls gets a
centred int8 range, code q standing for q * scale + offset.

Why: GELU's outputs lie in [min gelu ~ -0.17, hi], so with symmetric int8 the
negative half of the codes is unused and the step is twice what the range
needs; on Whisper these are the largest per-tensor quantization errors, mostly
from clipping (docs/ACCURACY.md has the figures). Centring the range buys the
room to clip nothing: the range is exactly GELU of the input's codes, [lo, hi]
= [min, max] of gelu(q * in_scale) over q, at about half the input's step.

The offset costs nothing at run time: the gelu op family builds it into the
GELU table (ops/gelu.py) and the consumer matmul adds offset x sum_k W[k, n]
through its bias (ops/matmul.py). So only a GELU output whose every consumer
is a matmul's activation input (and that is not a region output) gets one.
The offset is a whole number of steps (an integer zero point), so 0 is exact.

Result: QuantizedRegion.offsets, tensor -> (offset, scale); the scale replaces
the calibrated one for that tensor.
"""

from __future__ import annotations

import numpy as np

from ..compile.ir import LoweredRegion
from ..kernel_specs.gelu import gelu_float
from ..quantize.region import QuantizedRegion
from .base import BufferDtypes, PassContext


def offsets(lr: LoweredRegion, bp: BufferDtypes, qr: QuantizedRegion
            ) -> dict[str, tuple[float, float]]:
    """GELU outputs that get an offset: tensor -> (out_offset, out_scale)."""
    if qr.mode != "static":
        return {}
    found: dict[str, tuple[float, float]] = {}
    for op in lr.ops:
        if op.kernel != "gelu" or len(op.outputs) != 1:
            continue
        x, y = op.inputs[0], op.outputs[0]
        if bp.produced.get(y) != "int8" or y in lr.outputs:
            continue
        users = [(o.kernel, slot) for o in lr.ops for slot, t in enumerate(o.inputs) if t == y]
        if not users or any(u != ("matmul", 0) for u in users):
            continue
        codes = np.arange(-127, 128, dtype=np.float64) * np.float64(np.float32(qr.scale(x)))
        vals = gelu_float(codes, op.attrs["approximate"])
        lo = float(vals.min())
        hi = float(vals.max())
        scale = float(np.float32((hi - lo) / 254.0))
        if not hi > lo or not scale > 0.0:
            continue
        # offset = whole steps, so that 0 (most GELU outputs are ~0) stays exactly a
        # code: a fractional zero point gives every near-zero element the same rounding
        # error, which then adds up coherently over fc2's K (docs/ACCURACY.md)
        steps = round((hi + lo) / 2.0 / scale)
        found[y] = (float(np.float32(steps * np.float64(scale))), scale)
    return found


def run(lr: LoweredRegion, bp: BufferDtypes, qr: QuantizedRegion, ctx: PassContext) -> None:
    """Records the offsets in qr.offsets (static mode; nothing in dynamic mode)."""
    qr.offsets.update(offsets(lr, bp, qr))
