"""compile_plan: every NPU region of a PartitionPlan -> one Program.

Pipeline per region: lower (each match by its op family, ops/; then the
"lowered" graph passes, passes/) -> plan buffers (int8 vs float32) -> the
"calibrated" passes (all regions) -> quantize (weights per channel; activation
scales from onnxruntime's calibrators, or dynamic) -> the "quantized" passes ->
build stages (each op family's emit) and launches -> measure SQNR against the
FP32 model on the calibration data. The passes and their order: passes/__init__.py. A region that
cannot be compiled is moved to the CPU with its reason (Region.cost_reason
and PartitionPlan.fallbacks), never compiled into wrong numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnxruntime.quantization.calibrate import CalibrationDataReader

from .. import passes as graph_passes
from ..cost import dynamic_traffic
from ..kernel_specs import manifest
from ..kernel_specs.matmul import SUPPORTS_SPLIT
from ..passes.base import PassContext
from ..plan import PartitionPlan, Region
from ..quantize.calibration import Tap, collect_ranges, materialize, method_name
from ..quantize.region import QuantizedRegion, quantize_region
from ..quantize.weights import CorruptWeightError, WeightError
from .build import BufferPlan, FindDesign, build_program, plan_buffers
from .execute import ProgramRunner
from .lower import LoweredRegion, lower_region
from .model_index import ModelIndex, NotLowerable
from .observe import observe, sqnr_db
from .program import Program

CalibrationSource = (CalibrationDataReader | str | Path | Iterable[Mapping[str, np.ndarray]]
                     | None)

SQNR_CAP_DB = 300.0  # stored instead of +inf (bit-identical output) to keep JSON strict


@dataclass
class CompileOptions:
    """How regions are quantized and compiled.

    quantization: "static" (scales from calibration data, fixed in the
    program) or "dynamic" (kernels compute per-tensor scales at run time).
    calibration: a CalibrationDataReader, an .npz file/directory (one sample
    per file, arrays named after model inputs) or a list of feed dicts.
    Required for static; optional for dynamic (then SQNR is not measured).
    calibrate_method: "minmax" | "entropy" | "percentile" (default: percentile
    with percentile=99.999, which clips the rare extreme values of Whisper's
    GELU and layernorm outputs). Measured on the real tiny.en encoder (bundled
    speech: calibrated on half the clips, cosine of last_hidden_state on the
    held-out half, worst window; GELU offset and outlier split on; `python -m
    xdna_ep bench accuracy`): percentile 99.999 -> 0.9968, 99.9999 -> 0.9967,
    99.99 -> 0.9949, minmax -> 0.9939, entropy -> 0.887.
    fuse_qkv: one matmul for q/k/v projections that share their input (a
    split-output matmul stage); None = when the matmul kernel supports it.
    find_design: override of the manifest's fused-design lookup (tests).
    split_outliers: rewrite fc1 -> gelu -> fc2 chains whose fc1 output has outlier
    channels (largest value > outlier_ratio x the median channel maximum on the
    calibration data; without calibration data, a weight bound > 4 x the median
    bound for layernorm-fed MLPs) into their own int8 tensors
    (passes/split_outliers.py: a permutation of fc1's columns + a split of fc2's K
    sum; two gelu stages, two fc2 matmuls and one add instead of one gelu and one
    fc2). Measured in docs/ACCURACY.md.
    gelu_offset: static mode: a GELU output read only by matmuls gets a centred
    int8 range (an offset built into the GELU table and folded into the matmul's
    bias; passes/gelu_offset.py), halving its quantization step.
    """

    quantization: Literal["static", "dynamic"] = "static"
    calibration: CalibrationSource = None
    calibrate_method: str = "percentile"
    percentile: float = 99.999
    calibrate_extra: dict[str, object] | None = None  # onnxruntime calibrator extra_options
    fuse_qkv: bool | None = None
    measure_sqnr: bool = True
    find_design: FindDesign | None = None
    split_outliers: bool = True
    outlier_ratio: float = 8.0
    gelu_offset: bool = True

    def __post_init__(self) -> None:
        if self.quantization not in ("static", "dynamic"):
            raise ValueError(f"CompileOptions.quantization must be 'static' or 'dynamic', "
                             f"got {self.quantization!r}")
        self.calibrate_method = method_name(self.calibrate_method)
        if not 0.0 < float(self.percentile) <= 100.0:
            raise ValueError(f"CompileOptions.percentile must be in (0, 100], "
                             f"got {self.percentile!r}")
        if not float(self.outlier_ratio) > 1.0:
            raise ValueError(f"CompileOptions.outlier_ratio must be > 1, "
                             f"got {self.outlier_ratio!r}")


@dataclass
class _Work:
    region: Region
    lowered: LoweredRegion
    buffers: BufferPlan


def _program_name(model_name: str, rid: int) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", model_name or "model")
    return f"{base}.region{rid}"


def _to_cpu(plan: PartitionPlan, region: Region, reason: str) -> None:
    region.placement = "cpu"
    region.cost_reason = f"not compiled for the NPU: {reason}"
    region.launches = region.reductions = region.f32_traffic_bytes = 0
    plan.fallbacks.append(f"region {region.id}: {reason}")
    for n in plan.nodes:
        if n.region == region.id:
            n.placement = "cpu"
            n.reason = f"region {region.id} not compiled: {reason}"


def _all_to_cpu(plan: PartitionPlan, corrupt: list[str]) -> dict[int, Program]:
    """A corrupted weight anywhere: every region stays on the CPU. Why not just its
    own region: the values computed from it (e.g. 1e36 from one flipped bit) flow
    into the other regions, where no int8 scale can represent them, so their int8
    results would silently differ from the FP32 model's (fuzz finding F1)."""
    for r in plan.regions:
        if r.placement == "npu":
            _to_cpu(plan, r, f"the model has a corrupted weight, so no region runs in "
                             f"int8 ({corrupt[0]})")
    return {}


