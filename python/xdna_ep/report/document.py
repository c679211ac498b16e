"""PartitionPlan -> the report document (a JSON-ready dict), schema in
docs/REPORT_SCHEMA.md. The text and HTML renderers read this dict, never the
plan, so the three formats always agree."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from .. import __version__
from ..cost import CpuCostModel, NpuCostModel, projected_npu_time, region_cost
from ..plan import PartitionPlan

SCHEMA = "xdna-ep/partition-report"
SCHEMA_VERSION = 1


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _category(reason: str) -> str:
    head = reason.split(":", 1)[0].strip()
    return head if len(head) <= 24 else "other"


def report_dict(plan: PartitionPlan, npu: NpuCostModel | None = None,
                cpu: CpuCostModel | None = None) -> dict[str, Any]:
    """The report of `plan` as a dict that json.dumps accepts."""
    if not isinstance(plan, PartitionPlan):
        raise TypeError(f"plan must be a PartitionPlan, got {type(plan).__name__}")
    regions = []
    est_launches = 0
    compiled = any(r.launches > 0 for r in plan.regions)
    for r in plan.regions:
        c = region_cost(r, npu, cpu)
        if r.placement == "npu":
            est_launches += c.launches
        regions.append({
            "id": r.id,
            "graph": r.graph,
            "placement": r.placement,
            "nodes": list(r.nodes),
            "kinds": dict(Counter(m.kind for m in r.matches)),
            "macs": int(r.macs),
            "sqnr_db": _num(r.sqnr_db),
            "launches": int(r.launches) if r.launches > 0 else None,
            "launches_estimate": c.launches,
            "launches_estimate_rule": c.estimate_rule,  # "" once compiled
            "inputs": list(r.inputs),
            "outputs": list(r.outputs),
            "cost_reason": r.cost_reason,
            "projected_npu_ms": c.npu_s * 1e3,
            "projected_cpu_ms": c.cpu_s * 1e3,
        })
    nodes = [{
        "name": n.name, "op_type": n.op_type, "placement": n.placement, "reason": n.reason,
        "region": n.region, "pattern": n.pattern, "macs": int(n.macs), "graph": n.graph,
    } for n in plan.nodes]
    cpu_reasons = Counter(_category(n.reason) for n in plan.nodes if n.placement == "cpu")
    proj = projected_npu_time(plan, npu, cpu)
    npu_regions = [r for r in plan.regions if r.placement == "npu"]
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "generator": f"xdna-ep {__version__}",
        "model": plan.model_name,
        "device": plan.device or None,
        "device_reason": plan.device_reason or None,
        "quantization": plan.quantization or None,
        "total_macs": int(plan.total_macs),
        "npu_macs": int(plan.npu_macs),
        "npu_mac_share": float(plan.npu_mac_share),
        "launches_per_inference": int(plan.launches_per_inference) if compiled else est_launches,
        "launches_source": "compiled" if compiled else "estimate",
        "counts": {
            "nodes": len(plan.nodes),
            "npu_nodes": sum(1 for n in plan.nodes if n.placement == "npu"),
            "cpu_nodes": sum(1 for n in plan.nodes if n.placement == "cpu"),
            "regions": len(plan.regions),
            "npu_regions": len(npu_regions),
        },
        "cpu_reasons": dict(cpu_reasons.most_common()),
        "projection": {
            "npu_ms": proj.npu_s * 1e3, "cpu_ms": proj.cpu_s * 1e3,
            "total_ms": proj.total_s * 1e3, "label": proj.label,
        },
        "regions": regions,
        "nodes": nodes,
        "fallbacks": list(plan.fallbacks),
        "notes": list(getattr(plan, "notes", []) or []),
        "dims": {k: int(v) for k, v in (getattr(plan, "dims", {}) or {}).items()},
        "dims_source": dict(getattr(plan, "dims_source", {}) or {}),
    }
