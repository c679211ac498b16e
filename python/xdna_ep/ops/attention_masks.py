"""Integer attention masks of the fused com.microsoft ops, as additive float masks.

com.microsoft Attention takes `mask_index` (input 3) and MultiHeadAttention
`key_padding_mask` (input 4) as int32 tensors; the attention stage takes an
additive float32 mask (kernels/attention/README.md). Before capability,
`add_mask_conversions` (called by partition.partition_model) gives each supported
int32 mask a float twin computed by a few ordinary ONNX nodes, which stay on
ONNX Runtime's CPU provider:

    [B] end positions      keep = Less(Range(T), Reshape(Cast(end, int64), [-1, 1]))
    [2B] end, start        keep = And(Less(Range(T), end), GreaterOrEqual(Range(T), start))
                           (Attention only; end, start = Gather of Reshape(.., [2, -1, 1]))
    [B, T] / [B, S, T] 0/1 keep = Greater(mask, 0)
    then                   additive = Where(keep, 0, value), Reshape to [B, 1, 1, T]
                           (Unsqueeze to [B, 1, S, T] for the 3-D mask)

T is a constant on a model whose input dims are all fixed, else Shape + Gather +
Range of the graph input that carries the key length.

The attention node itself is left as it is (ONNX Runtime's kernels accept only
int32 there), so the model stays valid whatever runs it; the matcher
(ops/attention.py) reads the twin, named by `converted_name`, as the match's mask
input, so the region's edge stays float32. Twins no NPU region reads are removed
again after placement (`prune_conversions`).

Semantics, as ONNX Runtime's CPU kernels compute them (contrib_ops/cpu/bert,
checked by tests/test_attention_masks.py against ORT CPU): key j of batch b is
kept iff j < mask[b] (1-D [B]), mask[B + b] <= j < mask[b] ([2B]) or mask[b, j] > 0
(2-D; mask[b, i, j] > 0 for 3-D); a masked key gets the node's
`mask_filter_value` (default -10000) added to its logit. A row whose every key is
masked therefore gets softmax over its raw logits in ORT (all logits moved by the
same constant), not NaN and not zeros. The attention kernel *excludes* keys whose
mask is <= -1e4 (a fully excluded row outputs zeros), so the additive value is
mask_filter_value itself when above -10000, else -9999: the same partially masked rows (exp(-9999) is 0 in
the kernel's fixed point as in float) and, for fully masked rows, the same
softmax of the raw logits that ORT gives at mask_filter_value >= -10000 (its
default). A larger-magnitude mask_filter_value (onnxruntime.transformers'
optimizer writes float32's lowest value for Hugging Face BERT) gives the same
partially masked rows, but ORT's fully masked rows then come from float32
rounding of logit + value (at the lowest value every logit of the row becomes
that value: a uniform average over all keys), which an additive mask cannot
reproduce: the region keeps softmax over the raw logits, and the plan notes it
for that model (`Conversion.note`).

Refused (the node stays on the CPU, the reason in the report: `mask_form`): other
element types (bool is not accepted by ORT's schema: its model does not load),
MultiHeadAttention's [3B+2] form, 4-D masks (Megatron; ORT's CPU kernel does not
run them either), a mask together with attention_bias, a mask with a past
key/value, a mask_filter_value that is not negative, a 2-D / 3-D mask whose dims
are not the key (and query) lengths, and a [B] / [2B] mask whose key length is
symbolic and equals no graph input's dim (T would be a guess).

A [B] / [2B] mask's key length T on a model with symbolic input dims: when the
key (or the Attention input) is a graph input, Shape reads T from it at run time;
when it is computed inside the graph (a projection of the embeddings, usually in
the same NPU region), onnxruntime's symbolic shape inference names its length
(`key_dim_names`: "seq" from input_ids [batch, seq] through the embeddings and
projections) and Shape reads the graph input dim of that name; a length fixed in
the model is a constant. A symbolic length that no graph input carries under its
name (e.g. "seq + 1" after a concatenated class token) is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..capability.graph import GraphView, attr
from ..capability.reasons import added_node_reason

MARK = "xdna-ep mask conversion"
KERNEL_EXCLUDE = -1.0e4  # the attention kernel excludes keys whose mask is <= this
VALUE_FLOOR = -9999.0  # largest-magnitude additive value the kernel still adds
ORT_DEFAULT_FILTER = -10000.0


@dataclass(frozen=True)
class MaskForm:
    """A supported int32 mask: `form` "lengths" ([B]), "start_end" ([2B]),
    "key_mask" ([B, T]) or "query_key_mask" ([B, S, T]);
    `value` the additive float for masked keys; `t` the constant key length
    (position forms, 0 when read at run time from `t_source` axis `t_axis`)."""

    mask: str
    form: str
    value: float
    t: int = 0
    t_source: str = ""
    t_axis: int = 1
    filter_value: float = ORT_DEFAULT_FILTER


def mask_slot(node: onnx.NodeProto) -> int:
    return 3 if node.op_type == "Attention" else 4


def int_mask(view: GraphView, node: onnx.NodeProto) -> str | None:
    """The mask input (Attention 3 / MultiHeadAttention 4) if it is not float32."""
    slot = mask_slot(node)
    name = node.input[slot] if len(node.input) > slot else ""
    if not name:
        return None
    dt = view.info(name).dtype
    return name if dt not in (0, onnx.TensorProto.FLOAT) else None


def _kv_length(view: GraphView, node: onnx.NodeProto) -> tuple[str, int, object]:
    """(tensor, axis, size) that gives the key length: the MultiHeadAttention key
    [B, T, D] or the Attention input [B, S, D] (no past)."""
    src = node.input[1] if node.op_type == "MultiHeadAttention" else node.input[0]
    shape = view.info(src).shape if src else None
    return src, 1, (shape[1] if shape is not None and len(shape) == 3 else None)


def key_dim_names(model: onnx.ModelProto) -> dict[str, tuple[int | str | None, ...]]:
    """The main graph's shapes with symbolic dims kept as names (graph inputs and
    inferred intermediates), or {} when no fused attention of the model has a mask
    or every input dim is fixed (nothing then asks: a key length is a number).

    Why names: capability binds symbolic dims to sizes for MACs, so a key length
    that is symbolic inside the graph reads as a number there; its name (onnxruntime's
    symbolic shape inference carries "seq" from the graph input through the
    projections) says which graph input dim to read at run time."""
    from ..capability.shapes import symbolic_input_dims, symbolic_shapes

    if not any(n.domain == "com.microsoft" and n.op_type in ("Attention", "MultiHeadAttention")
               and len(n.input) > mask_slot(n) and n.input[mask_slot(n)]
               for n in model.graph.node):
        return {}
    if not symbolic_input_dims(model):
        return {}

    def dims(vi: onnx.ValueInfoProto) -> tuple[int | str | None, ...] | None:
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type") or not tt.HasField("shape"):
            return None
        return tuple(int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or None)
                     for d in tt.shape.dim)

    inits = {t.name for t in model.graph.initializer}
    out: dict[str, tuple[int | str | None, ...]] = {}
    for vi in [*symbolic_shapes(model), *model.graph.input]:
        d = dims(vi)
        if d is not None and vi.name not in inits:
            out[vi.name] = d
    return out


def _key_length_source(view: GraphView, src: str, axis: int) -> int | tuple[str, int] | str:
    """The key length of `src` (axis `axis`) on a model with symbolic input dims:
    a size when it is fixed, (graph input, axis) whose dim has its symbolic name,
    or the reason it cannot be read at run time (the end of a sentence)."""
    dims = view.dim_names.get(src)
    if dims is None or len(dims) <= axis:
        return ("which shape inference gave no symbolic shape for (give a [B, T] mask or "
                "fixed input dims)")
    name = dims[axis]
    if isinstance(name, int):
        return name
    if not name:
        return ("which is symbolic without a name (give a [B, T] mask or fixed input "
                "dims)")
    for vi in view.graph.input:
        if vi.name in view.graph_inputs:
            found = view.dim_names.get(vi.name, ())
            if name in found:
                return vi.name, found.index(name)
    return (f"which is symbolic ({name!r}) and no graph input has a dim of that name, so "
            f"it cannot be read at run time (give a [B, T] mask or fixed input dims)")


def mask_form(view: GraphView, node: onnx.NodeProto, symbolic: bool) -> MaskForm | str:
    """The supported form of the node's int32 mask, or the reason it is refused.

    symbolic: the model has symbolic input dims (a constant key length would be
    a guess unless read from a graph input)."""
    mask = int_mask(view, node)
    assert mask is not None
    info = view.info(mask)
    what = f"{node.op_type} mask {mask!r}"
    if info.dtype != onnx.TensorProto.INT32:
        return (f"{what} is {info.dtype_name} (ONNX Runtime's kernels and the conversion "
                f"to an additive float mask take int32)")
    ins = list(node.input) + [""] * 8
    if ins[5]:
        return f"{what} is given together with attention_bias {ins[5]!r}"
    if ins[4 if node.op_type == "Attention" else 6]:
        return f"{what}: with a past key/value (KV cache)"
    filt = float(attr(node, "mask_filter_value", ORT_DEFAULT_FILTER))
    if not filt < 0.0:
        return f"{what}: mask_filter_value {filt:g} is not negative (not a mask)"
    value = filt if filt > KERNEL_EXCLUDE else VALUE_FLOOR
    shape = info.shape
    q = view.info(node.input[0]).shape
    batch = q[0] if q is not None and len(q) >= 1 else None
    src, axis, t = _kv_length(view, node)
    if not src or t is None:
        return f"{what}: key length unknown (the key/input is not [B, T, D])"
    if shape is None:
        return f"{what}: rank unknown"
    qlen = q[1] if q is not None and len(q) == 3 else None
    if len(shape) == 1:
        if not (isinstance(batch, int) and isinstance(shape[0], int)):
            return f"{what} [{shape[0]}]: its length or the batch size is unknown"
        if shape[0] == batch:
            form = "lengths"
        elif shape[0] == 2 * batch and node.op_type == "Attention":
            form = "start_end"
        else:
            return (f"{what} has shape {list(shape)} with batch {batch}: only the [B] end "
                    f"positions{' and [2B] end/start positions' * (node.op_type == 'Attention')}"
                    f" are converted")
        if src in view.graph_inputs:
            return MaskForm(mask, form, value, 0, src, axis, filt)
        if not symbolic and isinstance(t, int):
            return MaskForm(mask, form, value, int(t), filter_value=filt)
        found = _key_length_source(view, src, axis)
        if isinstance(found, int):  # fixed although other input dims are symbolic
            return MaskForm(mask, form, value, found, filter_value=filt)
        if isinstance(found, tuple):  # the graph input dim it equals, read at run time
            return MaskForm(mask, form, value, 0, found[0], found[1], filt)
        return f"{what} [{shape[0]}] needs the key length of {src!r}, {found}"
    if len(shape) in (2, 3):
        if isinstance(shape[-1], int) and isinstance(t, int) and shape[-1] != t:
            return (f"{what} has shape {list(shape)}: its last dim is not the key length "
                    f"{t}")
        if len(shape) == 3 and not (isinstance(shape[1], int) and shape[1] == qlen):
            return (f"{what} has shape {list(shape)}: its dim 1 is not the query length "
                    f"{qlen}")
        form = "key_mask" if len(shape) == 2 else "query_key_mask"
        return MaskForm(mask, form, value, filter_value=filt)
    return (f"{what} is {len(shape)}-D {list(shape)}: only [B] / [2B] positions and "
            f"[B, T] / [B, S, T] 0/1 masks are converted")


def converted_name(f: MaskForm) -> str:
    """The float twin's tensor name (one per mask, form, key length and value)."""
    positions = f.form in ("lengths", "start_end")
    t = f"t{f.t}" if f.t else (f"{f.t_source}:{f.t_axis}" if positions else "")
    return f"{f.mask}::xdna_additive_mask[{f.form}{',' + t if t else ''},{f.value:g}]"


