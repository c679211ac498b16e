"""Why a node stays on CPU: one human sentence per node for the report.

Reasons start with a stable category word ("opset", "excluded", "dtype",
"shape", "non-constant weight", "unsupported op", "unmatched", "control flow")
so tools can group them; the rest of the sentence names the tensor or value.
"""

from __future__ import annotations

import onnx

from .graph import GraphView, attr
from .matching import dtype_problem, shape_problem

PATTERN_OPS = {
    "Erf": "Gelu", "Tanh": "Gelu", "Pow": "Gelu/LayerNorm", "Sqrt": "LayerNorm",
    "ReduceMean": "LayerNorm", "Sub": "LayerNorm", "Reciprocal": "LayerNorm",
    "Div": "Gelu/LayerNorm/attention", "Mul": "Gelu/LayerNorm/attention",
    "Softmax": "attention", "Transpose": "attention", "Reshape": "attention",
}


# Domains whose op types the patterns know: ONNX itself and onnxruntime's contrib ops
# (fused Attention, BiasGelu, SkipLayerNormalization, ...).
KNOWN_DOMAINS = ("", "ai.onnx", "com.microsoft")


def foreign_domain(node: onnx.NodeProto) -> bool:
    """A node of another domain: its op type says nothing about what it computes
    (a custom "MatMul" may be anything), so no pattern may claim it."""
    return node.domain not in KNOWN_DOMAINS


def cpu_reason(view: GraphView, node: onnx.NodeProto) -> str:
    """The reason `node` (not part of any match) stays on CPU."""
    op = node.op_type
    if foreign_domain(node):
        return (f"unsupported op: {node.domain}.{op} has no NPU kernel (custom domain: only "
                f"ONNX and com.microsoft ops are matched)")
    if op == "Constant" or (op == "Identity" and node.input and view.is_const(node.input[0])):
        return "constant: a constant value, read directly by its consumers (no compute)"
    problem = dtype_problem(view, node) or shape_problem(view, node)
    if problem:
        return problem
    if op in ("MatMul", "Gemm"):
        if len(node.input) < 2:
            return f"unsupported op: {op} with {len(node.input)} input(s)"
        a, b = node.input[0], node.input[1]
        if view.is_const(a) and view.is_const(b):
            return "unmatched: both inputs are constants (a constant-folding candidate)"
        if not view.is_const(b):
            return (f"non-constant weight: input '{b}' is computed at run time "
                    "(MatMul of two activations outside a recognised attention pattern)")
        shape = view.info(b).shape
        if shape is None or len(shape) != 2:
            return f"shape: weight '{b}' has shape {shape}, need a 2-D [K, N] matrix"
        if op == "Gemm" and attr(node, "transA", 0):
            return "shape: Gemm with transA=1 is not supported"
        return "shape: activation/weight shapes do not line up for the matmul kernel"
    if op == "Conv":
        if len(node.input) < 2 or not view.is_const(node.input[1]):
            return "non-constant weight: Conv weight is computed at run time"
        shape = view.info(node.input[1]).shape
        if shape is not None and len(shape) != 3:
            return f"shape: {len(shape) - 2}-D Conv; only 1-D Conv (Conv1d) is supported"
        return ("shape: Conv with group, dilation, auto_pad or asymmetric pads is not supported "
                "(Conv1d only)")
    if op == "Add":
        from ..ops.add import add_problem  # at call time: ops/ imports capability/

        return add_problem(view, node) or "unmatched: Add not on the residual stream"
    if op in ("LayerNormalization", "SkipLayerNormalization"):
        return ("shape: normalisation over a non-last axis, non-constant gamma/beta, or "
                "Mean/InvStdDev outputs in use")
    if op in ("Attention", "MultiHeadAttention"):
        return "non-constant weight: fused attention with run-time weights or bias"
    if op in ("Gelu", "BiasGelu", "FastGelu"):
        return "non-constant weight: Gelu bias is computed at run time"
    if op == "If":
        return "control flow: If runs on CPU (its branches are partitioned separately)"
    if op in ("Loop", "Scan"):
        return f"control flow: {op} and its body run on CPU"
    if op in ("Reshape", "Transpose") and _feeds_kv_cache(view, node):
        return (f"unmatched: {op} lays out a KV-cache tensor (feeds a present.* output); "
                "data movement stays on CPU")
    if op in PATTERN_OPS:
        return (f"unmatched: {op} is not part of a recognised "
                f"{PATTERN_OPS[op]} pattern")
    if op == "Concat":
        return "unsupported op: Concat (data movement) runs on CPU"
    domain = f"{node.domain}." if node.domain and node.domain != "ai.onnx" else ""
    return f"unsupported op: {domain}{op} has no NPU kernel"


def _feeds_kv_cache(view: GraphView, node: onnx.NodeProto, depth: int = 3) -> bool:
    """True if `node`'s output reaches a graph output named present.* through at
    most `depth` Reshape/Transpose/Concat nodes (the decoder's KV-cache path)."""
    frontier = [o for o in node.output if o]
    for _ in range(depth):
        nxt: list[str] = []
        for t in frontier:
            if t in view.outputs and "present" in t:
                return True
            for c in view.consumers_of(t):
                if c.op_type in ("Reshape", "Transpose", "Concat"):
                    nxt.extend(o for o in c.output if o)
        frontier = nxt
    return any(t in view.outputs and "present" in t for t in frontier)
