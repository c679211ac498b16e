"""Replace every NPU region of a model by ONE custom node that names its program.

Why one node per region (docs/ARCHITECTURE.md, key decision 1): each crossing between ONNX
Runtime and the NPU runtime costs a call and a copy; intermediate tensors of a
region never need to leave the device.

The region node is the compiled model's stored form: the compile cache keeps
the rewritten model with its region nodes (model.onnx) beside the programs,
`extract_programs` reads them from a shipped compiled model, and
ort/epcontext.py turns each into the com.microsoft EPContext node the plugin
library runs (ONNX Runtime never sees a region node itself). The node lives in
domain ``ai.xdna``; its op type spells its arity (``XDNARegion_<inputs>_<outputs>``),
a naming kept from the former Python custom-op bridge (one op type per arity) so
that cache entries and shipped models written before stay readable. The limits
below (1..16 inputs and outputs, float32 outputs) are the envelope the region
route is tested for; a region outside them stays on the CPU with the reason in
the plan. Its attributes name the program, never a path:

    program  the program's reference name (a file name inside the cache entry;
             validated by `check_program_ref`, so a model cannot point the
             session at an arbitrary file)
    digest   sha256 of the program (Program.digest()); checked at load time
    session  empty (once the bridge's session token; kept for the stored form)
    region   the region id (for reports and error messages)

Everything else in the graph stays as it was: nodes outside regions, graph
inputs/outputs, value_info of surviving tensors, and every initializer still
read by a surviving node (an initializer only the region read is dropped: its
quantized copy lives in the program).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import onnx
from onnx import helper

from ..capability.graph import subgraphs as _subgraphs
from ..compile.program import Program
from ..plan import PartitionPlan, Region

DOMAIN = "ai.xdna"
DOMAIN_VERSION = 1
OP_PREFIX = "XDNARegion"
MAX_INPUTS = 16
MAX_OUTPUTS = 16
# Region inputs are passed through with their ONNX type; outputs must be one of
# these (the tested envelope, see the module docstring).
OUTPUT_DTYPES = ("float32",)

_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")


def op_type_for(num_inputs: int, num_outputs: int) -> str:
    """The region op type for a given arity (`XDNARegion_2_1`)."""
    if not 1 <= num_inputs <= MAX_INPUTS:
        raise NotImplementedError(
            f"a region with {num_inputs} inputs is not supported "
            f"(region nodes take 1..{MAX_INPUTS} inputs)")
    if not 1 <= num_outputs <= MAX_OUTPUTS:
        raise NotImplementedError(
            f"a region with {num_outputs} outputs is not supported "
            f"(region nodes take 1..{MAX_OUTPUTS} outputs)")
    return f"{OP_PREFIX}_{num_inputs}_{num_outputs}"


def check_program_ref(ref: str) -> str:
    """A program reference is a plain file name: no directory part, no '..'."""
    if not isinstance(ref, str) or not _REF_RE.match(ref) or ".." in ref:
        raise ValueError(
            f"program reference {ref!r} is not a plain name "
            "(letters, digits, '_', '-', '.'; no path separators, no '..')")
    return ref


def check_digest(digest: str) -> str:
    if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
        raise ValueError(f"program digest {digest!r} is not a sha256 hex string")
    return digest


def program_ref(region_id: int, program: Program) -> str:
    """The reference name of a region's program: stable for identical programs."""
    return f"region{region_id}-{program.digest()[:16]}.xdp"


@dataclass(frozen=True)
class RegionNode:
    """What the rewrite put in place of one region (for the session and tests)."""

    region: int
    node_name: str
    op_type: str
    program: str
    digest: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    graph: str


# -- graph walking --------------------------------------------------------------------
def iter_graphs(graph: onnx.GraphProto, path: str = "") -> Iterator[tuple[str, onnx.GraphProto]]:
    """Every graph in the model with its path ("" for the main graph, then
    "<node name>/<attribute name>" per level, as capability's loader names them)."""
    yield path, graph
    for node in graph.node:
        for attr in node.attribute:
            subs: Iterable[onnx.GraphProto] = ()
            if attr.type == onnx.AttributeProto.GRAPH:
                subs = (attr.g,)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                subs = attr.graphs
            for sub in subs:
                sub_path = f"{path}/{node.name}/{attr.name}" if path else f"{node.name}/{attr.name}"
                yield from iter_graphs(sub, sub_path)


