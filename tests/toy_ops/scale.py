"""A toy region op: `Mul(x, c)` with a scalar constant c, run on the NPU as an int8
matmul by c x I. It exists to prove the extension point of xdna_ep.ops: this one
module (match + typed attrs + lowering + stage rule) plus one line,
`registry.register(OP)`, is all a new region op needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from xdna_ep.capability.graph import GraphView
from xdna_ep.capability.matching import build_match, const_operand, is_float32
from xdna_ep.compile.ir import LOp
from xdna_ep.compile.model_index import ModelIndex
from xdna_ep.ops.base import MatchAttrs, OpFamily, StageRule
from xdna_ep.ops.matmul import emit_matmul
from xdna_ep.plan import OpMatch


@dataclass(frozen=True, kw_only=True)
class ScaleAttrs(MatchAttrs):
    """factor: the constant c; channels: x's last dimension."""

    factor: float = 1.0
    channels: int = 0


def match_scale(view: GraphView, node: onnx.NodeProto) -> OpMatch | None:
    if node.op_type != "Mul":
        return None
    pair = const_operand(view, node)
    if pair is None:
        return None
    x, c = pair
    factor = view.scalar(c)
    shape = view.info(x).concrete()
    if factor is None or not is_float32(view, x) or not shape:
        return None
    return build_match(view, "toy_scale", [node],
                       ScaleAttrs(factor=float(factor), channels=int(shape[-1])), "toy-scale")


def lower_scale(idx: ModelIndex, m: OpMatch) -> list[LOp]:
    a: ScaleAttrs = m.attrs
    w = (np.eye(a.channels, dtype=np.float32) * np.float32(a.factor)).astype(np.float32)
    return [LOp("toy_scale", (m.inputs[0],), (m.outputs[0],), {"weight": w}, {}, m.nodes)]


# its stage is the matmul kernel's: same buffer rules, emitted by the matmul family's emit
OP = OpFamily("toy_scale", ScaleAttrs, (match_scale,), lower_scale,
              (StageRule("toy_scale", emit_matmul, int8_inputs=(0,), int8_output="static",
                         int8_weight=("weight", 1)),))
