"""Shape inference with symbolic dimensions bound to representative sizes.

MACs and the cost model need numbers: an encoder MatMul with M = 1500 rows
belongs on the NPU, a decoder MatMul with M = 1 (one token) does not. Optimum
exports Whisper with symbolic dims (batch_size, encoder_sequence_length, ...),
so before running onnx.shape_inference we bind each symbolic input dim to a
size: the caller's `dims` first, then the Whisper defaults below, else 1 (and
we say so in the plan's notes, and list the name in `ShapeResult.guessed`: the
cost model must not decide a region on such a guess, see partition.py).

An input dim without a dim_param is named `<input name>:<axis>`.
"""

from __future__ import annotations

import contextlib
import copy
import io
from dataclasses import dataclass, field

import numpy as np
import onnx

# Substring of a dim_param -> size. First match wins, so the more specific
# names come first. Sizes are one 30 s Whisper window decoded one token at a time.
WHISPER_DIM_DEFAULTS: tuple[tuple[str, int], ...] = (
    ("batch", 1),
    ("encoder_sequence_length / 2", 1500),
    ("encoder_sequence_length_out", 1500),
    ("encoder_sequence_length", 1500),  # encoder frames as the decoders see them
    ("past_decoder_sequence_length", 32),  # a representative KV-cache length
    ("past_sequence_length", 32),
    ("decoder_sequence_length", 1),  # one token per decoder call
    ("feature_size", 80),
    ("mel_frames", 3000),  # input_features frames when exported with a dynamic axis
    ("num_mel", 80),
)


@dataclass
class ShapeResult:
    model: onnx.ModelProto  # copy with inferred value_info
    bindings: dict[str, int] = field(default_factory=dict)  # dim_param -> size used
    notes: list[str] = field(default_factory=list)
    guessed: list[str] = field(default_factory=list)  # dims bound to 1 by no rule


@dataclass(frozen=True)
class SymbolicDim:
    """One dynamic dim of a graph input (what `dims`, ORT's overrides and the
    arrays fed to the model bind)."""

    input: str
    axis: int
    name: str  # dim_param, or "<input>:<axis>" when the dim has none
    denotation: str = ""


def symbolic_input_dims(model: onnx.ModelProto) -> list[SymbolicDim]:
    """Every dynamic dim of the model's graph inputs (initializers excluded)."""
    init_names = {t.name for t in model.graph.initializer}
    out: list[SymbolicDim] = []
    for vi in model.graph.input:
        if vi.name in init_names or not vi.type.HasField("tensor_type"):
            continue
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            continue
        for axis, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value"):
                continue
            out.append(SymbolicDim(vi.name, axis, d.dim_param or f"{vi.name}:{axis}",
                                   d.denotation))
    return out


def bind_dim(name: str, dims: dict[str, int] | None) -> tuple[int, bool]:
    """Size for symbolic dim `name` and whether it was a guess (no rule matched)."""
    if dims and name in dims:
        return int(dims[name]), False
    lowered = name.lower()
    for key, size in WHISPER_DIM_DEFAULTS:
        if key in lowered:
            return size, False
    return 1, True


def infer_shapes(model: onnx.ModelProto, dims: dict[str, int] | None = None) -> ShapeResult:
    """A copy of `model` with concrete input dims and inferred intermediate shapes."""
    m = copy.deepcopy(model)
    result = ShapeResult(model=m)
    inputs = {vi.name: vi for vi in m.graph.input}
    for sd in symbolic_input_dims(m):
        size, guessed = bind_dim(sd.name, dims)
        if sd.name not in result.bindings:
            result.bindings[sd.name] = size
            if guessed:
                result.guessed.append(sd.name)
                result.notes.append(f"symbolic dim '{sd.name}' assumed {size} for MAC counts")
        d = inputs[sd.input].type.tensor_type.shape.dim[sd.axis]
        d.Clear()
        d.dim_value = size
    result.model = _run_inference(m, result.notes)
    _infer_if_branches(result.model, result.notes)
    return result


