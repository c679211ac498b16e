"""The compiler's intermediate form: a region as kernel calls on float tensors.

Op families (xdna_ep.ops) lower their matches into LOps, the graph passes
(xdna_ep.passes) rewrite the LoweredRegion, quantize/ turns its float
constants into int8, and compile/build.py emits stages from it. Kept in a
module of its own so the op families and the passes can import it without
importing the compiler.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..quantize.calibration import Tap


@dataclass(eq=False)
class LOp:
    """One kernel call on float tensors (tensor names are ONNX names or derived)."""

    kernel: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # float constants by role
    attrs: dict[str, Any] = field(default_factory=dict)
    source_nodes: tuple[str, ...] = ()


@dataclass
class LoweredRegion:
    region_id: int
    ops: list[LOp]
    inputs: list[str]
    outputs: list[str]
    taps: dict[str, Tap]  # every tensor name -> how to observe it in the FP32 model
    macs: int = 0
