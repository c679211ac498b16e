"""Why a node stays on CPU: one human sentence per node for the report.

Reasons start with a stable category word ("opset", "excluded", "dtype",
"shape", "non-constant weight", "unsupported op", "unmatched", "control flow")
so tools can group them; the rest of the sentence names the tensor or value.
"""

from __future__ import annotations

import onnx

from .graph import GraphView
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



def added_node_reason(node: onnx.NodeProto, mark: str, label: str, note: str) -> str | None:
    """The report's reason for a CPU node xdna-ep added to the graph (its doc_string
    starts with `mark`, then ": " and what it does), or None for any other node.

    Why one helper: rewrites before capability (attention mask conversions, patch
    extraction) leave ordinary ONNX nodes on the CPU; the report names them by what
    they are for rather than as unsupported ops."""
    if node.doc_string.startswith(mark):
        return f"{label}: {node.doc_string[len(mark) + 2:]}; {note}"
    return None

def foreign_domain(node: onnx.NodeProto) -> bool:
    """A node of another domain: its op type says nothing about what it computes
    (a custom "MatMul" may be anything), so no pattern may claim it."""
    return node.domain not in KNOWN_DOMAINS


def cpu_reason(view: GraphView, node: onnx.NodeProto) -> str:
    """The reason `node` (not part of any match) stays on CPU."""
    # at call time: ops/ imports capability/
    from ..ops.attention_masks import conversion_reason
    from ..ops.patch_conv import relayout_reason

    op = node.op_type
    converted = conversion_reason(node) or relayout_reason(node)
    if converted:
        return converted
    if foreign_domain(node):
        return (f"unsupported op: {node.domain}.{op} has no NPU kernel (custom domain: only "
                f"ONNX and com.microsoft ops are matched)")
    if op == "Constant" or (op == "Identity" and node.input and view.is_const(node.input[0])):
        return "constant: a constant value, read directly by its consumers (no compute)"
    problem = dtype_problem(view, node) or shape_problem(view, node)
    if problem:
        return problem
    from ..ops import registry as op_registry  # at call time: ops/ imports capability/

    for family in op_registry.OPS:  # why an op type a family knows was not taken
        if family.cpu_reason is not None:
            reason = family.cpu_reason(view, node)
            if reason:
                return reason
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