def _infer_if_branches(model: onnx.ModelProto, notes: list[str]) -> None:
    """Re-infer each top-level If branch as a standalone model.

    onnxruntime's symbolic inference trips over Optimum's merged decoder and
    onnx's own inference does not propagate Reshape targets inside subgraphs,
    which leaves the branch MACs unknown. A branch is a graph in its own right:
    its outer-scope reads become inputs (typed from the outer graph; small
    initializers copied so shape constants stay known), and the inferred
    value_info is copied back into the branch.
    """
    from .graph import implicit_inputs  # local: graph.py does not import shapes

    outer = {vi.name: vi for vi in list(model.graph.input) + list(model.graph.value_info)}
    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type != "If":
            continue
        for a in node.attribute:
            if a.type != onnx.AttributeProto.GRAPH:
                continue
            branch = a.g
            inputs, small = [], []
            for name in implicit_inputs(branch):
                t = inits.get(name)
                if t is not None and int(np.prod(t.dims, dtype=np.int64)) <= 4096:
                    small.append(t)
                elif t is not None:
                    inputs.append(onnx.helper.make_tensor_value_info(name, t.data_type,
                                                                     list(t.dims)))
                elif name in outer:
                    inputs.append(outer[name])
                else:
                    inputs.append(onnx.helper.make_tensor_value_info(name, 0, None))
            g = onnx.helper.make_graph(list(branch.node), "branch", inputs, list(branch.output),
                                       small)
            standalone = onnx.helper.make_model(g, opset_imports=list(model.opset_import))
            standalone.ir_version = model.ir_version
            try:
                out = _symbolic_inference(standalone)
            except Exception as exc:  # noqa: BLE001 - shapes are best effort
                notes.append(f"shape inference of If branch {node.name}/{a.name} failed "
                             f"({type(exc).__name__}); its MACs may be undercounted")
                continue
            if out is None:
                continue
            known = {vi.name for vi in out.graph.value_info}
            keep = [vi for vi in branch.value_info if vi.name not in known]
            del branch.value_info[:]
            branch.value_info.extend(keep + list(out.graph.value_info))


class IncompleteShapeInference(RuntimeError):
    """onnxruntime's symbolic shape inference could not finish the graph."""


def _symbolic_inference(m: onnx.ModelProto) -> onnx.ModelProto | None:
    """onnxruntime's SymbolicShapeInference without its side effect.

    Why not `SymbolicShapeInference.infer_shapes`: when it cannot finish a graph
    it saves `sym_shape_infer_temp.onnx` plus external data files into the
    current working directory before raising, leaving stray files wherever the
    user runs xdna-ep. We drive the same steps it does (preprocess, infer until
    stable, copy the output shapes) and raise without writing anything. If a
    future onnxruntime renames those steps we use the public call. Its prints
    (e.g. for old opsets) are swallowed.
    """
    # onnxruntime.tools' __init__ imports torch: load the one module we use
    from ..lean_import import submodule

    ssi_mod = submodule("onnxruntime.tools", "symbolic_shape_infer")
    SymbolicShapeInference, get_opset = ssi_mod.SymbolicShapeInference, ssi_mod.get_opset

    with contextlib.redirect_stdout(io.StringIO()):
        steps = ("_preprocess", "_infer_impl", "_update_output_from_vi")
        if not all(hasattr(SymbolicShapeInference, s) for s in steps):
            return SymbolicShapeInference.infer_shapes(m, auto_merge=True,
                                                       guess_output_rank=True)
        opset = get_opset(m)
        if not opset or opset < 7:
            return None
        ssi = SymbolicShapeInference(2**31 - 1, True, True, 0)
        done = False
        ssi._preprocess(m)
        while ssi.run_:
            done = ssi._infer_impl()
        ssi._update_output_from_vi()
    if not done:
        raise IncompleteShapeInference("incomplete symbolic shape inference")
    return ssi.out_mp_


