"""Data classes shared by the partitioning stages.

capability produces OpMatch objects (one recognised NPU operation, possibly
covering several ONNX nodes, e.g. the 5-node Erf Gelu pattern) and a
NodePlacement for every node; regions groups matches into Regions; quantize,
compile and rewrite consume Regions; report reads the PartitionPlan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Placement = Literal["npu", "cpu"]


@dataclass(frozen=True)
class OpMatch:
    """One operation the NPU can run, recognised in the ONNX graph.

    kind: the op family (xdna_ep.ops.registry: "matmul", "gelu", "layernorm",
    "attention", "add", "conv1d", ...).
    nodes: names of the ONNX nodes it covers, in graph order.
    inputs: activation tensor names it consumes (constants are named in attrs).
    outputs: tensor names it produces that are visible outside the match.
    attrs: the family's typed attributes (a frozen dataclass defined next to its
    matcher and lowering, e.g. xdna_ep.ops.gelu.GeluAttrs); a dict (the JSON
    form of a cached plan, or None) is turned into that dataclass.
    macs: multiply-accumulates per inference (0 if shape-dependent and unknown).
    pattern: the form it was found in ("Gelu", "erf-pattern", "BiasGelu", ...).
    graph: "" for the main graph, else the path of the If branch subgraph.
    """

    kind: str
    nodes: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Any = None
    macs: int = 0
    pattern: str = ""
    graph: str = ""

    def __post_init__(self) -> None:
        if self.attrs is None or isinstance(self.attrs, dict):
            from .ops import registry  # imported here: plan.py sits below ops/

            if self.kind in registry.kinds():  # else lowering says "no NPU lowering"
                typed = registry.attrs_from_dict(self.kind, dict(self.attrs or {}))
                object.__setattr__(self, "attrs", typed)


@dataclass
class NodePlacement:
    """Where one ONNX node runs and why (one row of the report)."""

    name: str
    op_type: str
    placement: Placement
    reason: str
    region: int | None = None
    pattern: str = ""
    macs: int = 0
    graph: str = ""


@dataclass
class Region:
    """A maximal connected, cycle-free group of matches that becomes ONE node."""

    id: int
    matches: list[OpMatch]
    inputs: list[str]
    outputs: list[str]
    macs: int = 0
    placement: Placement = "npu"
    cost_reason: str = ""  # why the cost model kept it (or moved it to CPU)
    graph: str = ""
    sqnr_db: float | None = None
    launches: int = 0
    # after compile: dynamic scales reduced on the array inside fused launches, and
    # the float32 bytes they move to / from DDR (cost.dynamic_traffic)
    reductions: int = 0
    f32_traffic_bytes: int = 0
    # before compile: the launches compile is expected to make (compile/estimate.py)
    # and the rule that gave them; 0 / "" when partition did not estimate
    estimated_launches: int = 0
    estimate_rule: str = ""

    @property
    def nodes(self) -> list[str]:
        return [n for m in self.matches for n in m.nodes]


@dataclass
class PartitionPlan:
    """The whole partitioning decision for one model."""

    model_name: str
    nodes: list[NodePlacement]
    regions: list[Region]
    total_macs: int = 0
    device: str = ""
    device_reason: str = ""
    quantization: str = ""
    fallbacks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # assumptions (symbolic dims, ...)
    # the size each symbolic input dim was bound to (the shape placed and compiled)
    # and where that size came from (option, session options, calibration, first
    # run, default); dims_guessed: bound to 1 by no rule (the cost model then
    # decides nothing, see partition.py)
    dims: dict[str, int] = field(default_factory=dict)
    dims_source: dict[str, str] = field(default_factory=dict)
    dims_guessed: list[str] = field(default_factory=list)

    @property
    def npu_macs(self) -> int:
        return sum(r.macs for r in self.regions if r.placement == "npu")

    @property
    def npu_mac_share(self) -> float:
        return self.npu_macs / self.total_macs if self.total_macs else 0.0

    @property
    def launches_per_inference(self) -> int:
        return sum(r.launches for r in self.regions if r.placement == "npu")
