"""Patch-embedding Conv (ViT, DeiT, CLIP/SigLIP vision towers) as a re-layout plus a MatMul.

A 2-D Conv whose kernel equals its stride, with no padding, no dilation and one
group, reads every input pixel exactly once: output pixel (i, j) is the dot
product of the [C, kh, kw] patch at (i kh, j kw) with each filter. So

    y = Conv(x, W, b)        x [B, C, H, W], W [D, C, kh, kw]

equals, with Hp = H // kh, Wp = W // kw (the Conv drops the remainder rows and
columns, and so does the Slice below),

    patches = Reshape(Transpose(Reshape(x, [B, C, Hp, kh, Wp, kw]), [0, 2, 4, 1, 3, 5]),
                      [B, Hp Wp, C kh kw])                      re-layout, CPU
    z       = MatMul(patches, W.reshape(D, C kh kw).T) + b     [B, Hp Wp, D], NPU
    y       = Reshape(Transpose(z, [0, 2, 1]), [B, D, Hp, Wp])  back to NCHW, CPU

Why a graph rewrite before capability instead of a region op family with a stage
of its own: the NPU part is exactly the existing matmul kernel (its family in
ops/matmul.py matches the MatMul + Add this module writes, quantizes the weight
per output channel like every matmul, and the plugin library runs it like every
matmul), while the re-layout is pure data movement that ONNX Runtime's CPU
provider does with ordinary nodes; a patchify stage would need its own device
design for no arithmetic. The nodes written here carry `MARK` in their
doc_string, so the report explains them (`relayout_reason`), as
ops/attention_masks.py does for its mask conversions. The model's own reshapes
of the Conv output (ViT's flatten(2).transpose(1, 2)) stay as they are, reading
the NCHW tensor the rewrite restores.

The batch dim may be symbolic (Reshape's 0 copies it). A symbolic image height
or width is read at run time (Shape, Div, Concat nodes); with fixed dims the
targets are constants.

Refused (the Conv stays on the CPU; `patch_problem` is the report's reason):
overlapping or gapped kernels (kernel != stride), padding, auto_pad SAME_*,
dilation, groups, a weight computed at run time, non-float32 input, 1-D or 3-D
convolutions (1-D: ops/conv1d.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..capability.graph import GraphView, attr
from ..capability.reasons import added_node_reason

MARK = "xdna-ep patch extraction"


@dataclass(frozen=True)
class PatchConv:
    """One accepted patch Conv: node name, tensors, sizes. height/width are the
    input's when fixed (None: symbolic, read at run time)."""

    node: str
    x: str
    weight: str
    bias: str | None
    y: str
    channels: int
    out_channels: int
    kernel: tuple[int, int]
    height: int | None
    width: int | None


@dataclass
class PatchRewrite:
    """What add_patch_rewrites put in the graph for one Conv: the nodes and
    initializers it added, the MatMul's name, and the Conv itself (put back by
    settle_patch_rewrites when the MatMul does not run on the NPU)."""

    conv: str
    matmul: str
    nodes: list[str]
    initializers: list[str]
    original: onnx.NodeProto


def _ints(node: onnx.NodeProto, name: str, default: list[int]) -> list[int]:
    return [int(v) for v in attr(node, name, default)]


