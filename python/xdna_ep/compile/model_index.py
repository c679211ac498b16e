"""Read-only lookups into an ONNX model that lowering needs.

Why a separate class: constants can be initializers of the main graph, of an
If branch, or outputs of Constant nodes; tensor types come from shape
inference. Lowering should ask one object and get a clear error, not walk
protobufs itself.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import onnx
from onnx import numpy_helper

from ..capability.graph import subgraphs
from ..quantize.weights import CorruptWeightError, WeightError, check_float_weight


class NotLowerable(Exception):
    """The region cannot become an NPU program; `reason` goes into the report."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _graphs(g: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """g and every subgraph inside it (If branches, Loop/Scan bodies), depth first."""
    yield g
    for n in g.node:
        for sub in subgraphs(n):
            yield from _graphs(sub)


class ModelIndex:
    """Constants, producers/consumers and float32-ness of tensors of one model."""

    def __init__(self, model: onnx.ModelProto) -> None:
        if not isinstance(model, onnx.ModelProto):
            raise TypeError(f"model must be an onnx.ModelProto, got {type(model).__name__}")
        self.model = model
        self._init: dict[str, onnx.TensorProto] = {}
        self._const_nodes: dict[str, onnx.NodeProto] = {}
        self._producer: dict[str, onnx.NodeProto] = {}  # for weights that fold (folding.py)
        self._folded: dict[str, np.ndarray | None] = {}
        self.types: dict[str, onnx.TypeProto] = {}
        self.consumers: dict[str, list[str]] = {}
        self.graph_outputs: set[str] = {o.name for o in model.graph.output}
        try:
            inferred = onnx.shape_inference.infer_shapes(model)
        except Exception:  # large or custom-op models: fall back to declared infos
            inferred = model
        for g in _graphs(inferred.graph):
            for vi in (*g.input, *g.output, *g.value_info):
                self.types.setdefault(vi.name, vi.type)
        self._fill_contrib_shapes(model)
        for g in _graphs(model.graph):
            for t in g.initializer:
                self._init.setdefault(t.name, t)
            for n in g.node:
                if n.op_type == "Constant" and n.output:
                    self._const_nodes.setdefault(n.output[0], n)
                for o in n.output:
                    if o:
                        self._producer.setdefault(o, n)
                for i in n.input:
                    if i:
                        self.consumers.setdefault(i, []).append(n.name)

    def _fill_contrib_shapes(self, model: onnx.ModelProto) -> None:
        """Shapes onnx's inference leaves unknown behind com.microsoft ops (Gelu,
        SkipLayerNormalization: ONNX Runtime's transformer optimizer output), from
        onnxruntime's symbolic shape inference, as capability/ sees them."""
        if not any(n.domain == "com.microsoft" for n in model.graph.node):
            return
        from ..capability.shapes import symbolic_shapes

        for vi in symbolic_shapes(model):
            t = self.types.get(vi.name)
            if t is None or not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
                self.types[vi.name] = vi.type

    def is_constant(self, name: str) -> bool:
        return name in self._init or name in self._const_nodes

    def _static_shape(self, name: str) -> tuple[int, ...] | None:
        """The shape of `name` if every dim is a number in the model itself (a
        symbolic dim is never guessed here)."""
        shape = self.shape(name)
        if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
            return None
        return tuple(int(d) for d in shape)  # type: ignore[arg-type]

    def is_foldable(self, name: str) -> bool:
        """A constant, or a tensor that constant-folds from constants (folding.py)."""
        return self._constant_or_none(name) is not None

    def _constant_or_none(self, name: str) -> np.ndarray | None:
        try:
            return self.constant(name)
        except NotLowerable:
            return None

    def constant(self, name: str) -> np.ndarray:
        """The value of initializer/Constant `name`; NotLowerable if it is not constant."""
        if name in self._init:
            return numpy_helper.to_array(self._init[name])
        if name in self._const_nodes:
            for a in self._const_nodes[name].attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
            raise NotLowerable(f"Constant node for {name!r} has no tensor 'value'")
        if name not in self._folded:
            from ..capability.folding import fold

            opset = next((o.version for o in self.model.opset_import
                          if o.domain in ("", "ai.onnx")), 13)
            self._folded[name] = fold(name, self._producer.get, self._constant_or_none, opset,
                                      shape_of=self._static_shape)
        if self._folded[name] is not None:
            return self._folded[name]  # type: ignore[return-value]
        raise NotLowerable(f"{name!r} is not a constant (initializer or Constant): the NPU "
                           f"program needs constant weights")

    def float_weight(self, name: str) -> np.ndarray:
        """A constant validated as a finite, non-empty float32 array."""
        try:
            return check_float_weight(self.constant(name), name)
        except CorruptWeightError:
            raise  # compile_plan keeps the whole model on the CPU for these
        except WeightError as e:
            raise NotLowerable(str(e)) from None

    def elem_type(self, name: str) -> int | None:
        t = self.types.get(name)
        if t is None or not t.HasField("tensor_type"):
            return None
        return t.tensor_type.elem_type

    def shape(self, name: str) -> tuple[int | str, ...]:
        """Static dims as ints, symbolic/unknown ones as strings ("?" if unnamed)."""
        t = self.types.get(name)
        if t is None or not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
            return ()
        return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                     for d in t.tensor_type.shape.dim)

    def boundary_shape(self, name: str) -> tuple[int | str, ...]:
        """shape() of a region input, which must be known: a Program records each
        input's rank and checks it at every run, so an unknown shape (recorded as
        rank 0) would make every run fail; better a CPU placement now."""
        t = self.types.get(name)
        if t is None or not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
            raise NotLowerable(f"the shape of region input {name!r} is unknown "
                               f"(shape inference could not determine it)")
        return self.shape(name)
