"""The cost model, in one place: is a region worth a trip to the NPU?

NPU time of a region  = call crossing + launches x launch overhead + MACs / NPU MAC rate
CPU time of the same  = per match: MACs / CPU rate(rows) + elements / element rate
                        + ONNX nodes x per-node dispatch cost

Where the numbers come from (each with its source: docs/COST_MODEL.md):

- NPU rate: Phoenix npu1, about 10 INT8 TOPS peak = 5e12 MAC/s. We use the
  peak, so NPU compute time is a lower bound.
- Launches: after compile, Region.launches; before it, what compile's grouping
  makes of the region's stage chain (compile/estimate.py, stored by partition in
  Region.estimated_launches with its rule), else one per matched op.
- Launch overhead: one launch of a tiny kernel on Phoenix takes 0.15-0.5 ms
  (LayerNorm 256: ~0.15 ms, GELU 512: 0.16 ms, GELU 2048: 0.17 ms, matmul 16x16:
  0.48 ms), i.e. the fixed cost dominates. We take the smallest, 0.15 ms, so the
  model errs towards the NPU.
- Region call: the plugin EP's per-region overhead (ONNX Runtime -> the region
  node's compute function in libxdna_ep_provider.so and back), 2.1 us as
  `python -m xdna_ep bench session` measured it (`region_call_overhead_us`) on
  the shared 2-core Zen 4 build host: a host-CPU measurement, not an NPU one.
  Until 2026-12 this was 33 us, the crossing of the former onnxruntime-extensions
  bridge, which no region uses any more.
- CPU side: measured once per machine on the host it runs on (hostbench.py:
  ONNX Runtime's CPU provider, float32 GEMM and GEMV, element-wise Add, per-node
  dispatch; INT8 GEMM recorded too), cached per CPU model + core count. The
  CPU alternative to a region is the float32 graph on ONNX Runtime's CPU
  provider, so the float32 figures decide. The constants of CpuCostModel
  (a 2-core AVX2 server: numpy fp32 1500x384x384 at 194 GOPS = 97e9 MAC/s,
  GEMV 1x384x51864 at 3.5e9 MAC/s, 1e9 elements/s and 5 us per node, the last
  two assumptions) apply only when measuring fails or when injected (tests:
  hostbench.set_host_figures). A matmul with M rows is modelled at
  min(GEMM rate, M x GEMV rate): a one-token decoder matmul runs at GEMV speed.

- On-array scale reductions (default/dynamic mode inside a fused launch,
  kernels/common/dynamic_scale.h): each costs `reduction_s` = 5 us, an
  ASSUMPTION (partials joined on a memory tile, one reducer core, the broadcast
  lock round trips; not measured), plus its float32 traffic: the tensor is read
  twice (once folded into partials, once quantized as it streams back; a tensor
  a core produced is also written once to OUT), at `dram_bytes_per_s` = 25 GB/s,
  also an ASSUMPTION (npu1 shim DMA to LPDDR5, not measured). Region.reductions
  and Region.f32_traffic_bytes hold what compile found (dynamic_traffic).

Every figure computed here is a projection from these constants, never a
measurement on an NPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .plan import OpMatch, PartitionPlan, Region

PROJECTION_LABEL = ("projection from the cost model (NPU: Phoenix figures in "
                    "docs/COST_MODEL.md, at peak rate; CPU: this host's benchmark), "
                    "not a measurement")


# Bump when the placement rule changes (the formulas here, the launch estimate of
# compile/estimate.py): cached decisions, "nothing placed" ones included, were made
# by the old rule and are rebuilt (placement_key, in the cache's version table).
# 2: region call 2.1 us (the plugin), launches estimated with compile's grouping.
PLACEMENT_RULES_VERSION = 2


@dataclass(frozen=True)
class NpuCostModel:
    name: str = "Phoenix npu1 (4x4 AIE2)"
    peak_int8_tops: float = 10.0
    launch_overhead_s: float = 0.15e-3
    region_call_s: float = 2.1e-6     # plugin per-region overhead, host CPU (bench session)
    reduction_s: float = 5e-6          # ASSUMPTION: one on-array dynamic scale reduction
    dram_bytes_per_s: float = 25e9     # ASSUMPTION: float32 intermediates to/from DDR

    @property
    def macs_per_s(self) -> float:
        return self.peak_int8_tops * 1e12 / 2.0  # one MAC = two ops


@dataclass(frozen=True)
class CpuCostModel:
    name: str = "host CPU, 2 cores, float32 (AVX2 host, docs/COST_MODEL.md)"
    gemm_macs_per_s: float = 97e9
    gemv_macs_per_s: float = 3.5e9
    elements_per_s: float = 1e9
    node_dispatch_s: float = 5e-6
    int8_gemm_macs_per_s: float = 0.0  # measured INT8 GEMM rate (0: not measured);
    # recorded for the report, the decision uses the float32 rate the CPU graph runs at

    def mac_rate(self, rows: int) -> float:
        return min(self.gemm_macs_per_s, self.gemv_macs_per_s * max(1, rows))


@dataclass(frozen=True)
class RegionCost:
    npu_s: float
    cpu_s: float
    launches: int
    launches_estimated: bool  # True until compile sets Region.launches
    estimate_rule: str = ""   # how an estimated count was made (cost.estimate_launches)

    @property
    def placement(self) -> str:
        return "npu" if self.npu_s <= self.cpu_s else "cpu"


def match_rows(m: OpMatch) -> int:
    """Rows (M) a match's GEMMs process: what decides GEMM vs GEMV speed on CPU."""
    for key in ("m", "tq"):
        v = getattr(m.attrs, key, None)
        if isinstance(v, int) and v > 0:
            return v
    return 1