def patch_problem(view: GraphView, node: onnx.NodeProto) -> str | None:
    """Why a Conv with a constant 4-D weight is not a patch Conv (None if it is one).

    The sentence starts with the report's category word ("shape", "dtype",
    "non-constant weight")."""
    if len(node.input) < 2 or not view.is_const(node.input[1]):
        return "non-constant weight: Conv weight is computed at run time"
    x, w = node.input[0], node.input[1]
    wshape = view.info(w).concrete()
    if wshape is None or len(wshape) != 4:
        return f"shape: Conv weight {w!r} has shape {wshape}, not [Cout, Cin, kh, kw]"
    if view.is_const(x):
        return "unmatched: both inputs are constants (a constant-folding candidate)"
    if view.info(x).dtype not in (0, onnx.TensorProto.FLOAT):
        return (f"dtype {view.info(x).dtype_name} (tensor {x!r}): the patch Conv's MatMul "
                "takes float32")
    kernel = _ints(node, "kernel_shape", list(wshape[2:]))
    strides = _ints(node, "strides", [1, 1])
    pads = _ints(node, "pads", [0, 0, 0, 0])
    dil = _ints(node, "dilations", [1, 1])
    group = int(attr(node, "group", 1))
    auto_pad = attr(node, "auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
    what = (f"2-D Conv {list(kernel)} kernel, strides {strides}: only a non-overlapping patch "
            "Conv (kernel == stride, no padding, dilation 1, group 1) runs on the NPU, as a "
            "MatMul; this one")
    if len(strides) != 2 or len(dil) != 2:
        return f"shape: 2-D Conv with strides {strides} / dilations {dil} of another rank"
    if kernel != list(wshape[2:]):
        return f"shape: {what} has kernel_shape {kernel} != weight's {list(wshape[2:])}"
    if group != 1:
        return f"shape: {what} has group {group}"
    if any(d != 1 for d in dil):
        return f"shape: {what} has dilations {dil}"
    if auto_pad not in ("NOTSET", "VALID"):
        return f"shape: {what} has auto_pad {auto_pad} (padding)"
    if auto_pad == "NOTSET" and any(p != 0 for p in pads):
        return f"shape: {what} has pads {pads}"
    if strides != kernel:
        kind = "overlapping" if any(s < k for s, k in zip(strides, kernel, strict=True)) else \
            "gapped"
        return f"shape: {what} has {kind} windows (stride != kernel)"
    xs = view.info(x).shape
    if xs is not None and len(xs) == 4 and isinstance(xs[1], int) and xs[1] != wshape[1]:
        return f"shape: Conv input {x!r} has {xs[1]} channels, the weight {wshape[1]}"
    return None


def patch_form(view: GraphView, node: onnx.NodeProto,
               fixed: dict[str, tuple[int | None, ...]]) -> PatchConv | str | None:
    """The accepted patch Conv, the reason it is refused, or None (not a 2-D Conv).

    fixed: the model's graph input shapes with symbolic dims as None (the view's
    shapes have every symbolic dim bound to a size, which a height read from it
    would freeze)."""
    if node.op_type != "Conv" or len(node.input) < 2:
        return None
    wshape = view.info(node.input[1]).shape
    if wshape is None or len(wshape) != 4:
        return None
    problem = patch_problem(view, node)
    if problem:
        return problem
    x, w = node.input[0], node.input[1]
    d, c, kh, kw = (int(v) for v in view.info(w).concrete() or ())
    bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
    if bias is not None and not view.is_const(bias):
        return f"non-constant weight: Conv bias {bias!r} is computed at run time"
    if x in fixed:
        dims = fixed[x]
        h, wd = (dims[2], dims[3]) if len(dims) == 4 else (None, None)
    elif not fixed or all(all(v is not None for v in s) for s in fixed.values()):
        xs = view.info(x).concrete()  # every input dim fixed: inferred shapes are exact
        h, wd = (xs[2], xs[3]) if xs is not None and len(xs) == 4 else (None, None)
    else:
        h = wd = None  # may depend on a symbolic input dim: read at run time
    if (h is not None and h < kh) or (wd is not None and wd < kw):
        return f"shape: Conv input {x!r} is {h}x{wd}, smaller than one {kh}x{kw} patch"
    return PatchConv(node.name, x, w, bias, node.output[0], c, d, (kh, kw), h, wd)


def _rewrite_nodes(p: PatchConv, wmat: str) -> tuple[list[onnx.NodeProto],
                                                     list[onnx.TensorProto], str]:
    """The re-layout nodes, the MatMul (+ bias Add) and the restoring nodes of one
    patch Conv, their small initializers, and the MatMul's node name."""
    pre = f"{p.node}/xdna_patch"
    kh, kw = p.kernel
    doc = (f"{MARK}: Conv {p.node!r} ({kh}x{kw} patches, stride {kh}x{kw}) as "
           f"patches [B, N, {p.channels * kh * kw}] x weight -> [B, N, {p.out_channels}]")
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def const(name: str, values: list[int]) -> str:
        inits.append(numpy_helper.from_array(np.array(values, np.int64), f"{pre}/{name}"))
        return f"{pre}/{name}"

    def node(op: str, ins: list[str], out: str | None = None, **kw: object) -> str:
        o = out or f"{pre}/{op}_{len(nodes)}"
        nodes.append(helper.make_node(op, ins, [o], name=f"{pre}/{op}_{len(nodes)}",
                                      doc_string=doc, **kw))
        return o

    x = p.x
    if p.height is not None and p.width is not None:
        hp, wp = p.height // kh, p.width // kw
        if p.height % kh or p.width % kw:  # the Conv drops the remainder rows/columns
            x = node("Slice", [x, const("starts", [0, 0]), const("ends", [hp * kh, wp * kw]),
                               const("axes", [2, 3])])
        split = const("split_shape", [0, p.channels, hp, kh, wp, kw])
        back = const("nchw_shape", [0, p.out_channels, hp, wp])
    else:  # read H, W at run time: [Hp, Wp] = Shape(x)[2:4] / [kh, kw]
        hw = node("Slice", [node("Shape", [x]), const("hw_start", [2]), const("hw_end", [4])])
        patch = const("patch", [kh, kw])
        hwp = node("Div", [hw, patch])
        ends = node("Mul", [hwp, patch])
        x = node("Slice", [x, const("starts", [0, 0]), ends, const("axes", [2, 3])])
        one = const("one", [1])
        hp_t = node("Slice", [hwp, const("zero", [0]), one])
        wp_t = node("Slice", [hwp, one, const("two", [2])])
        split = node("Concat", [const("lead", [0, p.channels]), hp_t, const("kh", [kh]), wp_t,
                                const("kw", [kw])], axis=0)
        back = node("Concat", [const("lead_out", [0, p.out_channels]), hwp], axis=0)
    six = node("Reshape", [x, split])
    moved = node("Transpose", [six], perm=[0, 2, 4, 1, 3, 5])
    patches = node("Reshape", [moved, const("rows", [0, -1, p.channels * kh * kw])])
    mm_name = f"{p.node}/patch_matmul"
    z = f"{pre}/matmul_out"
    nodes.append(helper.make_node("MatMul", [patches, wmat], [z], name=mm_name))
    if p.bias is not None:
        zb = f"{pre}/bias_out"
        nodes.append(helper.make_node("Add", [z, p.bias], [zb], name=f"{p.node}/patch_bias"))
        z = zb
    node("Reshape", [node("Transpose", [z], perm=[0, 2, 1]), back], p.y)
    return nodes, inits, mm_name


def _maybe_2d(model: onnx.ModelProto, node: onnx.NodeProto) -> bool:
    """A Conv whose weight may be 4-D: an initializer of rank 4, or a weight that
    only shape inference can tell (behind Identity, a Constant node, ...)."""
    if node.op_type != "Conv" or len(node.input) < 2:
        return False
    for t in model.graph.initializer:
        if t.name == node.input[1]:
            return len(t.dims) == 4
    return True


def add_patch_rewrites(model: onnx.ModelProto, *, dims: dict[str, int] | None = None,
                       skip: Iterable[str] = ()) -> list[PatchRewrite]:
    """Replace (in place) every patch Conv of the main graph by its re-layout +
    MatMul form; returns what was written. `skip`: Conv node names to leave as they
    are (excluded by option). The Conv weights stay until settle_patch_rewrites
    knows whether a Conv comes back."""
    from ..capability.analyze import MAX_OPSET, MIN_OPSET, model_opset
    from ..capability.loader import ensure_node_names
    from ..capability.shapes import infer_shapes

    if not any(_maybe_2d(model, n) for n in model.graph.node):
        return []  # no shape inference for models without a 2-D Conv (Whisper's are 1-D)
    ensure_node_names(model)  # the new nodes' names derive from the Conv's
    skipped = set(skip)
    convs = [i for i, n in enumerate(model.graph.node) if n.op_type == "Conv"
             and n.domain in ("", "ai.onnx") and n.name not in skipped]
    if not convs:
        return []
    opset = model_opset(model)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        return []
    try:
        shaped = infer_shapes(model, dims)
    except Exception:  # noqa: BLE001 - analyze() reports a model it cannot read
        return []
    view = GraphView.build(shaped.model.graph, "", None, opset)
    inits = {t.name for t in model.graph.initializer}
    fixed = {vi.name: tuple(int(d.dim_value) if d.HasField("dim_value") else None
                            for d in vi.type.tensor_type.shape.dim)
             for vi in model.graph.input if vi.name not in inits}
    done: list[PatchRewrite] = []
    replaced: dict[int, list[onnx.NodeProto]] = {}
    for i in convs:
        n = model.graph.node[i]
        p = patch_form(view, n, fixed)
        if not isinstance(p, PatchConv):
            continue
        w = view.const_value(p.weight)
        if w is None:
            continue
        wmat = f"{p.weight}::xdna_patch_matrix"
        if wmat not in inits:
            mat = np.ascontiguousarray(w.reshape(p.out_channels, -1).T.astype(np.float32))
            model.graph.initializer.append(numpy_helper.from_array(mat, wmat))
            inits.add(wmat)
        nodes, small, mm = _rewrite_nodes(p, wmat)
        model.graph.initializer.extend(small)
        replaced[i] = nodes
        original = onnx.NodeProto()
        original.CopyFrom(n)
        done.append(PatchRewrite(n.name, mm, [x.name for x in nodes],
                                 [wmat] + [t.name for t in small], original))
    if not replaced:
        return []
    order: list[onnx.NodeProto] = []
    for i, n in enumerate(model.graph.node):
        order.extend(replaced.get(i, [n]))
    del model.graph.node[:]
    model.graph.node.extend(order)
    return done


def settle_patch_rewrites(model: onnx.ModelProto, rewrites: Iterable[PatchRewrite],
                          on_npu: set[str]) -> list[PatchRewrite]:
    """After placement (in place): a rewrite whose MatMul is not in an NPU region
    gets its Conv back (ONNX Runtime's Conv beats five CPU nodes doing the same);
    then initializers nobody reads any more go (a kept rewrite's Conv weight:
    the MatMul reads its own [K, N] copy). Returns the rewrites undone."""
    from ..rewrite.graph_edit import drop_unread_initializers, remove_nodes

    undone = [r for r in rewrites if r.matmul not in on_npu]
    candidates = {r.original.input[1] for r in rewrites}
    for r in undone:
        remove_nodes(model, r.nodes, restore={r.nodes[0]: r.original})
        candidates.update(r.initializers)
    drop_unread_initializers(model, candidates)
    return undone


def relayout_reason(node: onnx.NodeProto) -> str | None:
    """The report's reason for a re-layout node (None for any other node)."""
    return added_node_reason(node, MARK, "patch extraction",
                             "data movement on the CPU, the MatMul runs in the NPU region")