def compile_plan(model: onnx.ModelProto, plan: PartitionPlan, options: CompileOptions
                 ) -> dict[int, Program]:
    """Programs for the plan's NPU regions, keyed by region id.

    Side effects on `plan` (the report reads them): Region.sqnr_db,
    Region.launches, plan.quantization; regions that cannot be compiled get
    placement "cpu" with the reason.
    """
    if not isinstance(options, CompileOptions):
        raise TypeError(f"options must be CompileOptions, got {type(options).__name__}")
    idx = ModelIndex(model)
    static = options.quantization == "static"
    input_names = [i.name for i in model.graph.input if i.name not in
                   {t.name for t in model.graph.initializer}]
    samples = None
    if options.calibration is not None:
        samples = materialize(options.calibration, input_names)
    elif static and any(r.placement == "npu" for r in plan.regions):
        raise ValueError("static quantization needs calibration data "
                         "(CompileOptions.calibration); or use quantization='dynamic'")

    fuse = SUPPORTS_SPLIT if options.fuse_qkv is None else options.fuse_qkv
    ctx = PassContext(idx, options.quantization, fuse, options.split_outliers,
                      options.outlier_ratio, options.gelu_offset, model, samples)
    corrupt: list[str] = []  # CorruptWeightError messages: the whole model stays on CPU
    work: list[_Work] = []
    for r in plan.regions:
        if r.placement != "npu":
            continue
        r.sqnr_db, r.launches = None, 0  # never leave figures of an earlier compile
        r.reductions = r.f32_traffic_bytes = 0
        if static and r.graph:
            _to_cpu(plan, r, f"static calibration inside If branch {r.graph!r} is not "
                             f"supported (use quantization='dynamic')")
            continue
        try:
            lr = lower_region(idx, r, fuse, ctx)
            work.append(_Work(r, lr, plan_buffers(lr, options.quantization)))
        except (NotLowerable, WeightError) as e:
            _to_cpu(plan, r, getattr(e, "reason", str(e)))
            if isinstance(e, CorruptWeightError):
                corrupt.append(str(e))
    if corrupt:
        return _all_to_cpu(plan, corrupt)

    main = [w.lowered for w in work if not w.region.graph]
    if graph_passes.run_calibrated(main, ctx):  # regions may be rewritten: plan again
        for w in work:
            w.buffers = plan_buffers(w.lowered, options.quantization)

    ranges: dict[str, tuple[float, float]] = {}
    if static and work:
        taps: dict[str, Tap] = {}
        for w in work:
            taps.update({t: w.lowered.taps[t] for t in w.buffers.scaled})
        assert samples is not None
        ranges = collect_ranges(model, taps, samples, options.calibrate_method,
                                options.percentile, options.calibrate_extra)

    find = options.find_design or manifest.find_design
    kv = manifest.kernel_version()
    programs: dict[int, Program] = {}
    for w in work:
        try:
            qr = quantize_region(w.region.id, [op.kernel for op in w.lowered.ops],
                                 [op.weights for op in w.lowered.ops], options.quantization,
                                 options.calibrate_method, w.buffers.scaled, ranges,
                                 labels=[f"node {'/'.join(op.source_nodes)}" if op.source_nodes
                                         else f"region{w.region.id}.op{i}"
                                         for i, op in enumerate(w.lowered.ops)])
            # inputs are rank-checked at every run, so theirs must be known; an
            # output's unknown shape is recorded as () and not checked
            shapes = {**{t: idx.shape(t) for t in w.lowered.outputs},
                      **{t: idx.boundary_shape(t) for t in w.lowered.inputs}}
            graph_passes.run_quantized(w.lowered, w.buffers, qr, ctx)
            prog = build_program(w.lowered, w.buffers, qr,
                                 _program_name(plan.model_name, w.region.id), shapes, find, kv)
        except (ValueError, WeightError, NotLowerable) as e:
            _to_cpu(plan, w.region, getattr(e, "reason", str(e)))
            if isinstance(e, CorruptWeightError):
                corrupt.append(str(e))
            continue
        prog.meta.update(w.lowered.meta)  # what the passes recorded (outlier_channels)
        programs[w.region.id] = prog
        w.region.launches = prog.num_launches
        traffic = dynamic_traffic(prog, set(manifest.load().designs), plan.dims)
        w.region.reductions, w.region.f32_traffic_bytes = traffic.reductions, traffic.f32_bytes

    if corrupt:
        return _all_to_cpu(plan, corrupt)
    if options.measure_sqnr and samples is not None and programs:
        _measure(model, plan, programs, samples)
    mode = options.quantization
    plan.quantization = f"int8 {mode}" + (f" ({options.calibrate_method})" if static else "")
    return programs