PER_OP_RULE = "one launch per matched op: partition did not derive its stage chain"


def estimate_launches(region: Region) -> tuple[int, str]:
    """Before compile: (launches, the rule that gave them). Partition stores what
    compile's grouping of the region's stage chain gives (compile/estimate.py:
    Region.estimated_launches, Region.estimate_rule); without it, one launch per
    matched op. After compile Region.launches holds the real figure."""
    if region.estimated_launches > 0:
        return region.estimated_launches, region.estimate_rule
    return len(region.matches), PER_OP_RULE


def cpu_time(matches: list[OpMatch], cpu: CpuCostModel) -> float:
    t = 0.0
    for m in matches:
        t += m.macs / cpu.mac_rate(match_rows(m))
        if m.macs == 0:
            t += int(getattr(m.attrs, "elements", 0) or 0) / cpu.elements_per_s
        t += len(m.nodes) * cpu.node_dispatch_s
    return t


def host_cpu() -> CpuCostModel:
    """This host's CPU figures (hostbench.py: injected, cached or measured once)."""
    from .hostbench import host_cpu_model  # hostbench imports this module

    return host_cpu_model()


def region_cost(region: Region, npu: NpuCostModel | None = None,
                cpu: CpuCostModel | None = None) -> RegionCost:
    npu = npu or NpuCostModel()
    cpu = cpu or host_cpu()
    rule = ""
    if region.launches > 0:
        launches = region.launches
    else:
        launches, rule = estimate_launches(region)
    npu_s = (npu.region_call_s + launches * npu.launch_overhead_s + region.macs / npu.macs_per_s
             + region.reductions * npu.reduction_s
             + region.f32_traffic_bytes / npu.dram_bytes_per_s)
    return RegionCost(npu_s, cpu_time(region.matches, cpu), launches, region.launches <= 0,
                      rule)


@dataclass(frozen=True)
class DynamicTraffic:
    """What a compiled program's fused dynamic launches add on the array."""

    reductions: int          # dynamic quantizes (and dynamic conv1d inputs) reduced on the array
    f32_bytes: int           # float32 bytes those reductions move to / from DDR


