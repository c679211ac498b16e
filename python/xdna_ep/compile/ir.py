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
from .model_index import NotLowerable


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
    # what passes recorded for the Program's meta (e.g. "outlier_channels")
    meta: dict[str, Any] = field(default_factory=dict)


def producers(ops: list[LOp]) -> dict[str, int]:
    """tensor -> index of the op that produces it."""
    return {t: i for i, op in enumerate(ops) for t in op.outputs}


def uses(ops: list[LOp], t: str) -> list[int]:
    """Indices of the ops that read tensor t."""
    return [i for i, op in enumerate(ops) if t in op.inputs]


def toposort(ops: list[LOp], inputs: list[str]) -> list[LOp]:
    """Stable topological order (graph order wherever the data flow allows)."""
    ready = set(inputs)
    out: list[LOp] = []
    pending = list(ops)
    while pending:
        for i, op in enumerate(pending):
            if all(t in ready for t in op.inputs):
                out.append(op)
                ready.update(op.outputs)
                del pending[i]
                break
        else:
            missing = sorted({t for op in pending for t in op.inputs} - ready
                             - {t for op in pending for t in op.outputs})
            raise NotLowerable(f"region reads tensors that are neither region inputs nor "
                               f"produced inside it: {missing[:5]}")
    return out
