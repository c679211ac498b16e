"""An indexed, read-only view of one ONNX graph (main graph or an If branch).

Why hand-written and not onnxscript's rewriter: capability only *tags* nodes
(it must never change the graph, and it has to report a reason for every node
that is not taken), it needs subgraph scoping (If branches read initializers
of the outer graph), and the patterns are anchored walks with many orderings
(Erf/tanh Gelu, decomposed LayerNorm, Optimum attention with or without a
KV-cache Concat) whose facts (epsilon, scale, heads, layouts) we collect on
the way. A producer/consumer index over the protobuf does this in a few lines
per pattern and keeps the exact node names the rewrite stage needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

FLOAT = onnx.TensorProto.FLOAT
DTYPE_NAMES = {v: k.lower() for k, v in onnx.TensorProto.DataType.items()}

Dim = int | str | None


@dataclass
class TensorInfo:
    """What shape inference (or the graph) says about one tensor."""

    dtype: int = 0  # onnx.TensorProto.DataType, 0 = unknown
    shape: tuple[Dim, ...] | None = None  # None = rank unknown

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES.get(self.dtype, "unknown")

    def concrete(self) -> tuple[int, ...] | None:
        if self.shape is None or any(not isinstance(d, int) for d in self.shape):
            return None
        return tuple(int(d) for d in self.shape)  # type: ignore[arg-type]


def _info_from_type(tp: onnx.TypeProto) -> TensorInfo:
    if not tp.HasField("tensor_type"):
        return TensorInfo()
    tt = tp.tensor_type
    shape: tuple[Dim, ...] | None = None
    if tt.HasField("shape"):
        dims: list[Dim] = []
        for d in tt.shape.dim:
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            elif d.HasField("dim_param"):
                dims.append(d.dim_param)
            else:
                dims.append(None)
        shape = tuple(dims)
    return TensorInfo(tt.elem_type, shape)


@dataclass
class GraphView:
    """Producer/consumer index of one graph, with outer-scope lookups."""

    graph: onnx.GraphProto
    path: str = ""  # "" for the main graph, "<If node>/then_branch" for branches
    parent: GraphView | None = None
    opset: int = 0
    producer: dict[str, onnx.NodeProto] = field(default_factory=dict)
    consumers: dict[str, list[onnx.NodeProto]] = field(default_factory=dict)
    index: dict[str, int] = field(default_factory=dict)  # node name -> position
    initializers: dict[str, onnx.TensorProto] = field(default_factory=dict)
    infos: dict[str, TensorInfo] = field(default_factory=dict)
    outputs: set[str] = field(default_factory=set)
    graph_inputs: set[str] = field(default_factory=set)
    folded: dict[str, onnx.TensorProto | None] = field(default_factory=dict)
    static_shapes: bool = False  # every input dim fixed in the model: Shape may fold
    # tensor -> shape with its symbolic dims as names (the `infos` have them bound to
    # sizes); filled only for what a matcher asks about: ops/attention_masks.py
    dim_names: dict[str, tuple[int | str | None, ...]] = field(default_factory=dict)

    @classmethod
    def build(
        cls, graph: onnx.GraphProto, path: str = "", parent: GraphView | None = None,
        opset: int = 0,
    ) -> GraphView:
        view = cls(graph=graph, path=path, parent=parent, opset=opset)
        for init in graph.initializer:
            view.initializers[init.name] = init
            view.infos[init.name] = TensorInfo(init.data_type, tuple(int(d) for d in init.dims))
        for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
            if vi.name not in view.infos or view.infos[vi.name].shape is None:
                view.infos[vi.name] = _info_from_type(vi.type)
        view.outputs = {o.name for o in graph.output}
        view.graph_inputs = {i.name for i in graph.input if i.name not in view.initializers}
        for i, node in enumerate(graph.node):
            view.index[node.name] = i
            for out in node.output:
                if out:
                    view.producer[out] = node
            for inp in node_inputs(node):
                view.consumers.setdefault(inp, []).append(node)
        return view

    # ---- lookups that follow the scope chain -------------------------------------------
    def info(self, name: str) -> TensorInfo:
        v: GraphView | None = self
        while v is not None:
            if name in v.infos:
                return v.infos[name]
            v = v.parent
        return TensorInfo()

    def resolve_const(self, name: str) -> str | None:
        """The initializer / Constant output that `name` is (following Identity
        chains, which exporters emit for de-duplicated or tied weights), else None."""
        v: GraphView | None = self
        for _ in range(16):
            if v is None:
                return None
            if name in v.initializers:
                return name
            node = v.producer.get(name)
            if node is not None and node.op_type == "Constant":
                return name
            if node is not None and node.op_type == "Identity" and node.input:
                name = node.input[0]
                v = self  # the Identity's input may come from any enclosing scope
                continue
            if node is not None and v.folded_value(name) is not None:
                return name  # a Transpose/Cast/Reshape/Gather of constants (folding.py)
            if node is not None or name in v.graph_inputs:
                return None  # computed here or fed at run time: not constant
            v = v.parent
        return None

    def initializer(self, name: str) -> onnx.TensorProto | None:
        """The constant tensor behind `name` (initializer, Constant, Identity of one)."""
        real = self.resolve_const(name) if name else None
        if real is None:
            return None
        v: GraphView | None = self
        while v is not None:
            if real in v.initializers:
                return v.initializers[real]
            if real in v.folded and v.folded[real] is not None:
                return v.folded[real]
            node = v.producer.get(real)
            if node is not None and node.op_type == "Constant":
                for a in node.attribute:
                    if a.name == "value":
                        return a.t
                return None
            v = v.parent
        return None

    def folded_value(self, name: str) -> onnx.TensorProto | None:
        """`name`'s value if its producer here constant-folds (capability/folding.py),
        cached per tensor (None: it does not)."""
        if name not in self.folded:
            from .folding import FOLDABLE, fold, to_tensor

            # None while folding: a cycle through this tensor (a malformed graph)
            # then reads "not constant" instead of recursing without end
            self.folded[name] = None
            node = self.producer.get(name)
            value = None
            if node is not None and node.op_type in FOLDABLE and node.op_type != "Identity":
                shape_of = (lambda t: self.info(t).concrete()) if self.static_shapes else None
                value = fold(name, self.producer.get, self.const_value, self.opset,
                             shape_of=shape_of)
            self.folded[name] = None if value is None else to_tensor(name, value)
        return self.folded[name]

    def is_const(self, name: str) -> bool:
        return bool(name) and self.initializer(name) is not None

    def const_value(self, name: str) -> np.ndarray | None:
        t = self.initializer(name)
        if t is None:
            return None
        try:
            return numpy_helper.to_array(t)
        except Exception:  # external data not loaded, odd types: treat as unknown
            return None

    def scalar(self, name: str) -> float | None:
        """The value of a constant with exactly one element, else None."""
        v = self.const_value(name)
        if v is None or v.size != 1 or v.dtype.kind not in "fiu":
            return None
        return float(v.reshape(-1)[0])

    def consumers_of(self, name: str) -> list[onnx.NodeProto]:
        return self.consumers.get(name, [])

    def shape_reads(self, name: str) -> list[onnx.NodeProto]:
        """Shape nodes reading `name` whose output folds (static shapes only)."""
        return [c for c in self.consumers_of(name) if c.op_type == "Shape"
                and self.static_shapes and self.folded_value(c.output[0]) is not None]

    def data_consumers(self, name: str) -> list[onnx.NodeProto]:
        """Consumers of `name` other than the Shape reads that fold."""
        reads = {c.name for c in self.shape_reads(name)}
        return [c for c in self.consumers_of(name) if c.name not in reads]

    def fold_chain(self, shape_node: onnx.NodeProto) -> list[onnx.NodeProto]:
        """`shape_node` and the foldable nodes downstream of it (the arithmetic on a
        folded shape up to the non-foldable readers)."""
        from .folding import FOLDABLE

        chain = [shape_node]
        todo = [shape_node]
        seen = {shape_node.name}
        while todo:
            n = todo.pop()
            for o in n.output:
                for c in self.consumers_of(o):
                    if c.name in seen or c.op_type not in FOLDABLE or c.op_type == "Shape":
                        continue
                    if not c.output or self.folded_value(c.output[0]) is None:
                        continue
                    seen.add(c.name)
                    chain.append(c)
                    todo.append(c)
        return chain

    def single_consumer(self, name: str) -> onnx.NodeProto | None:
        """The only consumer of `name` if it is not also a graph output."""
        cons = self.consumers_of(name)
        if len(cons) != 1 or name in self.outputs:
            return None
        return cons[0]

    def producer_of(self, name: str) -> onnx.NodeProto | None:
        return self.producer.get(name)


def node_inputs(node: onnx.NodeProto) -> list[str]:
    """Explicit inputs plus the outer-scope names its subgraphs read.

    An If node depends on every outer tensor its branches use; ignoring that
    would let a region contraction create a hidden cycle through the If.
    """
    names = [i for i in node.input if i]
    for sub in subgraphs(node):
        for name in implicit_inputs(sub):
            if name not in names:
                names.append(name)
    return names


def subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            yield from attr.graphs


def named_subgraphs(node: onnx.NodeProto) -> Iterator[tuple[str, onnx.GraphProto]]:
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.name, attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            for j, g in enumerate(attr.graphs):
                yield f"{attr.name}{j}", g


def implicit_inputs(graph: onnx.GraphProto) -> list[str]:
    """Names a subgraph reads from enclosing scopes."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    used: list[str] = []
    for node in graph.node:
        for name in node_inputs(node):
            if name not in defined and name not in used:
                used.append(name)
        defined.update(o for o in node.output if o)
    for o in graph.output:
        if o.name not in defined and o.name not in used:
            used.append(o.name)
    return used


def attr(node: onnx.NodeProto, name: str, default=None):
    """An attribute's Python value, or `default`."""
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def numel(shape: tuple[int, ...] | None) -> int:
    if shape is None:
        return 0
    return int(np.prod(shape, dtype=np.int64)) if shape else 1
