"""capability: decide, for every node of the model, whether the NPU takes it.

Output: the recognised OpMatch objects and one NodePlacement per node (main
graph and If branches), placed or not, with the reason. Nothing here changes
the model; regions/ groups the matches and cost.py may still move a region
back to CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx

from ..plan import NodePlacement, OpMatch
from .graph import GraphView, named_subgraphs
from .loader import ensure_node_names, validate_model
from .matching import dtype_problem, node_macs, shape_problem
from .reasons import cpu_reason, foreign_domain
from .shapes import infer_shapes

MIN_OPSET = 13
MAX_OPSET = 21


@dataclass(frozen=True)
class CapabilityOptions:
    """What the user may restrict.

    exclude_op_types / exclude_nodes: never place these (a match containing one
    is rejected). disable_kinds: kernel families to leave on CPU ("attention",
    ...). dims: sizes for symbolic input dims (see shapes.WHISPER_DIM_DEFAULTS).
    """

    exclude_op_types: frozenset[str] = frozenset()
    exclude_nodes: frozenset[str] = frozenset()
    disable_kinds: frozenset[str] = frozenset()
    dims: dict[str, int] | None = None

    def __post_init__(self) -> None:
        from ..ops import registry as op_registry  # at call time: ops/ imports capability/

        known = op_registry.kinds()
        unknown = set(self.disable_kinds) - set(known)
        if unknown:
            raise ValueError(f"disable_kinds: unknown kernel kinds {sorted(unknown)}; "
                             f"known: {list(known)}")


@dataclass
class CapabilityResult:
    matches: list[OpMatch]
    placements: list[NodePlacement]  # every node: main graph first, then If branches
    views: dict[str, GraphView]  # graph path -> view ("" = main graph)
    opset: int
    total_macs: int
    notes: list[str] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    dim_bindings: dict[str, int] = field(default_factory=dict)
    dims_guessed: list[str] = field(default_factory=list)  # bound to 1 by no rule


def model_opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 0


def _views(model: onnx.ModelProto, opset: int) -> dict[str, GraphView]:
    """Views of the main graph and every If branch (recursively), parents first."""
    views: dict[str, GraphView] = {}

    def visit(graph: onnx.GraphProto, path: str, parent: GraphView | None) -> None:
        view = GraphView.build(graph, path, parent, opset)
        views[path] = view
        for node in graph.node:
            if node.op_type != "If":
                continue
            for attr_name, sub in named_subgraphs(node):
                visit(sub, f"{node.name}/{attr_name}", view)

    visit(model.graph, "", None)
    return views


def _excluded(node: onnx.NodeProto, options: CapabilityOptions) -> bool:
    return node.op_type in options.exclude_op_types or node.name in options.exclude_nodes


def _all_nodes(model: onnx.ModelProto) -> list[tuple[str, onnx.NodeProto, bool]]:
    """(graph path, node, inside a Loop/Scan body) for every node in the model."""
    out: list[tuple[str, onnx.NodeProto, bool]] = []

    def visit(graph: onnx.GraphProto, path: str, in_loop: bool) -> None:
        for node in graph.node:
            out.append((path, node, in_loop))
        for node in graph.node:
            for attr_name, sub in named_subgraphs(node):
                visit(sub, f"{node.name}/{attr_name}", in_loop or node.op_type != "If")

    visit(model.graph, "", False)
    return out


def analyze(model: onnx.ModelProto, options: CapabilityOptions | None = None) -> CapabilityResult:
    """Run capability on `model` (node names are made unique in place first)."""
    from ..ops import registry as op_registry  # at call time: ops/ imports capability/
    from ..ops.attention_masks import key_dim_names

    options = options or CapabilityOptions()
    validate_model(model)
    ensure_node_names(model)
    opset = model_opset(model)
    shaped = infer_shapes(model, options.dims)
    views = _views(shaped.model, opset)
    # a [B] / [2B] attention mask needs the name of a symbolic key length
    views[""].dim_names = key_dim_names(model)
    if not shaped.bindings:  # every input dim is fixed: Shape nodes may fold (folding.py)
        for v in views.values():
            v.static_shapes = True
            v.folded.clear()
    notes = list(shaped.notes)
    fallbacks: list[str] = []
    opset_ok = MIN_OPSET <= opset <= MAX_OPSET
    if not opset_ok:
        fallbacks.append(f"model opset {opset} is outside the supported range "
                         f"{MIN_OPSET}-{MAX_OPSET}: every node stays on CPU")

    matches: list[OpMatch] = []
    claimed: dict[tuple[str, str], OpMatch] = {}
    if opset_ok:
        for path, view in views.items():
            nodes = list(view.graph.node)
            for kind, matcher in op_registry.matchers():  # the op families, claiming order
                if kind in options.disable_kinds:
                    continue
                for node in nodes:
                    if (path, node.name) in claimed:
                        continue
                    m = matcher(view, node)
                    if m is None or any((path, n) in claimed for n in m.nodes):
                        continue
                    by_name = {n.name: n for n in nodes}
                    members = [by_name[n] for n in m.nodes]
                    if any(_excluded(n, options) or foreign_domain(n) or dtype_problem(view, n)
                           or shape_problem(view, n) for n in members):
                        continue
                    matches.append(m)
                    for n in m.nodes:
                        claimed[(path, n)] = m
    # deterministic order: graph order of views, then position of the first node
    order = {p: i for i, p in enumerate(views)}
    matches.sort(key=lambda m: (order[m.graph], views[m.graph].index[m.nodes[0]]))

    kv_concats: dict[tuple[str, str], str] = {}
    for m in matches:
        for role in ("key", "value"):
            cat = getattr(m.attrs, f"kv_concat_{role}", None)
            if cat:
                kv_concats[(m.graph, cat)] = role

    placements: list[NodePlacement] = []
    total_macs = 0
    for path, node, in_loop in _all_nodes(shaped.model):
        view = views.get(path)
        macs = node_macs(view, node) if view is not None else 0
        total_macs += macs
        m = claimed.get((path, node.name))
        if m is not None:
            reason = f"{m.kind} ({m.pattern})"
            placements.append(NodePlacement(node.name, node.op_type, "npu", reason,
                                            pattern=m.pattern, macs=macs, graph=path))
            continue
        if in_loop or view is None:
            reason = "control flow: inside a Loop/Scan body (only If branches are partitioned)"
        elif not opset_ok:
            reason = f"opset: model opset {opset} outside supported {MIN_OPSET}-{MAX_OPSET}"
        elif _excluded(node, options):
            reason = "excluded: by option (exclude_op_types / exclude_nodes)"
        elif (path, node.name) in kv_concats:
            reason = ("unsupported op: KV-cache Concat (its output is the present "
                      f"{kv_concats[(path, node.name)]} graph output) runs on CPU; the "
                      "attention region reads its output")
        else:
            reason = cpu_reason(view, node)
        placements.append(NodePlacement(node.name, node.op_type, "cpu", reason,
                                        macs=macs, graph=path))
    return CapabilityResult(matches, placements, views, opset, total_macs, notes, fallbacks,
                            dict(shaped.bindings), list(shaped.guessed))