def _names_read(graph: onnx.GraphProto) -> set[str]:
    """Tensor names read by the graph's nodes, including outer-scope reads of
    nested subgraphs (an If branch may read an initializer of its parent)."""
    used: set[str] = set()
    for node in graph.node:
        used.update(i for i in node.input if i)
        for sub in _subgraphs(node):
            used.update(_names_read(sub))
            used.update(o.name for o in sub.output)
    used.update(o.name for o in graph.output)
    return used


def _names_read_nodes(nodes: Iterable[onnx.NodeProto]) -> set[str]:
    used: set[str] = set()
    for node in nodes:
        used.update(i for i in node.input if i)
        for sub in _subgraphs(node):
            used.update(_names_read(sub))
    return used


def region_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """All region custom nodes of a (rewritten) model, in every graph."""
    return [n for _, g in iter_graphs(model.graph) for n in g.node if n.domain == DOMAIN]


def _attr(node: onnx.NodeProto, name: str) -> str:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a).decode() if a.type == onnx.AttributeProto.STRING \
                else str(helper.get_attribute_value(a))
    return ""


def node_program(node: onnx.NodeProto) -> tuple[str, str]:
    """(program reference, digest) of a region node, validated."""
    return check_program_ref(_attr(node, "program")), check_digest(_attr(node, "digest"))


def node_region_program(node: onnx.NodeProto, programs: Mapping[str, Any],
                        error: type[Exception]) -> tuple[str, Any]:
    """The program a region node names, from `programs`, checked against the node's
    digest, as (reference, program); `error` (the caller's error class) when it is
    missing or differs."""
    ref, digest = node_program(node)
    prog = programs.get(ref)
    if prog is None:
        raise error(f"region node {node.name}: program {ref} is not available")
    if prog.digest() != digest:
        raise error(f"region node {node.name}: program {ref} digest mismatch")
    return ref, prog


