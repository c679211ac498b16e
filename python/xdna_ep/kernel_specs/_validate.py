"""Argument checks for the matmul and quantize wrappers.

The native kernels trust what they are given (that keeps them fast; the
bindings re-check dtype/shape as a last line of defence), so every public
wrapper validates first and raises an exception naming the argument:
wrong type or dtype -> TypeError, anything else -> ValueError.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def array(name: str, value: Any, dtype: type, *, ndim: int | None = None,
          min_ndim: int = 0) -> np.ndarray:
    """`value` as an ndarray of exactly `dtype`, C-contiguous, without zero-size dims."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(value).__name__}")
    if value.dtype != np.dtype(dtype):
        raise TypeError(f"{name} must have dtype {np.dtype(dtype).name}, got {value.dtype}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {value.shape}")
    if value.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s), got {value.shape}")
    if not value.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (use np.ascontiguousarray)")
    if value.size == 0:
        raise ValueError(f"{name} must not have a zero-size dimension, got shape {value.shape}")
    return value


def scale(name: str, value: Any) -> np.float32:
    """A per-tensor scale: finite, > 0 in float32, with a finite float32 reciprocal
    (the quantize kernel multiplies by 1/scale)."""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f"{name} must be a scalar, got shape {value.shape}")
        value = value.reshape(-1)[0]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    f = float(value)
    f32 = np.float32(f) if math.isfinite(f) else np.float32(np.nan)
    with np.errstate(divide="ignore", over="ignore"):
        inv = np.float32(1.0) / f32 if f32 > 0 else np.float32(np.inf)
    if not (math.isfinite(f) and f32 > 0 and math.isfinite(float(inv))):
        raise ValueError(f"{name} must be a finite float32 > 0 (with a finite reciprocal), "
                         f"got {value!r}")
    return f32


def scale_buffer(name: str, value: Any) -> np.float32:
    """A dynamic-mode scale buffer: float32[1] holding a valid scale."""
    arr = array(name, value, np.float32)
    if arr.size != 1:
        raise ValueError(f"{name} must be a float32[1] scale buffer, got shape {arr.shape}")
    return scale(name, arr)


def scale_vector(name: str, value: Any, n: int) -> np.ndarray:
    """Per-channel float32 [n] scales, each finite and > 0."""
    arr = array(name, value, np.float32, ndim=1)
    if arr.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    if not (np.isfinite(arr).all() and (arr > 0).all()):
        raise ValueError(f"{name} must hold finite values > 0")
    return arr


def choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    return str(value)


def flag(attrs: Mapping[str, Any], key: str) -> bool:
    value = attrs.get(key, False)
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"attrs[{key!r}] must be a bool, got {type(value).__name__}")
    return bool(value)


def required(attrs: Mapping[str, Any], key: str) -> Any:
    if key not in attrs:
        raise ValueError(f"attrs[{key!r}] is required")
    return attrs[key]


def count(kernel: str, buffers: Sequence[Any], n: int) -> None:
    if len(buffers) != n:
        raise ValueError(f"{kernel}: expected {n} input buffer(s), got {len(buffers)}")
