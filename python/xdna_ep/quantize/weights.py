"""INT8 weight quantization, per output channel, symmetric narrow range.

Why per output channel: matmul requantization already carries one multiplier
per output column (the epilogue in kernels/common/epilogue.h), so a per-channel
weight scale costs nothing on the device and keeps small-norm columns (common
in Whisper's attention projections) from being crushed by one large column.
"""

from __future__ import annotations

import numpy as np

INT8_MAX = 127

# A channel whose largest |w| is this many times its median |w| is refused: at a
# ratio of 254 the median weight already rounds to 0 in int8, and at 1e4 int8 keeps
# nothing of the channel but its outliers. Real Whisper weights stay far below
# (tiny.en: worst max/median over any whole weight tensor 63); a ratio like this is
# a corrupted value (e.g. one bit flip turning 0.014 into 4.8e36), where the int8
# channel would silently compute something else than the FP32 model.
MAX_CHANNEL_SPREAD = 1.0e4


class WeightError(ValueError):
    """A weight cannot be quantized for the NPU (dtype, size or values)."""


class CorruptWeightError(WeightError):
    """A weight's values cannot come from a trained model (NaN/inf, or one value
    10^4 x its channel's median): the model is damaged, and the values computed
    downstream of that weight lie outside any int8 range, so compile_plan keeps
    the whole model on the CPU rather than only this weight's region."""


def check_float_weight(w: np.ndarray, name: str) -> np.ndarray:
    """Validates a float32 constant; returns it as a C-contiguous float32 array.

    float16/float64 are refused rather than converted: the FP32 model is the
    accuracy reference, and silently changing precision would make the SQNR
    figures describe a different model.
    """
    if not isinstance(w, np.ndarray):
        raise WeightError(f"weight {name!r}: expected a numpy array, got {type(w).__name__}")
    if w.dtype != np.float32:
        raise WeightError(f"weight {name!r} has dtype {w.dtype}; the NPU path takes float32 "
                          f"weights only")
    if w.size == 0:
        raise WeightError(f"weight {name!r} is empty (shape {w.shape})")
    if not np.all(np.isfinite(w)):
        raise CorruptWeightError(f"weight {name!r} contains NaN or infinity")
    return np.ascontiguousarray(w)


def quantize_per_channel(w: np.ndarray, axis: int, name: str = "weight"
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(q int8, scale float32[C]) with w ~= q * scale along `axis` (the output channel).

    scale_c = max|w_c| / 127 (1.0 for an all-zero channel, or one whose fp32
    reciprocal overflows, so q is 0 and the scale stays a valid positive number);
    q = clip(rint(w * (1 / scale_c)), -127, 127) with the fp32 reciprocal, the
    rounding of the device's quantize epilogue (kernels/common/epilogue.h).

    This is the ONE weight quantizer: quantize_constants (the compiler) and
    kernel_specs.matmul.quantize_weights_per_channel (kernel tests and
    benchmarks) both call it, so every caller gets the same bytes.
    """
    w = check_float_weight(w, name)
    if not -w.ndim <= axis < w.ndim:
        raise WeightError(f"weight {name!r}: axis {axis} out of range for shape {w.shape}")
    axis %= w.ndim
    red = tuple(i for i in range(w.ndim) if i != axis)
    absw = np.abs(w)
    amax = np.max(absw, axis=red) if red else absw
    if red:
        med = np.median(absw, axis=red).astype(np.float64)  # float64: no overflow below
        bad = np.flatnonzero((med > 0) & (amax.astype(np.float64) > MAX_CHANNEL_SPREAD * med))
        if bad.size:
            c = int(bad[0])
            raise CorruptWeightError(
                f"weight {name!r}: output channel {c} has max |w| {float(amax.flat[c]):.3g} = "
                f"{float(amax.flat[c] / med.flat[c]):.3g} x its median |w|; int8 cannot "
                f"represent it (limit {MAX_CHANNEL_SPREAD:g} x, a corrupted weight?)")
    scale = (amax / np.float32(INT8_MAX)).astype(np.float32)
    with np.errstate(divide="ignore", over="ignore"):
        # all-zero channel, or one so small that 1/scale overflows float32
        bad = ~(scale > 0) | ~np.isfinite(np.float32(1.0) / scale)
    scale[bad] = np.float32(1.0)
    shape = [1] * w.ndim
    shape[axis] = -1
    inv = (np.float32(1.0) / scale).astype(np.float32).reshape(shape)
    q = np.clip(np.rint(w * inv), -INT8_MAX, INT8_MAX).astype(np.int8)
    return q, scale
