"""The one placement line a session that names XDNA logs: the share of the
model's MACs on the NPU, its regions and the device; below
PLACEMENT_WARN_SHARE it is an XDNAPlacementWarning with the top reasons (by the
MACs each reason keeps on the CPU), so a session that places only a few percent
on the NPU never passes silently."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from .. import EP_NAME
from ..plan import PartitionPlan

PLACEMENT_WARN_SHARE = 0.90
TOP_REASONS = 3


@dataclass(frozen=True)
class PlacementSummary:
    share: float  # of the model's MACs on the NPU, 0..1
    npu_regions: int
    regions: int
    device: str
    dims: str  # the input shape placed ("" when the model has no symbolic dims)
    reasons: tuple[tuple[str, int], ...]  # (reason, MACs it keeps on the CPU), largest first
    cpu_quantization: str = "none"  # how the CPU nodes run (provider option)

    @property
    def low(self) -> bool:
        return self.share < PLACEMENT_WARN_SHARE

    def line(self) -> str:
        shape = f" for input shape {self.dims}" if self.dims else ""
        # rounded down: 99.97% is not "100.0%"
        pct = math.floor(1000.0 * self.share) / 10.0
        text = (f"{EP_NAME} placement{shape}: {pct:.1f}% of MACs on the NPU "
                f"({self.npu_regions} of {self.regions} region(s) on the NPU, device "
                f"{self.device or 'none'})")
        if self.low and self.reasons:
            top = "; ".join(f"{why} ({macs:,} MACs)" for why, macs in self.reasons)
            text += (f", below {100 * PLACEMENT_WARN_SHARE:.0f}%: top reasons: {top}")
        if self.cpu_quantization == "dynamic_int8":
            text += "; the CPU remainder runs ONNX Runtime dynamic INT8 (MatMul/Gemm)"
        return text


def _reason_key(reason: str) -> str:
    """A reason without its per-region numbers, so equal causes add up."""
    if "; region " in reason:  # "<match>; region N cost: ..." -> the cost verdict
        reason = reason.split("; region ", 1)[1]
        reason = reason.split(" ", 1)[1] if " " in reason else reason
    if reason.startswith("cost: "):
        return ("cost model kept the region on CPU (launch overhead exceeds the saving)"
                if "stays on CPU" in reason else reason)
    return reason


def summarize(plan: PartitionPlan, device: str,
              cpu_quantization: str = "none") -> PlacementSummary:
    """The placement of `plan` in proportion, with the reasons that keep the most
    MACs on the CPU (and how the CPU nodes run: provider option cpu_quantization)."""
    cpu_macs: dict[str, int] = defaultdict(int)
    for n in plan.nodes:
        if n.placement == "cpu" and n.macs > 0:
            cpu_macs[_reason_key(n.reason)] += int(n.macs)
    reasons = tuple(sorted(cpu_macs.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_REASONS])
    npu = sum(1 for r in plan.regions if r.placement == "npu")
    dims = ",".join(f"{k}={v}" for k, v in plan.dims.items())
    return PlacementSummary(plan.npu_mac_share, npu, len(plan.regions), device, dims, reasons,
                            cpu_quantization)
