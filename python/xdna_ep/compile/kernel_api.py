"""The few places where compile/ calls into the kernel packages.

Kept in one module so the compiler's dependence on the kernel helpers'
APIs (gelu table builder, manifest designs and version) is visible and easy
to adapt. When a kernel package is not importable yet, the documented
contract-level fallback here is used and `available()` says so.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

FindDesign = Callable[[Sequence[str]], Any]  # -> design name, DesignEntry or None


def _module(name: str) -> Any | None:
    try:
        return importlib.import_module(f"xdna_ep.kernel_specs.{name}")
    except ImportError:
        return None


def gelu_float(x: np.ndarray, approximate: str) -> np.ndarray:
    """GELU in float64 (erf form or tanh form, as ONNX Gelu defines them)."""
    x = np.asarray(x, np.float64)
    if approximate == "tanh":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def gelu_table(in_scale: float, out_scale: float, approximate: str,
               out_offset: float = 0.0) -> np.ndarray:
    """int8[256] lookup table of the gelu stage.

    Uses xdna_ep.kernel_specs.gelu.build_table when it exists (the kernel's own
    definition). Fallback contract: entry i is the output for input code
    q = i - 128 (entry 0, code -128, is never produced by the narrow range and
    holds the value for -127).
    """
    mod = _module("gelu")
    if mod is not None and hasattr(mod, "build_table"):
        return np.asarray(mod.build_table(in_scale, out_scale, approximate, out_offset),
                          dtype=np.int8)
    codes = np.arange(-128, 128, dtype=np.float64)
    codes[0] = -127
    y = (gelu_float(codes * np.float64(np.float32(in_scale)), approximate)
         - np.float64(np.float32(out_offset))) / out_scale
    return np.clip(np.rint(y), -127, 127).astype(np.int8)


def matmul_supports_split() -> bool:
    """Whether the registered matmul kernel implements attrs["split"]/["out_scales"].

    The fused q/k/v matmul needs one stage with several column-block outputs
    (an additive extension of the STAGES.md matmul contract); the kernel module
    announces it with SUPPORTS_SPLIT = True.
    """
    mod = _module("matmul")
    return bool(getattr(mod, "SUPPORTS_SPLIT", False)) if mod is not None else False


def find_design_function() -> FindDesign | None:
    """xdna_ep.kernel_specs.manifest.find_design, or None before the manifest exists."""
    mod = _module("manifest")
    fn = getattr(mod, "find_design", None) if mod is not None else None
    return fn


def kernel_version() -> str:
    """Kernel version string from the manifest ("" when there is no manifest yet)."""
    mod = _module("manifest")
    if mod is None:
        return ""
    for attr in ("kernel_version", "KERNEL_VERSION", "version"):
        v = getattr(mod, attr, None)
        if callable(v):
            v = v()
        if isinstance(v, str):
            return v
    return ""