def dynamic_traffic(program: Any, fused: set[str],
                    dims: Mapping[str, int] | None = None) -> DynamicTraffic:
    """Per dynamic quantize inside a fused launch (design name in `fused`), and per
    dynamic conv1d there (it quantizes its own input: conv_frontend): one reduction;
    its float32 input is read twice (partials, then quantize) and, when a
    core of the launch produced it, written once to OUT first. Shapes are inferred
    stage by stage from the program's input shapes, symbolic dims sized by `dims`
    (the plan's sizes, PartitionPlan.dims); an input dim without a size makes the
    traffic 0 (the reductions still count)."""
    from .runtime.layout import REDUCING_KERNELS, stage_consts
    from .runtime.shapes import BufferSpec, output_specs

    sizes = dict(dims or {})
    known: dict[str, BufferSpec] | None = {}
    for t in program.inputs:
        shape = [sizes.get(d) if isinstance(d, str) else d for d in t.shape]
        if not all(isinstance(d, int) for d in shape):
            known = None
            break
        known[t.name] = BufferSpec(t.dtype, tuple(int(d) for d in shape))
    reductions = nbytes = 0
    for ln in program.launches:
        made: set[str] = set()
        for st in ln.stages:
            if ln.design in fused and st.kernel in REDUCING_KERNELS and st.attrs.get("dynamic"):
                reductions += 1
                x = known.get(st.inputs[0]) if known is not None else None
                if x is not None:
                    nbytes += x.nbytes * (3 if st.inputs[0] in made else 2)
            made.update(st.outputs)
            if known is not None and all(b in known for b in st.inputs):
                try:
                    outs = output_specs(st.kernel, None, [known[b] for b in st.inputs],
                                        stage_consts(program, st), st.attrs)
                except (NotImplementedError, ValueError, KeyError):
                    continue
                known.update(zip(st.outputs, outs, strict=False))
    return DynamicTraffic(reductions, nbytes)


def _ms(s: float) -> str:
    return f"{s * 1e3:.3f} ms"


def place_by_cost(regions: list[Region], npu: NpuCostModel | None = None,
                  cpu: CpuCostModel | None = None) -> list[Region]:
    """Set placement and cost_reason of every region; return those moved to CPU."""
    moved: list[Region] = []
    cpu = cpu or host_cpu()
    for r in regions:
        c = region_cost(r, npu, cpu)
        est = f" (estimated: {c.estimate_rule})" if c.launches_estimated else ""
        detail = (f"NPU {_ms(c.npu_s)} ({c.launches} launch{'es' if c.launches != 1 else ''}"
                  f"{est} x {_ms((npu or NpuCostModel()).launch_overhead_s)} + compute) vs "
                  f"CPU {_ms(c.cpu_s)}")
        if c.placement == "npu":
            r.placement = "npu"
            r.cost_reason = f"cost: {detail}: NPU faster"
        else:
            r.placement = "cpu"
            r.cost_reason = f"cost: {detail}: stays on CPU (launch overhead exceeds the saving)"
            moved.append(r)
    return moved


@dataclass(frozen=True)
class Projection:
    """Projected time of one inference under the plan (not a measurement)."""

    npu_s: float
    cpu_s: float
    label: str = PROJECTION_LABEL

    @property
    def total_s(self) -> float:
        return self.npu_s + self.cpu_s


def projected_npu_time(plan: PartitionPlan, npu: NpuCostModel | None = None,
                       cpu: CpuCostModel | None = None) -> Projection:
    """Projection of one inference: NPU regions at NPU cost, everything else at
    CPU cost (CPU MACs outside regions at the GEMM rate, plus per-node dispatch).
    If branches are all counted, so for merged decoders this over-counts."""
    cpu = cpu or host_cpu()
    npu_s = cpu_s = 0.0
    counted = set()
    for r in plan.regions:
        c = region_cost(r, npu, cpu)
        if r.placement == "npu":
            npu_s += c.npu_s
        else:
            cpu_s += c.cpu_s
        counted.update((r.graph, n) for n in r.nodes)
    for n in plan.nodes:
        if (n.graph, n.name) in counted or n.reason.startswith("constant"):
            continue  # constants are folded into their consumers: no dispatch
        cpu_s += n.macs / cpu.gemm_macs_per_s + cpu.node_dispatch_s
    return Projection(npu_s, cpu_s)


def placement_key() -> dict[str, Any]:
    """What decides placement besides the model and the options: the rule's version
    and the NPU constants (the CPU side is this host's benchmark, cached per machine)."""
    from dataclasses import asdict

    return {"rules": PLACEMENT_RULES_VERSION, "npu": asdict(NpuCostModel())}
