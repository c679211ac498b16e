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

    kind: the kernel family ("matmul", "gelu", "layernorm", "attention", "add",
    "conv1d", "softmax").
    nodes: names of the ONNX nodes it covers, in graph order.
    inputs: activation tensor names it consumes (initializers are in attrs).
    outputs: tensor names it produces that are visible outside the match.
    attrs: kind-specific facts the quantizer/compiler need, e.g. for matmul
    {"weight": <initializer name>, "bias": <name or None>, "transpose_b": bool};
    gelu {"approximate": "none" | "tanh", "bias": ...}; layernorm {"epsilon",
    "gamma", "beta", "skip": <tensor or None>}; attention {"num_heads", "scale",
    "q", "k", "v", "mask", "causal"}.

    What compile/ reads, precisely:
    - matmul: inputs[0] is the activation [..., K]; "weight" an initializer
      (or Constant output) [K, N], or [N, K] when "transpose_b"; "bias" an
      initializer [N] or None; optional "alpha"/"beta" (Gemm; default 1.0);
      outputs[0] is the result (bias included).
    - gelu: inputs[0]; "bias" an initializer (BiasGelu/FastGelu with bias) or
      None; a gelu bias is folded into the producing matmul.
    - layernorm: inputs[0] the x tensor; "skip" the second addend
      (SkipLayerNormalization) or None; "gamma"/"beta" initializers [C];
      optional "sum_output": the x+skip tensor when the graph uses it.
    - attention: "q", "k", "v" the float tensors [B, T, H*Dh] the match
      consumes (before the head split; for the q/k/v fusion they should be the
      projection matmuls' outputs, so a constant scaling Mul on q, as in
      Whisper's export, belongs to the attention match); "scale" the total
      constant factor on q.k^T inside the match (Mul on q or on the logits,
      1/sqrt(Dh), ...; 1.0 if none); "mask" an additive float mask tensor or
      None; outputs[0] the merged-heads result [B, Tq, H*Dh].
    - add: inputs (a, b), both activations (no initializer operand).
    - conv1d: inputs[0] x [B, Cin, T]; {"weight" [Cout, Cin, Kw], "bias" or
      None, "stride", "pad" (symmetric), "dilation" (1), "group" (1)}.
    macs: multiply-accumulates per inference (0 if shape-dependent and unknown).
    pattern: the form it was found in ("Gelu", "erf-pattern", "BiasGelu", ...).
    graph: "" for the main graph, else the path of the If branch subgraph.
    """

    kind: str
    nodes: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    macs: int = 0
    pattern: str = ""
    graph: str = ""


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

    @property
    def npu_macs(self) -> int:
        return sum(r.macs for r in self.regions if r.placement == "npu")

    @property
    def npu_mac_share(self) -> float:
        return self.npu_macs / self.total_macs if self.total_macs else 0.0

    @property
    def launches_per_inference(self) -> int:
        return sum(r.launches for r in self.regions if r.placement == "npu")
