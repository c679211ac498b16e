"""What a graph pass is and what it may read.

A pass runs at one of three points of compile_plan (compile/api.py), named by
what exists there:

- "lowered": per region, right after its matches are lowered to kernel calls
  (LOps, before the topological sort): run(lr, ctx), rewrites lr in place;
- "calibrated": once over all lowered regions, after buffer planning, with the
  calibration samples when there are any (ctx.samples may be None: a pass then
  decides from the weights alone, or does nothing): run(regions, ctx);
- "quantized": per region, after quantize/ chose the int8 scales:
  run(lr, buffers, qr, ctx), may refine qr.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

if TYPE_CHECKING:
    import onnx

    from ..compile.model_index import ModelIndex

Point = Literal["lowered", "calibrated", "quantized"]


class BufferDtypes(Protocol):
    """The part of compile/build.py's BufferPlan a pass reads."""

    produced: dict[str, str]


@dataclass
class PassContext:
    """Inputs and switches the passes share (from CompileOptions and compile_plan)."""

    idx: ModelIndex
    quantization: str = "static"
    fuse_qkv: bool = True
    split_outliers: bool = True
    outlier_ratio: float = 8.0
    gelu_offset: bool = True
    model: onnx.ModelProto | None = None
    samples: Sequence[Mapping[str, np.ndarray]] | None = None


@dataclass(frozen=True)
class Pass:
    """One named pass: where it runs, what it does, and when it is switched on."""

    name: str
    point: Point
    run: Callable[..., None]
    enabled: Callable[[PassContext], bool] = lambda ctx: True
    summary: str = ""
