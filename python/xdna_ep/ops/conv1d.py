"""Conv1d (ONNX Conv on [B, Cin, T] with a constant [Cout, Cin, Kw] weight): the
audio front end of Whisper's encoder.

Lowering: one conv1d LOp (weight float [Cout, Cin, Kw], bias [Cout], zeros if
absent). Emission: one conv1d stage; it reads its float32 input and quantizes
it itself (so the input needs a static scale but no int8 buffer), float32 out.

Why the matching is hand-written: the kernel takes symmetric padding, a
stride, no dilation and one group only, read from the node's attributes; a
one-node check needs no pattern language.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from ..capability.graph import GraphView, attr
from ..capability.matching import build_match
from ..compile.ir import LOp
from ..compile.model_index import ModelIndex, NotLowerable
from ..plan import OpMatch
from .base import MatchAttrs, OpFamily, StageRule

if TYPE_CHECKING:
    from ..compile.build import Emitter


@dataclass(frozen=True, kw_only=True)
class Conv1dAttrs(MatchAttrs):
    """weight: constant [Cout, Cin, Kw]; bias: constant [Cout] or None; stride;
    pad (symmetric, `pads` as the node has them); dilation and group are 1;
    kernel = Kw, cin, cout; m = B x T (rows, for the cost model; 0 if unknown)."""

    weight: str = ""
    bias: str | None = None
    stride: int = 1
    pads: list[int] = field(default_factory=lambda: [0, 0])
    pad: int = 0
    dilation: int = 1
    group: int = 1
    kernel: int = 0
    cin: int = 0
    cout: int = 0
    m: int = 0


def match_conv1d(view: GraphView, node: onnx.NodeProto) -> OpMatch | None:
    if node.op_type != "Conv" or len(node.input) < 2:
        return None
    x, w = node.input[0], node.input[1]
    if view.is_const(x) or not view.is_const(w):
        return None
    wshape = view.info(w).concrete()
    if wshape is None or len(wshape) != 3:
        return None
    if int(attr(node, "group", 1)) != 1:
        return None
    dil = list(attr(node, "dilations", [1]))
    if any(d != 1 for d in dil):
        return None
    if attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return None
    bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
    if bias is not None and not view.is_const(bias):
        return None
    pads = list(attr(node, "pads", [0, 0]))
    if len(pads) != 2 or pads[0] != pads[1]:
        return None  # the conv1d kernel pads symmetrically
    strides = list(attr(node, "strides", [1]))
    xc = view.info(x).concrete()
    attrs = Conv1dAttrs(weight=w, bias=bias, stride=int(strides[0]), pads=pads,
                        pad=int(pads[0]), dilation=1, group=1, kernel=int(wshape[2]),
                        cin=int(wshape[1]), cout=int(wshape[0]),
                        m=(xc[0] * xc[2]) if xc and len(xc) == 3 else 0)
    return build_match(view, "conv1d", [node], attrs, "Conv1d")


def lower_conv1d(idx: ModelIndex, m: OpMatch) -> list[LOp]:
    a: Conv1dAttrs = m.attrs
    if int(a.dilation) != 1 or int(a.group) != 1:
        raise NotLowerable(f"conv1d {m.nodes[0]!r}: dilation/group other than 1")
    w = idx.float_weight(a.weight)
    if w.ndim != 3:
        raise NotLowerable(f"conv1d {m.nodes[0]!r}: weight is {w.ndim}-D (expected 3-D)")
    b = idx.float_weight(a.bias) if a.bias else np.zeros(w.shape[0], np.float32)
    return [LOp("conv1d", (m.inputs[0],), (m.outputs[0],),
                {"weight": w, "bias": b.reshape(-1)},
                {"stride": int(a.stride), "pad": int(a.pad)}, m.nodes)]


def emit_conv1d(em: Emitter, i: int, op: LOp) -> None:
    x = op.inputs[0]
    attrs: dict[str, Any] = {"stride": op.attrs["stride"], "pad": op.attrs["pad"],
                             "out": "float32"}
    if not em.dynamic:
        attrs["in_scale"] = em.scale(x)
    em.push("conv1d", (em.float_in(x),), (op.outputs[0],),
            em.consts(i, ("weight", "w_scale", "bias")), attrs, op)


def cpu_reason(view: GraphView, node: onnx.NodeProto) -> str | None:
    """Why a Conv was not taken (None for other op types)."""
    if node.op_type != "Conv":
        return None
    if len(node.input) < 2 or not view.is_const(node.input[1]):
        return "non-constant weight: Conv weight is computed at run time"
    shape = view.info(node.input[1]).shape
    if shape is not None and len(shape) == 4:
        from .patch_conv import patch_problem

        problem = patch_problem(view, node)
        if problem:
            return problem
        if view.path:
            return ("unmatched: a patch Conv (kernel == stride) inside an If branch; only "
                    "the main graph's patch Convs become a MatMul (ops/patch_conv.py)")
        return ("excluded: a patch Conv (kernel == stride) runs on the NPU as a MatMul, but "
                "disable_kinds (matmul) keeps it on the CPU")
    if shape is not None and len(shape) != 3:
        return (f"shape: {len(shape) - 2}-D Conv; only 1-D Conv (Conv1d) and the 2-D patch "
                "Conv (kernel == stride) are supported")
    return ("shape: Conv with group, dilation, auto_pad or asymmetric pads is not supported "
            "(Conv1d only)")


OP = OpFamily(
    "conv1d", Conv1dAttrs, (match_conv1d,), lower_conv1d,
    stages=(StageRule("conv1d", emit_conv1d, scaled_inputs=(0,), int8_weight=("weight", 0)),),
    cpu_reason=cpu_reason)
