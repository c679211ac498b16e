"""Helpers every op family's matcher shares (the matchers themselves live in
xdna_ep/ops/<family>.py): building an OpMatch from a node set, per-node MAC
counts, and the dtype/shape checks a match must pass."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np
import onnx

from ..ops.base import MatchAttrs
from ..plan import OpMatch
from .graph import FLOAT, GraphView, attr, numel

# inputs that carry a shape, not data: the NPU program derives shapes itself,
# so these edges are not data dependencies of a match (and must not make a
# region look cyclic through the CPU Shape/Gather/Concat chain that feeds them).
SHAPE_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,),
    "Expand": (1,),
    "Unsqueeze": (1,),
    "Squeeze": (1,),
    "ReduceMean": (1,),
    "Slice": (1, 2, 3, 4),
}

# attrs that name constant tensors (resolved to the initializer they come from)
CONST_ATTRS = ("weight", "bias", "gamma", "beta", "table")

BAD_FLOAT_TYPES = {
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.BFLOAT16: "bfloat16",
}


def data_inputs(node: onnx.NodeProto) -> list[str]:
    skip = SHAPE_INPUTS.get(node.op_type, ())
    return [n for i, n in enumerate(node.input) if n and i not in skip]


def dtype_problem(view: GraphView, node: onnx.NodeProto) -> str | None:
    """Reason string if a tensor of `node` is float16/float64/bfloat16."""
    for name in list(node.input) + list(node.output):
        if not name:
            continue
        dt = view.info(name).dtype
        if dt in BAD_FLOAT_TYPES:
            return (f"dtype {BAD_FLOAT_TYPES[dt]} (tensor '{name}'): NPU kernels take "
                    "float32 activations and weights")
    return None


def shape_problem(view: GraphView, node: onnx.NodeProto) -> str | None:
    """Reason string if a tensor of `node` is known to have a zero-size dim."""
    for name in list(node.input) + list(node.output):
        if not name:
            continue
        shape = view.info(name).shape
        if shape is not None and any(d == 0 for d in shape):
            return f"shape: zero-size tensor '{name}' {list(shape)}"
    return None


def node_macs(view: GraphView, node: onnx.NodeProto) -> int:
    """Multiply-accumulates of one node from inferred shapes (0 if unknown)."""
    op = node.op_type
    try:
        if op == "MatMul":
            a = view.info(node.input[0]).concrete()
            b = view.info(node.input[1]).concrete()
            if not a or not b or len(b) < 2:
                return 0
            out = view.info(node.output[0]).concrete()
            k = a[-1]
            n = b[-1]
            if out:
                return numel(out) * k
            return numel(a[:-1]) * k * n
        if op == "Gemm":
            a = view.info(node.input[0]).concrete()
            b = view.info(node.input[1]).concrete()
            if not a or not b:
                return 0
            m, k = (a[1], a[0]) if attr(node, "transA", 0) else (a[0], a[1])
            n = b[0] if attr(node, "transB", 0) else b[1]
            return m * k * n
        if op == "Conv":
            w = view.info(node.input[1]).concrete()
            y = view.info(node.output[0]).concrete()
            if not w or not y:
                return 0
            return numel(y) * numel(w[1:])
        if op == "Attention":
            x = view.info(node.input[0]).concrete()
            w = view.info(node.input[1]).concrete()
            if not x or not w:
                return 0
            b, s, d = x
            proj = b * s * d * w[1]
            hidden = w[1] // 3
            return proj + 2 * b * s * s * hidden
        if op == "MultiHeadAttention":
            q = view.info(node.input[0]).concrete()
            k = view.info(node.input[1]).concrete() if len(node.input) > 1 else None
            if not q:
                return 0
            b, sq, d = q[0], q[1], q[-1] if len(q) == 3 else None
            if d is None:
                return 0
            sk = sq
            if k:
                sk = k[1] if len(k) == 3 else k[2]
            return 2 * b * sq * sk * d
    except (IndexError, TypeError, ValueError):
        return 0
    return 0


def build_match(
    view: GraphView,
    kind: str,
    nodes: Iterable[onnx.NodeProto],
    attrs: MatchAttrs,
    pattern: str,
    extra_macs: int = 0,
) -> OpMatch:
    """OpMatch with inputs/outputs computed from the node set.

    inputs: non-constant data tensors read from outside the set, in order of
    first use; outputs: tensors produced inside and read outside (or graph outputs).
    """
    nodes = sorted(nodes, key=lambda n: view.index[n.name])
    produced = {o for n in nodes for o in n.output if o}
    names = {n.name for n in nodes}
    inputs: list[str] = []
    for n in nodes:
        for name in data_inputs(n):
            if name in produced or view.is_const(name) or name in inputs:
                continue
            inputs.append(name)
    outputs: list[str] = []
    for n in nodes:
        for o in n.output:
            if not o:
                continue
            outside = any(c.name not in names for c in view.consumers_of(o))
            if outside or o in view.outputs:
                outputs.append(o)
    macs = sum(node_macs(view, n) for n in nodes) + extra_macs
    elements = 0
    for o in outputs:
        elements += numel(view.info(o).concrete())
    changes: dict[str, object] = {}
    if not attrs.elements:
        changes["elements"] = elements
    for key in CONST_ATTRS:  # name the real initializer, not an Identity of it
        value = getattr(attrs, key, None)
        if isinstance(value, str) and value:
            changes[key] = view.resolve_const(value) or value
    attrs = dataclasses.replace(attrs, **changes)
    return OpMatch(
        kind=kind,
        nodes=tuple(n.name for n in nodes),
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        attrs=attrs,
        macs=int(macs),
        pattern=pattern,
        graph=view.path,
    )


def near(value: float | None, target: float, rel: float = 1e-3) -> bool:
    return value is not None and bool(np.isclose(value, target, rtol=rel, atol=1e-6))


def is_float32(view: GraphView, name: str) -> bool:
    dt = view.info(name).dtype
    return dt in (0, FLOAT)


def other_input(node: onnx.NodeProto, name: str) -> str | None:
    """For a binary node that reads `name`, the other input."""
    if len(node.input) != 2:
        return None
    a, b = node.input
    if a == name:
        return b
    if b == name:
        return a
    return None


def const_operand(view: GraphView, node: onnx.NodeProto) -> tuple[str, str] | None:
    """(activation, constant) inputs of a binary node with exactly one constant."""
    if len(node.input) != 2:
        return None
    a, b = node.input
    ca, cb = view.is_const(a), view.is_const(b)
    if ca == cb:
        return None
    return (b, a) if ca else (a, b)
