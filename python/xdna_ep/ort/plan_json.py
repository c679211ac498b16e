"""PartitionPlan <-> JSON: a cache entry stores its plan, so a cache hit can still
write the partition report without partitioning again (JSON, never pickle)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from ..plan import NodePlacement, OpMatch, PartitionPlan, Region


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def plan_to_dict(plan: PartitionPlan) -> dict[str, Any]:
    return _jsonable(asdict(plan))


def plan_from_dict(doc: dict[str, Any]) -> PartitionPlan:
    def match(m: dict[str, Any]) -> OpMatch:
        return OpMatch(m["kind"], tuple(m["nodes"]), tuple(m["inputs"]), tuple(m["outputs"]),
                       dict(m.get("attrs", {})), int(m.get("macs", 0)), m.get("pattern", ""),
                       m.get("graph", ""))

    regions = [Region(**{**r, "matches": [match(m) for m in r["matches"]]})
               for r in doc["regions"]]
    nodes = [NodePlacement(**n) for n in doc["nodes"]]
    rest = {k: v for k, v in doc.items() if k not in ("nodes", "regions")}
    return PartitionPlan(nodes=nodes, regions=regions, **rest)


def dumps(plan: PartitionPlan) -> str:
    return json.dumps(plan_to_dict(plan), sort_keys=True)
