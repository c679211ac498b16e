"""The partition driver: capability -> regions -> placement by cost.

Returns a PartitionPlan; quantize/compile (compile_plan) and rewrite run after
it on the same ModelProto (node names are made unique in place here, and the
attention mask conversion nodes are added in place, so every later stage sees
the names and nodes the plan uses).

    plan = partition("encoder_model.onnx")             # a path: loaded here
    plan = partition_model(model, exclude_ops=["Softmax"])   # a ModelProto
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import onnx

from .capability import CapabilityOptions, analyze, load_model
from .cost import CpuCostModel, NpuCostModel, place_by_cost
from .ops.patch_conv import PatchRewrite
from .plan import NodePlacement, PartitionPlan, Region
from .regions import build_regions

if TYPE_CHECKING:
    from .compile.api import CompileOptions

# reason categories that mean "the NPU could have taken it but did not"
FALLBACK_CATEGORIES = ("opset", "excluded", "dtype", "shape", "non-constant weight")


def partition_model(
    model: onnx.ModelProto,
    *,
    exclude_ops: Iterable[str] = (),
    exclude_nodes: Iterable[str] = (),
    disable_kinds: Iterable[str] = (),
    dims: dict[str, int] | None = None,
    dims_source: dict[str, str] | None = None,
    use_cost_model: bool = True,
    npu_cost: NpuCostModel | None = None,
    cpu_cost: CpuCostModel | None = None,
    device: str = "",
    device_reason: str = "",
    quantization: str = "",
    model_name: str = "",
    compile_options: CompileOptions | None = None,
) -> PartitionPlan:
    """Partition `model` (renames unnamed/duplicate nodes in place, adds the CPU
    nodes that convert a fused attention's int32 mask for its NPU region:
    ops/attention_masks.py, and replaces each patch-embedding Conv by CPU re-layout
    nodes and a MatMul: ops/patch_conv.py).

    exclude_ops / exclude_nodes / disable_kinds: keep these on CPU.
    dims: sizes for symbolic input dims (MACs and cost use them); dims_source
    says where each came from (recorded in the plan for the report).
    use_cost_model: False keeps every region on the NPU regardless of cost.
    A symbolic dim that neither `dims` nor a default binds is counted as 1; the
    cost model then decides nothing (a region priced at a guessed size of 1 is
    wrongly "too small"): regions keep their capability placement and the
    plan's dims_guessed names the dims (the provider never gets here with a
    guess: it compiles at the first run's shape instead).
    device / quantization: recorded in the plan for the report (later stages set them).
    compile_options: the options compile_plan will get (default: dynamic
    quantization, the provider's default); the cost model prices each region at the launches
    compile's grouping makes of its stage chain in that mode (compile/estimate.py).
    """
    if not isinstance(model, onnx.ModelProto):
        raise TypeError(f"model must be an onnx.ModelProto, got {type(model).__name__}")
    if isinstance(exclude_ops, str) or isinstance(exclude_nodes, str):
        raise TypeError("exclude_ops / exclude_nodes must be lists of names, not a string")
    options = CapabilityOptions(
        exclude_op_types=frozenset(exclude_ops), exclude_nodes=frozenset(exclude_nodes),
        disable_kinds=frozenset(disable_kinds), dims=dict(dims) if dims else None,
    )
    from .ops.attention_masks import add_mask_conversions, prune_conversions
    from .ops.patch_conv import add_patch_rewrites, settle_patch_rewrites

    # int32 attention masks get float twins (CPU nodes) the attention regions read
    conversions = add_mask_conversions(model, options.dims)
    # patch-embedding Convs become CPU re-layout nodes + a MatMul the matmul family takes
    patches: list[PatchRewrite] = []
    if "Conv" not in options.exclude_op_types and "matmul" not in options.disable_kinds:
        patches = add_patch_rewrites(model, dims=options.dims, skip=options.exclude_nodes)
    cap = analyze(model, options)
    regions = build_regions(cap)
    fallbacks = list(cap.fallbacks)
    if use_cost_model and cap.dims_guessed:
        moved = []
        unknown = ", ".join(cap.dims_guessed)
        for r in regions:
            r.placement = "npu"
            r.cost_reason = (f"cost not evaluated: symbolic dims {unknown} have no size "
                             "(give dims); placed by capability only")
    elif use_cost_model:
        _estimate_launches(model, regions, compile_options)
        moved = place_by_cost(regions, npu_cost, cpu_cost)
    else:
        moved = []
        for r in regions:
            r.placement = "npu"
            r.cost_reason = "cost model disabled (use_cost_model=False)"
    read = {t for r in regions if r.placement == "npu" for t in r.inputs}
    if conversions:  # twins no NPU region reads go again (model and report)
        gone = prune_conversions(model, conversions, read)
        cap.placements[:] = [p for p in cap.placements if p.name not in gone]
    moved_ids = {r.id for r in moved}
    notes = list(cap.notes)
    notes += [c.note for c in conversions if c.note and c.output in read]
    by_id = {r.id: r for r in regions}
    for p in cap.placements:
        if p.region in moved_ids:
            p.placement = "cpu"
            p.reason = f"{p.reason}; region {p.region} {by_id[p.region].cost_reason}"
    if patches:  # a patch MatMul no NPU region runs: the Conv comes back (model and report)
        on_npu = {n for r in regions if r.placement == "npu" for n in r.nodes}
        for undone in settle_patch_rewrites(model, patches, on_npu):
            _conv_back_in_report(cap.placements, undone)
    for r in moved:
        fallbacks.append(f"region {r.id} ({len(r.nodes)} nodes, {r.macs} MACs"
                         f"{', ' + r.graph if r.graph else ''}): {r.cost_reason}")
    for p in cap.placements:
        if p.placement == "cpu" and p.region is None and p.reason.startswith(
            FALLBACK_CATEGORIES[1:]
        ):
            fallbacks.append(f"node {p.name} ({p.op_type}): {p.reason}")
    if cap.dim_bindings:
        bound = ", ".join(f"{k}={v}" for k, v in cap.dim_bindings.items())
        notes.append(f"symbolic input dims bound for MACs/cost: {bound}")
    if any(p.graph for p in cap.placements):
        notes.append("If branches are analysed separately; MAC totals count every branch")
    name = model_name or model.graph.name or "model"
    return PartitionPlan(
        model_name=name, nodes=cap.placements, regions=regions, total_macs=cap.total_macs,
        device=device, device_reason=device_reason, quantization=quantization,
        fallbacks=fallbacks, notes=notes, dims=dict(cap.dim_bindings),
        dims_source={k: (dims_source or {}).get(k, "given" if dims and k in dims else
                         "guessed" if k in cap.dims_guessed else "default")
                     for k in cap.dim_bindings},
        dims_guessed=list(cap.dims_guessed),
    )


def _estimate_launches(model: onnx.ModelProto, regions: list[Region],
                       options: CompileOptions | None) -> None:
    """Region.estimated_launches / estimate_rule: what compile will make of each region
    (compile/estimate.py), so placement is not decided at one launch per matched op."""
    if not regions:
        return
    from .compile.api import CompileOptions
    from .compile.estimate import estimate_launches

    found = estimate_launches(model, regions, options or CompileOptions(quantization="dynamic",
                                                                  measure_sqnr=False))
    for r in regions:
        if r.id in found:
            r.estimated_launches, r.estimate_rule = found[r.id].launches, found[r.id].rule


def _conv_back_in_report(placements: list[NodePlacement], undone: PatchRewrite) -> None:
    """The report rows of an undone patch rewrite become one row for its Conv,
    which carries its MatMul's reason for staying on the CPU."""
    gone = set(undone.nodes)
    mm = next(p for p in placements if p.name == undone.matmul)
    row = NodePlacement(undone.conv, "Conv", "cpu",
                        f"{mm.reason} (the patch Conv's MatMul form is not on the NPU, so "
                        f"the Conv runs as it is)", macs=mm.macs, graph=mm.graph)
    first = next(i for i, p in enumerate(placements) if p.name in gone)
    placements[:] = ([p for p in placements[:first] if p.name not in gone] + [row]
                     + [p for p in placements[first:] if p.name not in gone])


def partition(model: onnx.ModelProto | str | os.PathLike[str], **kwargs) -> PartitionPlan:
    """partition_model() on a ModelProto or on a path (loaded with clear errors)."""
    if isinstance(model, onnx.ModelProto):
        return partition_model(model, **kwargs)
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a path or onnx.ModelProto, got {type(model).__name__}")
    path = Path(model)
    kwargs.setdefault("model_name", path.name)
    return partition_model(load_model(path), **kwargs)
