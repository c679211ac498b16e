"""Argument checks shared by the kernel wrappers (gelu, layernorm, add, conv1d).

The native kernels trust their inputs (that is what keeps them fast), so every
public wrapper validates here first and raises an exception that names the
offending argument: wrong dtype -> TypeError, everything else -> ValueError.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def array(name: str, value: Any, dtypes: tuple[type, ...], *, ndim: int | None = None,
          min_ndim: int = 0) -> np.ndarray:
    """`value` as a validated ndarray: dtype in `dtypes`, C-contiguous, no zero-size dim."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(value).__name__}")
    if value.dtype not in [np.dtype(d) for d in dtypes]:
        allowed = " or ".join(np.dtype(d).name for d in dtypes)
        raise TypeError(f"{name} must have dtype {allowed}, got {value.dtype}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {value.shape}")
    if value.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s), got {value.shape}")
    if not value.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (use np.ascontiguousarray)")
    if value.size == 0:
        raise ValueError(f"{name} must not have a zero-size dimension, got shape {value.shape}")
    return value


def scale(name: str, value: Any) -> float:
    """A quantization scale: a positive, finite number that stays so in float32."""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f"{name} must be a scalar or a 1-element array, got {value.shape}")
        value = value.reshape(-1)[0]
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}") from None
    if math.isnan(f) or not math.isfinite(f) or f <= 0.0:
        raise ValueError(f"{name} must be a positive finite number, got {f}")
    f32 = float(np.float32(f))
    if f32 <= 0.0 or not math.isfinite(f32):
        raise ValueError(f"{name}={f} is not a positive finite float32")
    return f32


def scale_buffer(name: str, value: Any) -> float:
    """A dynamic-mode scale buffer: float32[1] holding a valid scale."""
    arr = array(name, value, (np.float32,))
    if arr.size != 1:
        raise ValueError(f"{name} must be a float32[1] scale buffer, got shape {arr.shape}")
    return scale(name, arr)


def choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return str(value)


def finite(name: str, arr: np.ndarray) -> None:
    """Rejects Inf/NaN in a float input whose quantization would be undefined."""
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains Inf or NaN")


def count(name: str, inputs: Any, n: int) -> None:
    if len(inputs) != n:
        raise ValueError(f"{name}: expected {n} input buffer(s), got {len(inputs)}")


def is_dynamic(attrs: Mapping[str, Any]) -> bool:
    value = attrs.get("dynamic", False)
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"attrs['dynamic'] must be a bool, got {value!r}")
    return bool(value)


def attr(attrs: Mapping[str, Any], key: str) -> Any:
    if key not in attrs:
        raise ValueError(f"missing attribute {key!r}")
    return attrs[key]


def scale_out(value: float) -> np.ndarray:
    """A scale as the float32[1] buffer that follows an int8 tensor in dynamic mode."""
    return np.array([value], dtype=np.float32)