def _measure(model: onnx.ModelProto, plan: PartitionPlan, programs: dict[int, Program],
             samples: list[dict[str, np.ndarray]]) -> None:
    """Per-region SQNR of the program vs the FP32 model on the calibration samples."""
    regions = {r.id: r for r in plan.regions}
    for rid, p in programs.items():
        if regions[rid].graph:
            p.meta["sqnr_note"] = "not measured: region is inside an If branch"
    main = {rid: p for rid, p in programs.items() if not regions[rid].graph}
    if not main:
        return
    names = [t.name for p in main.values() for t in (*p.inputs, *p.outputs)]
    values = observe(model, names, samples)
    for rid, prog in main.items():
        ref, act = [], []
        try:
            runner = ProgramRunner(prog)
            for v in values:
                out = runner.run({t.name: np.asarray(v[t.name], np.float32)
                                  for t in prog.inputs})
                for t in prog.outputs:
                    ref.append(v[t.name])
                    act.append(out.outputs[t.name])
            db = sqnr_db(ref, act)
        except (ValueError, TypeError, KeyError, NotImplementedError, RuntimeError) as e:
            # a kernel refused the program's shapes/attrs: announce it, never guess
            _to_cpu(plan, regions[rid], f"program failed on the calibration data: "
                                        f"{type(e).__name__}: {e}")
            del programs[rid]
            continue
        if math.isnan(db) or db == float("-inf"):
            _to_cpu(plan, regions[rid], "INT8 program output is not finite or carries no "
                                        "signal on the calibration data")
            del programs[rid]
            continue
        db = min(db, SQNR_CAP_DB)
        regions[rid].sqnr_db = round(db, 2)
        prog.meta["sqnr_db"] = round(db, 2)
        prog.meta["sqnr_samples"] = len(values)
        prog.meta["sqnr_executor"] = dict(sorted(runner.used.items()))


def compile_region(model: onnx.ModelProto, region: Region, options: CompileOptions,
                   model_name: str = "model") -> tuple[Program | None, PartitionPlan]:
    """Convenience for one region (tests, tools): returns (program or None, the plan)."""
    plan = PartitionPlan(model_name, [], [region])
    progs = compile_plan(model, plan, options)
    return progs.get(region.id), plan



__all__ = ["CompileOptions", "QuantizedRegion", "compile_plan", "compile_region"]
