"""Weights that constant-fold: a Transpose, Cast, Reshape, Gather, Squeeze or
Unsqueeze whose data inputs are all constants (a tied LM head is Transpose(wte);
torch's dynamo export reads position embeddings as Gather(table, arange); some
exporters Cast or Reshape an initializer on the way to a MatMul).

The matchers treat such a tensor as a constant (capability/graph.py) and the
lowering reads its folded value (compile/model_index.py); the node itself stays
a CPU node whose output the rewritten graph no longer reads.

Why onnx.reference: it implements these ops' exact ONNX semantics (negative
perms, allowzero, Cast rounding), so the folded value is what ONNX Runtime
would compute; a hand-written numpy copy of each op would be a second spec.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

FOLDABLE = frozenset({"Transpose", "Cast", "Reshape", "Gather", "Squeeze", "Unsqueeze",
                      "Identity", "Shape", "Concat", "Slice", "Sqrt", "Div", "Mul"})
MAX_FOLD_DEPTH = 8


def fold_node(node: onnx.NodeProto, values: Sequence[np.ndarray | None],
              opset: int) -> np.ndarray | None:
    """The output of one foldable node on constant inputs (None for an absent
    optional input), or None if the op is not foldable or evaluation fails."""
    from onnx.reference import ReferenceEvaluator

    if node.op_type not in FOLDABLE or node.domain not in ("", "ai.onnx") or not node.output:
        return None
    names = [f"in{i}" if v is not None else "" for i, v in enumerate(values)]
    inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
              for n, v in zip(names, values, strict=True) if n and v is not None]
    one = helper.make_node(node.op_type, names, ["out"], domain=node.domain)
    one.attribute.extend(node.attribute)
    graph = helper.make_graph([one], "fold", inputs,
                              [helper.make_tensor_value_info("out", 0, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", max(opset, 13))])
    try:
        out = ReferenceEvaluator(model).run(
            None, {n: v for n, v in zip(names, values, strict=True) if n and v is not None})
    except Exception:  # noqa: BLE001 - an input the op refuses: not a constant then
        return None
    return np.asarray(out[0])


def _shape_value(node: onnx.NodeProto, shape: tuple[int, ...]) -> np.ndarray:
    """Shape's output (with its start/end attributes) for a static input shape."""
    start = end = None
    for a in node.attribute:
        if a.name == "start":
            start = int(a.i)
        elif a.name == "end":
            end = int(a.i)
    return np.asarray(shape[slice(start, end)], dtype=np.int64)


def fold(name: str, producer: Callable[[str], onnx.NodeProto | None],
         constant: Callable[[str], np.ndarray | None], opset: int,
         depth: int = 0,
         shape_of: Callable[[str], tuple[int, ...] | None] | None = None) -> np.ndarray | None:
    """The value of `name` if it is a foldable node's output over constants
    (recursively, up to MAX_FOLD_DEPTH nodes deep), else None. A Shape folds when
    `shape_of` gives its input's static shape (callers pass it only for models
    whose input dims are all fixed: a shape bound to a guessed size must never
    be baked in)."""
    node = producer(name)
    if node is None or node.op_type not in FOLDABLE or depth >= MAX_FOLD_DEPTH:
        return None
    if node.op_type == "Shape":
        static = shape_of(node.input[0]) if shape_of is not None else None
        return None if static is None else _shape_value(node, static)
    values: list[np.ndarray | None] = []
    for i in node.input:
        if not i:
            values.append(None)
            continue
        v = constant(i)
        if v is None:
            v = fold(i, producer, constant, opset, depth + 1, shape_of)
        if v is None:
            return None
        values.append(v)
    out = fold_node(node, values, opset)
    if out is None or node.output[0] != name:
        return None
    return out


def to_tensor(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(value, order="C"), name)  # keeps 0-d (ascontiguousarray would not)