@dataclass
class Conversion:
    """What add_mask_conversions put in the graph for one float twin."""

    output: str
    nodes: list[str]
    initializers: list[str]
    attentions: list[str]
    note: str = ""  # fully masked rows differ from ONNX Runtime CPU (filter < -10000)


def _conversion_nodes(f: MaskForm, out: str, attention: str
                      ) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    p = out  # names derive from the twin's name: unique per twin
    kind = {"lengths": "[B] end positions", "start_end": "[2B] end/start positions",
            "key_mask": "[B, T] 0/1 key mask", "query_key_mask": "[B, S, T] 0/1 mask"}[f.form]
    target = "[B, 1, S, T]" if f.form == "query_key_mask" else "[B, 1, 1, T]"
    doc = (f"{MARK}: int32 {kind} {f.mask!r} -> additive float mask {target} "
           f"(0 keep, {f.value:g} masked) for attention {attention!r}")
    inits = [numpy_helper.from_array(np.array(0.0, np.float32), f"{p}/zero"),
             numpy_helper.from_array(np.array(f.value, np.float32), f"{p}/value")]
    nodes: list[onnx.NodeProto] = []

    def node(op: str, ins: list[str], **kw) -> str:
        o = f"{p}/{op}_{len(nodes)}"
        nodes.append(helper.make_node(op, ins, [o], name=o, doc_string=doc, **kw))
        return o

    if f.form in ("key_mask", "query_key_mask"):
        inits.append(numpy_helper.from_array(np.array(0, np.int32), f"{p}/zero_i32"))
        keep = node("Greater", [f.mask, f"{p}/zero_i32"])
    else:
        col_shape = [-1, 1] if f.form == "lengths" else [2, -1, 1]
        inits.append(numpy_helper.from_array(np.array(col_shape, np.int64), f"{p}/col"))
        if f.t:
            inits.append(numpy_helper.from_array(np.arange(f.t, dtype=np.int64), f"{p}/range"))
            rng = f"{p}/range"
        else:
            inits += [numpy_helper.from_array(np.array(0, np.int64), f"{p}/zero_i64"),
                      numpy_helper.from_array(np.array(1, np.int64), f"{p}/one_i64"),
                      numpy_helper.from_array(np.array(f.t_axis, np.int64), f"{p}/axis")]
            shape = node("Shape", [f.t_source])
            t = node("Gather", [shape, f"{p}/axis"], axis=0)
            rng = node("Range", [f"{p}/zero_i64", t, f"{p}/one_i64"])
        pos = node("Cast", [f.mask], to=onnx.TensorProto.INT64)
        col = node("Reshape", [pos, f"{p}/col"])
        if f.form == "lengths":
            keep = node("Less", [rng, col])
        else:  # [2, B, 1]: j < end[b] and j >= start[b] (ORT clips start to T)
            inits += [numpy_helper.from_array(np.array(0, np.int64), f"{p}/end_row"),
                      numpy_helper.from_array(np.array(1, np.int64), f"{p}/start_row")]
            end = node("Gather", [col, f"{p}/end_row"], axis=0)
            start = node("Gather", [col, f"{p}/start_row"], axis=0)
            keep = node("And", [node("Less", [rng, end]), node("GreaterOrEqual", [rng, start])])
    add = node("Where", [keep, f"{p}/zero", f"{p}/value"])
    if f.form == "query_key_mask":
        inits.append(numpy_helper.from_array(np.array([1], np.int64), f"{p}/axis1"))
        nodes.append(helper.make_node("Unsqueeze", [add, f"{p}/axis1"], [out],
                                      name=f"{p}/Unsqueeze_out", doc_string=doc))
    else:
        inits.append(numpy_helper.from_array(np.array([0, 1, 1, -1], np.int64), f"{p}/shape4"))
        nodes.append(helper.make_node("Reshape", [add, f"{p}/shape4"], [out],
                                      name=f"{p}/Reshape_out", doc_string=doc))
    return nodes, inits


