"""INT8 weight quantization, per output channel, symmetric narrow range.

Why per output channel: matmul requantization already carries one multiplier
per output column (the epilogue in kernels/common/epilogue.h), so a per-channel
weight scale costs nothing on the device and keeps small-norm columns (common
in Whisper's attention projections) from being crushed by one large column.
"""

from __future__ import annotations

import numpy as np

INT8_MAX = 127


class WeightError(ValueError):
    """A weight cannot be quantized for the NPU (dtype, size or values)."""


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
        raise WeightError(f"weight {name!r} contains NaN or infinity")
    return np.ascontiguousarray(w)


def quantize_per_channel(w: np.ndarray, axis: int, name: str = "weight"
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(q int8, scale float32[C]) with w ~= q * scale along `axis` (the output channel).

    scale_c = max|w_c| / 127 (1.0 for an all-zero channel, so q is 0 and the
    scale stays a valid positive number); q = clip(rint(w / scale_c), -127, 127),
    computed with the fp32 reciprocal exactly like the device quantizer.
    """
    w = check_float_weight(w, name)
    if not -w.ndim <= axis < w.ndim:
        raise WeightError(f"weight {name!r}: axis {axis} out of range for shape {w.shape}")
    axis %= w.ndim
    red = tuple(i for i in range(w.ndim) if i != axis)
    amax = np.max(np.abs(w), axis=red) if red else np.abs(w)
    scale = (amax / np.float32(INT8_MAX)).astype(np.float32)
    scale[scale == 0] = np.float32(1.0)
    shape = [1] * w.ndim
    shape[axis] = -1
    inv = (np.float32(1.0) / scale).astype(np.float32).reshape(shape)
    q = np.clip(np.rint(w * inv), -INT8_MAX, INT8_MAX).astype(np.int8)
    return q, scale
