"""regions: maximal connected regions, never a cycle, never across a subgraph."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from synthetic import graphs as ms

from xdna_ep.capability import CapabilityOptions, analyze
from xdna_ep.capability.graph import node_inputs
from xdna_ep.partition import partition
from xdna_ep.regions import build_regions

SHAPE_ONLY = {"Reshape": {1}}


def _graphs(model: onnx.ModelProto) -> dict[str, onnx.GraphProto]:
    out = {"": model.graph}
    for node in model.graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                out[f"{node.name}/{a.name}"] = a.g
    return out


def _contracted_is_dag(graph: onnx.GraphProto, regions: list) -> bool:
    """Independent check: replace each region by one vertex and look for a cycle
    (shape-only Reshape inputs of region nodes are not data edges)."""
    owner = {}
    for r in regions:
        for n in r.nodes:
            owner[n] = f"R{r.id}"
    producer = {o: owner.get(n.name, n.name) for n in graph.node for o in n.output}
    edges: dict[str, set[str]] = {}
    for n in graph.node:
        me = owner.get(n.name, n.name)
        ins = node_inputs(n)
        if n.name in owner:
            ins = [i for k, i in enumerate(n.input) if k not in SHAPE_ONLY.get(n.op_type, ())]
        for t in ins:
            src = producer.get(t)
            if src is not None and src != me:
                edges.setdefault(src, set()).add(me)
    state: dict[str, int] = {}

    def visit(v: str) -> bool:
        state[v] = 1
        for w in edges.get(v, ()):
            if state.get(w) == 1 or (w not in state and not visit(w)):
                return False
        state[v] = 2
        return True

    return all(visit(v) for v in list(edges) if v not in state)


MODELS = {
    "encoder": lambda: ms.encoder_layer(layers=2),
    "encoder_front_end": lambda: ms.encoder_layer(front_end=True),
    "encoder_dynamic_shapes": lambda: ms.encoder_layer(dynamic_shapes=True),
    "decoder_with_past": ms.decoder_with_past_layer,
    "merged_decoder": ms.merged_decoder,
    "fused": ms.fused_encoder_layer,
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_regions_are_acyclic_and_inside_one_graph(name: str) -> None:
    model = MODELS[name]()
    res = analyze(model)
    regions = build_regions(res)
    assert regions
    graphs = _graphs(model)
    for path, g in graphs.items():
        mine = [r for r in regions if r.graph == path]
        names = {n.name for n in g.node}
        for r in mine:
            assert set(r.nodes) <= names  # never crosses a subgraph boundary
        assert _contracted_is_dag(g, mine), f"{name}:{path}"
    # every match is in exactly one region; ids are 0..n-1
    assert sorted(n for r in regions for n in r.nodes) == sorted(
        n for m in res.matches for n in m.nodes)
    assert [r.id for r in regions] == list(range(len(regions)))
    # placements point at the region that holds the node
    where = {(r.graph, n): r.id for r in regions for n in r.nodes}
    for p in res.placements:
        assert p.region == where.get((p.graph, p.name))


def test_encoder_layers_form_one_region() -> None:
    model = ms.encoder_layer(layers=2)
    regions = build_regions(analyze(model))
    assert len(regions) == 1
    (r,) = regions
    assert r.inputs == ["hidden_states"]
    final_ln = next(n for n in model.graph.node if n.name == "output_id").input[0]
    assert r.outputs == [final_ln]


def test_dynamic_reshape_shapes_do_not_split_the_region() -> None:
    regions = build_regions(analyze(ms.encoder_layer(dynamic_shapes=True)))
    assert len(regions) == 1


def test_front_end_joins_the_layers_through_the_position_add() -> None:
    """Transpose + position Add are a region node, so the conv front end and the
    layers are one region (before, the CPU Transpose/Add split them in two)."""
    regions = build_regions(analyze(ms.encoder_layer(front_end=True)))
    assert [sorted({m.kind for m in r.matches}) for r in regions] == [
        ["add", "attention", "conv1d", "gelu", "layernorm", "matmul"]]
    no_pos = build_regions(analyze(ms.encoder_layer(front_end=True),
                                   CapabilityOptions(exclude_op_types=frozenset({"Transpose"}))))
    assert sorted({m.kind for m in no_pos[0].matches}) == ["conv1d", "gelu"]  # own region


def test_kv_cache_concat_splits_projection_from_attention() -> None:
    res = analyze(ms.decoder_with_past_layer())
    regions = build_regions(res)
    assert len(regions) == 2
    first, second = regions
    assert [m.kind for m in first.matches] == ["layernorm", "matmul", "matmul", "matmul"]
    assert second.matches[0].kind == "attention"
    assert "present.0.decoder.key" in second.inputs  # read back from the CPU Concat


def _cycle_model(direct_edge: bool) -> onnx.ModelProto:
    """y = x @ W; z = Relu(y) (CPU); out = y + z (residual add).

    Merging the MatMul and the Add would put Relu both after and before the
    region: a cycle. Without Relu (out = y + y2 with y2 = x @ W2) they merge."""
    w = numpy_helper.from_array(np.ones((8, 8), np.float32), "W")
    w2 = numpy_helper.from_array(np.ones((8, 8), np.float32), "W2")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")]
    if direct_edge:
        nodes.append(helper.make_node("Relu", ["y"], ["z"], name="relu"))
    else:
        nodes.append(helper.make_node("MatMul", ["x", "W2"], ["z"], name="mm2"))
    nodes.append(helper.make_node("Add", ["y", "z"], ["out"], name="add"))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [4, 8])],
                          [helper.make_tensor_value_info("out", 1, [4, 8])], [w, w2])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_merge_that_would_create_a_cycle_is_refused() -> None:
    regions = build_regions(analyze(_cycle_model(direct_edge=True)))
    assert [r.nodes for r in regions] == [["mm"], ["add"]]
    assert regions[0].outputs == ["y"] and regions[1].inputs == ["y", "z"]
    regions = build_regions(analyze(_cycle_model(direct_edge=False)))
    assert len(regions) == 1 and sorted(regions[0].nodes) == ["add", "mm", "mm2"]


def test_region_ids_are_deterministic() -> None:
    a = partition(ms.merged_decoder(), use_cost_model=False)
    b = partition(ms.merged_decoder(), use_cost_model=False)
    assert [(r.id, r.graph, r.nodes) for r in a.regions] == [
        (r.id, r.graph, r.nodes) for r in b.regions]
    graphs = [r.graph for r in a.regions]
    assert len({g for g in graphs}) == 2
    assert graphs == sorted(graphs, key=graphs.index)  # each graph's regions are contiguous


def _random_model(seed: int, n: int = 14) -> onnx.ModelProto:
    """A random DAG of MatMul (NPU), Relu (CPU) and residual Add (NPU) nodes."""
    rng = np.random.default_rng(seed)
    tensors, nodes, inits = ["x"], [], []
    for i in range(n):
        kind = rng.choice(["matmul", "relu", "add"], p=[0.4, 0.3, 0.3])
        a = str(rng.choice(tensors))
        out = f"t{i}"
        if kind == "matmul":
            w = f"w{i}"
            inits.append(numpy_helper.from_array(
                rng.standard_normal((8, 8)).astype(np.float32) * 0.3, w))
            nodes.append(helper.make_node("MatMul", [a, w], [out], name=f"mm{i}"))
        elif kind == "relu":
            nodes.append(helper.make_node("Relu", [a], [out], name=f"relu{i}"))
        else:
            b = str(rng.choice(tensors))
            nodes.append(helper.make_node("Add", [a, b], [out], name=f"add{i}"))
        tensors.append(out)
    g = helper.make_graph(nodes, "random", [helper.make_tensor_value_info("x", 1, [4, 8])],
                          [helper.make_tensor_value_info(tensors[-1], 1, [4, 8])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


class _R:
    def __init__(self, rid: int, nodes: list[str]) -> None:
        self.id, self.nodes = rid, nodes


@pytest.mark.parametrize("seed", range(40))
def test_random_graphs_acyclic_and_maximal(seed: int) -> None:
    model = _random_model(seed)
    regions = build_regions(analyze(model))
    assert _contracted_is_dag(model.graph, regions)
    # maximal: merging any two regions joined by a direct edge would create a cycle
    owner = {n: r.id for r in regions for n in r.nodes}
    producer = {o: n.name for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        for t in node.input:
            src = producer.get(t)
            a, b = owner.get(src), owner.get(node.name)
            if a is None or b is None or a == b:
                continue
            merged = [_R(r.id, r.nodes) for r in regions if r.id not in (a, b)]
            merged.append(_R(a, [n for r in regions if r.id in (a, b) for n in r.nodes]))
            assert not _contracted_is_dag(model.graph, merged), (seed, a, b)
