"""regions: merge placed matches into maximal connected, cycle-free regions.

Each region becomes ONE custom node in the rewritten graph, so contracting it
must keep the graph a DAG: two groups joined by an edge P -> C may merge only
if no other path leads from P's group to C's group through a unit outside
both (that path would have to run "through" the contracted node and back).
The check walks the current contracted graph (CPU nodes plus already-merged
groups), which is a DAG by induction, so one direction suffices.

Regions never cross a subgraph boundary: each If branch is merged on its own.
Edges that only carry a shape (Reshape's target, computed on CPU by
Shape -> Gather -> Concat) are not data dependencies of a match; the NPU
program derives shapes from its inputs, so they cannot create a cycle.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from ..capability import CapabilityResult
from ..capability.graph import GraphView, node_inputs
from ..plan import OpMatch, Region


@dataclass
class _Units:
    """The unit DAG of one graph: matches and CPU nodes, with tensor edges."""

    view: GraphView
    matches: list[OpMatch]
    labels: list[str] = field(default_factory=list)  # unit -> "m:<i>" / "n:<name>"
    succ: list[set[int]] = field(default_factory=list)
    pred: list[set[int]] = field(default_factory=list)
    topo: list[int] = field(default_factory=list)  # unit -> topological position


def _unit_graph(view: GraphView, matches: list[OpMatch]) -> _Units:
    u = _Units(view, matches)
    owner: dict[str, int] = {}  # node name -> unit
    first_pos: list[int] = []
    reads: list[list[str]] = []
    for i, m in enumerate(matches):
        u.labels.append(f"m:{i}")
        for n in m.nodes:
            owner[n] = i
        first_pos.append(min(view.index[n] for n in m.nodes))
        reads.append(list(m.inputs))
    for node in view.graph.node:
        if node.name in owner:
            continue
        owner[node.name] = len(u.labels)
        u.labels.append(f"n:{node.name}")
        first_pos.append(view.index[node.name])
        reads.append(node_inputs(node))
    n_units = len(u.labels)
    u.succ = [set() for _ in range(n_units)]
    u.pred = [set() for _ in range(n_units)]
    for c, names in enumerate(reads):
        for t in names:
            p_node = view.producer_of(t)
            if p_node is None:
                continue  # graph input, initializer or outer scope
            p = owner[p_node.name]
            if p != c:
                u.succ[p].add(c)
                u.pred[c].add(p)
    # Kahn's algorithm, ties broken by graph position: deterministic
    indeg = [len(p) for p in u.pred]
    heap = [(first_pos[i], i) for i in range(n_units) if indeg[i] == 0]
    heapq.heapify(heap)
    order: list[int] = []
    while heap:
        _, i = heapq.heappop(heap)
        order.append(i)
        for s in u.succ[i]:
            indeg[s] -= 1
            if indeg[s] == 0:
                heapq.heappush(heap, (first_pos[s], s))
    if len(order) != n_units:
        raise ValueError(f"graph '{view.path or 'main'}' has a cycle between matches and nodes; "
                         "matches must not overlap (capability bug)")
    u.topo = [0] * n_units
    for pos, i in enumerate(order):
        u.topo[i] = pos
    return u


class _Groups:
    """Union-find over match units."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))
        self.members: dict[int, set[int]] = {i: {i} for i in range(n)}

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if len(self.members[ra]) < len(self.members[rb]):
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.members[ra] |= self.members.pop(rb)


def _creates_cycle(u: _Units, groups: _Groups, g1: int, g2: int) -> bool:
    """True if a path g1 -> (outside unit) -> ... -> g2 exists in the contracted graph."""
    n_matches = len(u.matches)
    inside = groups.members[g1] | groups.members[g2]
    target = groups.members[g2]
    limit = max(u.topo[i] for i in target)

    def expand(i: int) -> set[int]:
        return groups.members[groups.find(i)] if i < n_matches else {i}

    stack = [s for m in groups.members[g1] for s in u.succ[m] if s not in inside]
    seen: set[int] = set()
    while stack:
        x = stack.pop()
        if x in seen:
            continue
        for y in expand(x):
            if y in seen:
                continue
            seen.add(y)
            for s in u.succ[y]:
                if s in target:
                    return True
                # prune by position only for CPU units: a group is one node of the
                # contracted graph, entered anywhere and left from any member
                if s not in seen and s not in inside and (s < n_matches or u.topo[s] < limit):
                    stack.append(s)
    return False


def _regions_of_graph(view: GraphView, matches: list[OpMatch]) -> list[tuple[int, Region]]:
    u = _unit_graph(view, matches)
    n = len(matches)
    groups = _Groups(n)
    order = sorted(range(n), key=lambda i: u.topo[i])
    changed = True
    while changed:  # a refused merge can become legal once a path's middle joined a group
        changed = False
        for c in order:
            for p in sorted((p for p in u.pred[c] if p < n), key=lambda i: u.topo[i]):
                g1, g2 = groups.find(p), groups.find(c)
                if g1 != g2 and not _creates_cycle(u, groups, g1, g2):
                    groups.union(g1, g2)
                    changed = True
    out: list[tuple[int, Region]] = []
    for members in groups.members.values():
        ordered = sorted(members, key=lambda i: u.topo[i])
        ms = [matches[i] for i in ordered]
        produced = {o for m in ms for nname in m.nodes for o in _node_outputs(view, nname)}
        names = {nname for m in ms for nname in m.nodes}
        inputs: list[str] = []
        for m in ms:
            for t in m.inputs:
                if t not in produced and t not in inputs:
                    inputs.append(t)
        outputs: list[str] = []
        for m in ms:
            for t in m.outputs:
                used_outside = any(c.name not in names for c in view.consumers_of(t))
                if (used_outside or t in view.outputs) and t not in outputs:
                    outputs.append(t)
        region = Region(id=-1, matches=ms, inputs=inputs, outputs=outputs,
                        macs=sum(m.macs for m in ms), graph=view.path)
        out.append((u.topo[ordered[0]], region))
    out.sort(key=lambda x: x[0])
    return out


def _node_outputs(view: GraphView, name: str) -> list[str]:
    node = view.graph.node[view.index[name]]
    return [o for o in node.output if o]


def build_regions(cap: CapabilityResult) -> list[Region]:
    """Regions for every graph (main graph first, then If branches), ids 0..n-1.

    Also fills NodePlacement.region for every matched node in `cap.placements`.
    """
    by_graph: dict[str, list[OpMatch]] = {}
    for m in cap.matches:
        by_graph.setdefault(m.graph, []).append(m)
    regions: list[Region] = []
    for path, view in cap.views.items():
        for _, region in _regions_of_graph(view, by_graph.get(path, [])):
            region.id = len(regions)
            regions.append(region)
    where = {(r.graph, n): r.id for r in regions for n in r.nodes}
    for p in cap.placements:
        if p.placement == "npu":
            p.region = where.get((p.graph, p.name))
    return regions
