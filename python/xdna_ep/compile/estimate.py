"""Before compile: how many launches compile will make of each region.

Why: the cost model decides a region's placement before compile, and a launch
costs 0.15 ms on Phoenix (docs/COST_MODEL.md). Counting one launch per matched
op (a Whisper layer: 13 matches) while compile fuses the layer into 2-3 launches
priced small regions several times too high and kept some on the CPU.

How: the region goes through compile's own steps up to its stage list (lower
with the "lowered" passes, the "calibrated" passes without calibration data,
buffer planning, each op family's stage emission: compile/build.py's Emitter),
and compile's own grouping (build.group_launches over the manifest's designs)
counts the launches. Nothing here groups stages by itself.

Where the estimate can differ from compile (RegionEstimate.rule says which rule
gave the figure, Region.launches replaces it after compile):

- static mode: compile chooses MLP outlier channels from the calibration data,
  this estimate from the weights alone (the rule dynamic mode uses), so a split
  MLP can add launches compile makes and the estimate does not, or the reverse;
  the "quantized" passes (gelu_offset) run only in compile: they change scales
  and biases, not stages;
- a region whose stage chain cannot be derived (it does not lower, or a static
  region inside an If branch, which compile keeps on the CPU) is counted one
  launch per matched op, and the rule says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import onnx

from .. import passes as graph_passes
from ..passes.base import PassContext
from ..plan import Region
from ..quantize.region import QuantizedRegion
from ..quantize.weights import WeightError
from .build import Emitter, group_launches, plan_buffers
from .ir import LoweredRegion
from .lower import lower_region
from .model_index import ModelIndex, NotLowerable

if TYPE_CHECKING:
    from .api import CompileOptions

GROUPED = "compile's grouping of its stage chain"


@dataclass(frozen=True)
class RegionEstimate:
    """The launches one region is expected to need, and the rule that gave them."""

    launches: int
    grouped: bool  # True: its stage chain grouped as compile groups it
    rule: str      # GROUPED, or "one launch per matched op: <why no chain>"


def _per_op(region: Region, why: str) -> RegionEstimate:
    return RegionEstimate(len(region.matches), False, f"one launch per matched op: {why}")


def _estimate_stub(lr: LoweredRegion, mode: str, tensors: set[str]) -> QuantizedRegion:
    """What the Emitter reads of a quantized region, without quantizing: every tensor
    gets scale 1.0 (static attrs carry it; the stages do not depend on it) and the
    float weights stand in for their int8 form (the Emitter only names them)."""
    return QuantizedRegion(lr.region_id, mode, "estimate",  # type: ignore[arg-type]
                           scales=dict.fromkeys(tensors, 1.0) if mode == "static" else {},
                           op_constants=[dict(op.weights) for op in lr.ops])


def estimate_launches(model: onnx.ModelProto, regions: list[Region],
                      options: CompileOptions) -> dict[int, RegionEstimate]:
    """Expected launches of every region in `regions` (by id) under `options`, the
    options compile_plan will get (quantization mode, q/k/v fusion, outlier split,
    design lookup). The model is read, never changed."""
    from ..kernel_specs import manifest  # at call time: the manifest is read on first use
    from ..kernel_specs.matmul import SUPPORTS_SPLIT

    mode = options.quantization
    fuse = SUPPORTS_SPLIT if options.fuse_qkv is None else options.fuse_qkv
    idx = ModelIndex(model)
    ctx = PassContext(idx, mode, fuse, options.split_outliers, options.outlier_ratio,
                      gelu_offset=False, model=model, samples=None)
    out: dict[int, RegionEstimate] = {}
    lowered: list[tuple[Region, LoweredRegion]] = []
    for r in regions:
        if mode == "static" and r.graph:
            out[r.id] = _per_op(r, f"static calibration inside If branch {r.graph!r} is "
                                   f"not supported, so compile keeps it on the CPU")
            continue
        try:
            lowered.append((r, lower_region(idx, r, fuse, ctx)))
        except (NotLowerable, WeightError) as e:
            out[r.id] = _per_op(r, f"it does not lower ({getattr(e, 'reason', str(e))})")
    main = [lr for r, lr in lowered if not r.graph]
    if main:
        try:
            graph_passes.run_calibrated(main, ctx)
        except (NotLowerable, WeightError, ValueError, KeyError) as e:
            # compile would meet the same failure; placement still needs a figure
            why = f"the calibrated passes failed ({type(e).__name__}: {e})"
            out.update({r.id: _per_op(r, why) for r, _ in lowered if not r.graph})
            lowered = [(r, lr) for r, lr in lowered if r.graph]
    find = options.find_design or manifest.find_design
    for r, lr in lowered:
        bp = plan_buffers(lr, mode)
        tensors = set(bp.produced) | set(lr.inputs)
        em = Emitter(lr, bp, _estimate_stub(lr, mode, tensors))
        try:
            em.emit()
        except (ValueError, KeyError, RuntimeError, NotImplementedError) as e:
            out[r.id] = _per_op(r, f"its stages could not be emitted ({type(e).__name__}: {e})")
            continue
        out[r.id] = RegionEstimate(len(group_launches(em.stages, find)), True, GROUPED)
    return out


__all__ = ["GROUPED", "RegionEstimate", "estimate_launches"]