def add_mask_conversions(model: onnx.ModelProto, dims: dict[str, int] | None = None
                         ) -> list[Conversion]:
    """Give each supported int32 mask of a fused com.microsoft Attention /
    MultiHeadAttention in the main graph its float twin (in place; nothing is
    added when no such node has an int mask). Returns what was added."""
    from ..capability.analyze import MAX_OPSET, MIN_OPSET, model_opset
    from ..capability.shapes import infer_shapes

    fused = [i for i, n in enumerate(model.graph.node) if n.domain == "com.microsoft"
             and n.op_type in ("Attention", "MultiHeadAttention")
             and len(n.input) > mask_slot(n) and n.input[mask_slot(n)]]
    if not fused:
        return []
    opset = model_opset(model)
    if not MIN_OPSET <= opset <= MAX_OPSET:  # nothing is matched (the nodes use opset 13)
        return []
    try:
        shaped = infer_shapes(model, dims)
    except Exception:  # noqa: BLE001 - analyze() reports a model it cannot read
        return []
    view = GraphView.build(shaped.model.graph, "", None, opset)
    view.dim_names = key_dim_names(model)
    symbolic = bool(shaped.bindings)
    existing = {o for n in model.graph.node for o in n.output}  # a second partition
    done: dict[str, Conversion] = {}
    new_nodes: dict[int, list[onnx.NodeProto]] = {}  # attention position -> nodes before it
    for i in fused:
        n = model.graph.node[i]
        if int_mask(view, n) is None:
            continue
        f = mask_form(view, n, symbolic)
        if isinstance(f, str):
            continue
        out = converted_name(f)
        if out in existing:
            continue
        if out in done:
            done[out].attentions.append(n.name)
            continue
        nodes, inits = _conversion_nodes(f, out, n.name)
        model.graph.initializer.extend(inits)
        new_nodes.setdefault(i, []).extend(nodes)
        note = ""
        if f.filter_value <= KERNEL_EXCLUDE and f.filter_value != ORT_DEFAULT_FILTER:
            note = (f"mask {f.mask!r} (mask_filter_value {f.filter_value:g}): a row whose "
                    f"every key is masked gets softmax over its raw logits in the NPU "
                    f"region; ONNX Runtime's CPU kernel adds {f.filter_value:g} in float32, "
                    f"which rounds the logits away (at float32's lowest value: a uniform "
                    f"average over all keys). Rows with a kept key agree")
        done[out] = Conversion(out, [x.name for x in nodes], [t.name for t in inits],
                               [n.name], note)
    if new_nodes:
        order: list[onnx.NodeProto] = []
        for i, n in enumerate(model.graph.node):
            order.extend(new_nodes.get(i, ()))
            order.append(n)
        del model.graph.node[:]
        model.graph.node.extend(order)
    return list(done.values())


def prune_conversions(model: onnx.ModelProto, added: Iterable[Conversion],
                      read: set[str]) -> set[str]:
    """Remove (in place) the conversions whose twin no NPU region reads; returns the
    removed node names."""
    from ..rewrite.graph_edit import drop_unread_initializers, remove_nodes

    gone_nodes: set[str] = set()
    gone_inits: set[str] = set()
    for c in added:
        if c.output not in read:
            gone_nodes.update(c.nodes)
            gone_inits.update(c.initializers)
    if gone_nodes:
        remove_nodes(model, gone_nodes)
        drop_unread_initializers(model, gone_inits)
    return gone_nodes


def conversion_reason(node: onnx.NodeProto) -> str | None:
    """The report's reason for a conversion node (None for any other node)."""
    return added_node_reason(node, MARK, "mask conversion",
                             "element-wise on the CPU, the attention region reads the float mask")