# -- topological order ----------------------------------------------------------------
def _toposort(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Nodes in an order where producers come first, keeping the original order
    wherever it is already valid (a stable Kahn sort)."""
    nodes = list(graph.node)
    producer: dict[str, int] = {}
    for i, n in enumerate(nodes):
        for o in n.output:
            if o:
                producer[o] = i
    deps: list[set[int]] = []
    for i, n in enumerate(nodes):
        reads = {x for x in n.input if x}
        for sub in _subgraphs(n):
            reads |= _names_read(sub)
        deps.append({producer[x] for x in reads if x in producer and producer[x] != i})
    done: set[int] = set()
    order: list[onnx.NodeProto] = []
    pending = list(range(len(nodes)))
    while pending:
        progressed = False
        rest: list[int] = []
        for i in pending:
            if deps[i] <= done:
                done.add(i)
                order.append(nodes[i])
                progressed = True
            else:
                rest.append(i)
        if not progressed:
            cyc = [nodes[i].name for i in rest[:5]]
            raise ValueError(f"rewrite produced a cycle around nodes {cyc}: the region "
                             "is not convex (regions must never create a cycle)")
        pending = rest
    return order


# -- the rewrite ----------------------------------------------------------------------
def _find_graph(model: onnx.ModelProto, region: Region) -> tuple[str, onnx.GraphProto]:
    wanted = set(region.nodes)
    if not wanted:
        raise ValueError(f"region {region.id} has no nodes")
    for path, g in iter_graphs(model.graph):
        names = {n.name for n in g.node}
        if wanted <= names:
            return path, g
        if wanted & names:
            raise ValueError(f"region {region.id} spans several graphs "
                             f"(nodes {sorted(wanted - names)[:3]} are not in graph {path!r})")
    raise ValueError(f"region {region.id}: nodes {sorted(wanted)[:3]} not found in the model")


def _check_program(region: Region, program: Program) -> None:
    ins = [t.name for t in program.inputs]
    outs = [t.name for t in program.outputs]
    if set(outs) != set(region.outputs):
        raise ValueError(f"region {region.id}: program outputs {outs} differ from the "
                         f"region outputs {list(region.outputs)}")
    if not set(ins) <= set(region.inputs):
        raise ValueError(f"region {region.id}: program reads {sorted(set(ins) - set(region.inputs))}"
                         " which are not region inputs")
    for t in program.outputs:
        if t.dtype not in OUTPUT_DTYPES:
            raise NotImplementedError(
                f"region {region.id}: output {t.name!r} has dtype {t.dtype}; region outputs "
                f"must be one of {OUTPUT_DTYPES}")


def rewrite_model(model: onnx.ModelProto, plan: PartitionPlan,
                  programs: Mapping[int, Program],
                  refs: Mapping[int, str] | None = None) -> tuple[onnx.ModelProto, list[RegionNode]]:
    """A copy of `model` with each NPU region replaced by one region node.

    programs: region id -> compiled Program (regions placed on the NPU without
    a program are an error; CPU-placed regions are left alone).
    refs: region id -> program reference name (default `program_ref`).
    Returns the new model and one RegionNode per replaced region.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    placed = [r for r in plan.regions if r.placement == "npu"]
    missing = [r.id for r in placed if r.id not in programs]
    if missing:
        raise ValueError(f"no compiled program for NPU regions {missing}")
    done: list[RegionNode] = []
    touched: dict[str, onnx.GraphProto] = {}
    candidates: set[str] = set()  # names the removed nodes read
    for region in placed:
        program = programs[region.id]
        _check_program(region, program)
        path, graph = _find_graph(out, region)
        ref = check_program_ref(refs[region.id] if refs and region.id in refs
                                else program_ref(region.id, program))
        digest = program.digest()
        ins = tuple(t.name for t in program.inputs)
        outs = tuple(t.name for t in program.outputs)
        op_type = op_type_for(len(ins), len(outs))
        name = f"xdna_region_{region.id}"
        node = helper.make_node(op_type, list(ins), list(outs), name=name, domain=DOMAIN,
                                program=ref, digest=digest, session="", region=str(region.id))
        removed = set(region.nodes)
        for n in graph.node:
            if n.name in removed:
                candidates.update(x for x in n.input if x)
                for sub in _subgraphs(n):
                    candidates.update(_names_read(sub))
        internal = {o for n in graph.node if n.name in removed for o in n.output} - set(outs)
        kept = [n for n in graph.node if n.name not in removed]
        leaked = internal & (_names_read_nodes(kept) | {o.name for o in graph.output})
        if leaked:
            raise ValueError(f"region {region.id}: tensor(s) {sorted(leaked)[:3]} produced "
                             "inside the region are read outside it but are not region outputs")
        del graph.node[:]
        graph.node.extend(kept)
        graph.node.append(node)
        touched[path] = graph
        done.append(RegionNode(region.id, name, op_type, ref, digest, ins, outs, path))
    for graph in touched.values():
        _drop_constants(graph, candidates)
        _finish_graph(graph)
    _drop_initializers(out.graph, candidates)
    if done and not any(o.domain == DOMAIN for o in out.opset_import):
        out.opset_import.append(helper.make_opsetid(DOMAIN, DOMAIN_VERSION))
    return out, done


def _drop_constants(graph: onnx.GraphProto, candidates: set[str]) -> None:
    """Drop Constant nodes that fed only the removed region nodes (the same rule
    as for initializers: the program holds its own copy of the value)."""
    used = _names_read(graph)
    kept = [n for n in graph.node
            if not (n.op_type == "Constant" and n.domain in ("", "ai.onnx")
                    and all(o in candidates and o not in used for o in n.output))]
    if len(kept) != len(graph.node):
        del graph.node[:]
        graph.node.extend(kept)


def _finish_graph(graph: onnx.GraphProto) -> None:
    """Re-sort nodes; drop value_info of tensors that no longer exist."""
    order = _toposort(graph)
    del graph.node[:]
    graph.node.extend(order)
    used = _names_read(graph)
    produced = {o for n in graph.node for o in n.output} | {i.name for i in graph.input}
    keep_vi = [v for v in graph.value_info if v.name in produced or v.name in used]
    del graph.value_info[:]
    graph.value_info.extend(keep_vi)


def _drop_initializers(graph: onnx.GraphProto, candidates: set[str]) -> None:
    """Drop initializers that only removed region nodes read (in this graph and,
    for outer-scope reads, its ancestors); initializers nobody read before the
    rewrite are left alone (the rest of the graph stays untouched)."""
    for node in graph.node:
        for sub in _subgraphs(node):
            _drop_initializers(sub, candidates)
    used = _names_read(graph)
    dropped = {t.name for t in graph.initializer if t.name in candidates and t.name not in used}
    inits = [t for t in graph.initializer if t.name not in dropped]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    # old IR versions list initializers among the graph inputs too: a dropped
    # initializer must not turn into a required input
    g_inputs = [i for i in graph.input if i.name not in dropped]
    del graph.input[:]
    graph.input.extend(g_inputs)
    sparse = [t for t in graph.sparse_initializer
              if t.values.name not in candidates or t.values.name in used]
    del graph.sparse_initializer[:]
    graph.sparse_initializer.extend(sparse)