def symbolic_shapes(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The value infos onnxruntime's symbolic shape inference gives a copy of `model`
    (symbolic dims kept as names; [] if it cannot finish): compile/model_index.py
    reads shapes behind com.microsoft ops with it."""
    try:
        out = _symbolic_inference(copy.deepcopy(model))
    except Exception:  # noqa: BLE001 - best effort, as in _run_inference
        return []
    return [] if out is None else list(out.graph.value_info)


def _run_inference(m: onnx.ModelProto, notes: list[str]) -> onnx.ModelProto:
    """onnxruntime's symbolic shape inference first (it follows If branches,
    Shape->Gather->Concat reshape targets and com.microsoft ops), then
    onnx.shape_inference as the fallback; shapes are best effort (they feed
    MACs and the cost model only), so a failure becomes a note, not an error."""
    try:
        out = _symbolic_inference(m)
        if out is not None:
            return out
    except Exception as exc:  # noqa: BLE001 - any failure falls back to onnx's inference
        first = f"{type(exc).__name__}: {exc}"
    else:
        first = "returned no model"
    try:
        out = onnx.shape_inference.infer_shapes(m, strict_mode=False, data_prop=True)
    except Exception as exc:  # noqa: BLE001
        notes.append(f"shape inference failed (onnxruntime: {first}; onnx: "
                     f"{type(exc).__name__}: {exc}); MACs of shape-dependent ops are 0")
        return m
    return out


def fold_shape_nodes(model: onnx.ModelProto, dims: dict[str, int]) -> tuple[onnx.ModelProto, int]:
    """A copy of `model` specialised to `dims`: every main-graph Shape node whose
    input has a fully known shape at those sizes becomes a Constant.

    Why: torch's exports compute Reshape targets at run time (Shape -> Gather ->
    Concat of an intermediate, e.g. eager attention's context layer), so that
    intermediate has a second, shape-only reader and a region cannot swallow
    it. A model compiled for one concrete input shape (the provider's `dims`,
    free-dimension overrides, calibration or first-run shape, each run checked
    against it) may fold those shapes; a model whose dims are only defaults
    must not, since it runs at other sizes. A Gather of a folded shape at a
    constant index folds with it (`_fold_shape_gathers`). Returns (model, Shape
    nodes folded).
    """
    shaped = infer_shapes(model, dims)
    if shaped.guessed:
        raise ValueError(f"fold_shape_nodes needs every symbolic dim bound; "
                         f"{shaped.guessed} are not")
    known: dict[str, tuple[int, ...]] = {}
    for vi in list(shaped.model.graph.value_info) + list(shaped.model.graph.input):
        tt = vi.type.tensor_type
        if vi.type.HasField("tensor_type") and tt.HasField("shape") and all(
                d.HasField("dim_value") for d in tt.shape.dim):
            known[vi.name] = tuple(int(d.dim_value) for d in tt.shape.dim)
    for t in model.graph.initializer:
        known[t.name] = tuple(int(d) for d in t.dims)
    out = copy.deepcopy(model)
    folded = 0
    values: dict[str, np.ndarray] = {}
    for i, node in enumerate(out.graph.node):
        if node.op_type != "Shape" or node.input[0] not in known:
            continue
        shape = list(known[node.input[0]])
        start, end = 0, len(shape)
        for a in node.attribute:
            if a.name == "start":
                start = int(a.i)
            elif a.name == "end":
                end = int(a.i)
        value = np.array(shape[slice(start, end)], dtype=np.int64)
        const = onnx.helper.make_node(
            "Constant", [], list(node.output), name=node.name,
            value=onnx.numpy_helper.from_array(value, name=f"{node.name}_value"))
        out.graph.node[i].CopyFrom(const)
        values[node.output[0]] = value
        folded += 1
    _fold_shape_gathers(out, values)
    return out, folded


def pin_symbolic_dims(model: onnx.ModelProto, dims: dict[str, int]) -> onnx.ModelProto:
    """A copy of `model` whose graph inputs and outputs have the symbolic dims named
    in `dims` fixed to those sizes.

    Why: a model compiled for one input shape (fold_shape_nodes) must say so in
    its own signature once it leaves the provider (an `xdna-ep compile` EPContext
    file run by any ONNX Runtime application): ONNX Runtime then rejects another
    shape up front, naming the input and the expected dims, instead of a region
    failing half way with a stage's shape error."""
    out = copy.deepcopy(model)
    for vi in list(out.graph.input) + list(out.graph.output):
        if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
            continue
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_param") and d.dim_param in dims:
                d.dim_value = int(dims[d.dim_param])   # replaces the dim_param (oneof)
    return out


def _fold_shape_gathers(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> None:
    """Gathers of a folded shape at a constant index become Constants too (in place).

    Why: onnxruntime's symbolic shape inference keeps a Constant's value as a numpy
    array and asserts when a Gather picks an element other than the first or last
    of it (torch's Shape -> Gather(1) of a [batch, seq] input, kept by ORT's
    transformer optimizer): the whole inference then fails and the shapes behind
    com.microsoft ops (EmbedLayerNormalization) are unknown to the compiler."""
    consts = {t.name: t for t in model.graph.initializer}
    consts.update({n.output[0]: a.t for n in model.graph.node if n.op_type == "Constant"
                   for a in n.attribute if a.name == "value"})
    for i, node in enumerate(model.graph.node):
        if node.op_type != "Gather" or node.input[0] not in values or node.input[1] not in consts:
            continue
        index = onnx.numpy_helper.to_array(consts[node.input[1]])
        data = values[node.input[0]]
        axis = 0
        for a in node.attribute:
            if a.name == "axis":
                axis = int(a.i)
        if data.ndim != 1 or axis not in (0, -1) or index.dtype.kind not in "iu" or \
                not np.all((-len(data) <= index) & (index < len(data))):
            continue
        value = np.asarray(np.take(data, index), dtype=np.int64)
        model.graph.node[i].CopyFrom(onnx.helper.make_node(
            "Constant", [], list(node.output), name=node.name,
            value=onnx.numpy_helper.from_array(value, name=f"{node.name}_value")))
        values[node.output[0]] = value
