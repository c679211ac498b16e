"""Lowered region + quantization -> Program (stages, buffers, launches).

Buffer policy (why): tensors stay int8 between NPU ops, because every int8
hop is a quarter of the bytes of float32 and the kernels consume int8
anyway; float32 only where the design keeps float (region edges, the
residual stream through add, layernorm input, conv1d input). A producer
emits int8 when every consumer takes int8 and the tensor is not a region
output; otherwise float32, plus a quantize stage for int8 consumers. In
dynamic mode only gelu produces int8 (STAGES.md: matmul/layernorm/attention
have no dynamic int8 output), so explicit quantize stages carry the scales.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..quantize.region import QuantizedRegion
from .ir import LoweredRegion
from .program import Dim, Launch, Program, Stage, TensorSpec

# the manifest's fused-design lookup (kernel_specs.manifest.find_design) or a test's
FindDesign = Callable[[Sequence[str]], Any]  # -> design name, DesignEntry or None

@dataclass
class BufferPlan:
    """Per tensor: the dtype its producer emits, and which forms are needed."""

    produced: dict[str, str] = field(default_factory=dict)  # tensor -> "int8" | "float32"
    need_int8: set[str] = field(default_factory=set)
    need_float: set[str] = field(default_factory=set)
    scaled: set[str] = field(default_factory=set)  # tensors that need a static scale

    def has_int8(self, t: str) -> bool:
        return self.produced.get(t) == "int8" or t in self.need_int8


def plan_buffers(lr: LoweredRegion, mode: str) -> BufferPlan:
    """Which dtype every producer emits, and which tensors need a static scale.

    Flexible consumers (layernorm) read whatever their producer emits, so they
    add no requirement; conv1d quantizes its float32 input itself and so needs
    that input's scale although no int8 buffer of it exists.
    """
    from ..ops import registry as op_registry  # at call time: ops/ imports compile/

    bp = BufferPlan()
    rules = {op.kernel: op_registry.stage_rule(op.kernel) for op in lr.ops}
    for t in lr.inputs:
        bp.produced[t] = "float32"
    bp.need_float.update(lr.outputs)
    for op in lr.ops:
        for slot, t in enumerate(op.inputs):
            if slot in rules[op.kernel].int8_inputs:
                bp.need_int8.add(t)
            elif slot not in rules[op.kernel].flex_inputs:
                bp.need_float.add(t)
    for op in lr.ops:
        out = rules[op.kernel].int8_output
        int8 = out == "always" or (
            out == "static" and mode == "static"
            and all(t in bp.need_int8 and t not in bp.need_float for t in op.outputs))
        for t in op.outputs:
            bp.produced[t] = "int8" if int8 else "float32"
    if mode == "static":
        bp.scaled.update(op.inputs[slot] for op in lr.ops
                         for slot in rules[op.kernel].scaled_inputs)
        bp.scaled.update(t for t in bp.produced if bp.has_int8(t))
    return bp


def q8(t: str) -> str:
    return f"{t}::q8"


def q8s(t: str) -> str:
    return f"{t}::q8.scale"


class Emitter:
    """Writes a lowered region's stages; the op families' emit functions
    (StageRule.emit) call its helpers (int8_in, float_in, out_bufs, consts, push)."""

    def __init__(self, lr: LoweredRegion, bp: BufferPlan, qr: QuantizedRegion) -> None:
        self.lr, self.bp, self.qr = lr, bp, qr
        self.dynamic = qr.mode == "dynamic"
        self.stages: list[Stage] = []
        self.constants: dict[str, Any] = {}
        self.have: set[str] = set(lr.inputs)  # buffers available so far
        self.offsets = qr.offsets  # centred int8 ranges (passes/gelu_offset.py)

    def scale(self, t: str) -> float:
        """The int8 scale of t (a centred GELU output's own, else the calibrated one)."""
        return self.offsets[t][1] if t in self.offsets else self.qr.scale(t)

    # -- conversions -------------------------------------------------------------
    q8 = staticmethod(q8)  # the int8 buffer name of a tensor, for the emit functions

    def int8_in(self, t: str, dynamic_attrs: dict[str, Any] | None = None) -> tuple[str, ...]:
        """The int8 form of t (a quantize stage the first time); dynamic_attrs: extra
        attrs of that dynamic quantize stage (gelu's neg_limit), ignored in static mode."""
        if q8(t) not in self.have:
            attrs: dict[str, Any] = ({"dynamic": True, **(dynamic_attrs or {})} if self.dynamic
                                     else {"out_scale": self.scale(t)})
            outs = (q8(t), q8s(t)) if self.dynamic else (q8(t),)
            self.stages.append(Stage("quantize", (t,), outs, {}, attrs))
            self.have.update(outs)
        return (q8(t), q8s(t)) if self.dynamic else (q8(t),)

    def float_in(self, t: str) -> str:
        if t not in self.have and t in self.offsets:  # passes/gelu_offset.py rules this out
            raise RuntimeError(f"internal: centred GELU output {t!r} needs a float32 form")
        if t not in self.have:
            ins = (q8(t), q8s(t)) if self.dynamic else (q8(t),)
            attrs: dict[str, Any] = ({"dynamic": True} if self.dynamic
                                     else {"in_scale": self.scale(t)})
            self.stages.append(Stage("dequantize", ins, (t,), {}, attrs))
            self.have.add(t)
        return t

    def out_bufs(self, t: str) -> tuple[str, ...]:
        if self.bp.produced[t] == "int8":
            return (q8(t), q8s(t)) if self.dynamic else (q8(t),)
        return (t,)

    def const(self, i: int, role: str, value: Any) -> str:
        name = f"r{self.lr.region_id}.op{i}.{self.lr.ops[i].kernel}.{role}"
        self.constants[name] = value
        return name

    # -- ops ---------------------------------------------------------------------
    def emit(self) -> None:
        from ..ops import registry as op_registry  # at call time: ops/ imports compile/

        for i, op in enumerate(self.lr.ops):
            op_registry.stage_rule(op.kernel).emit(self, i, op)
        for t in self.lr.outputs:
            self.float_in(t)

    def push(self, kernel: str, ins: Sequence[str], outs: Sequence[str], consts: dict[str, str],
              attrs: dict[str, Any], op: Any, dynamic: bool | None = None) -> None:
        if self.dynamic if dynamic is None else dynamic:
            attrs["dynamic"] = True
        self.stages.append(Stage(kernel, tuple(ins), tuple(outs), consts, attrs,
                                 tuple(op.source_nodes)))
        self.have.update(outs)

    def consts(self, i: int, roles: Sequence[str]) -> dict[str, str]:
        c = self.qr.op_constants[i]
        return {r: self.const(i, r, c[r]) for r in roles if r in c}


def _design_name(found: Any) -> str | None:
    """find_design may return a name or a manifest DesignEntry (with .name)."""
    if found is None or isinstance(found, str):
        return found or None
    name = getattr(found, "name", None)
    if not isinstance(name, str):
        raise TypeError(f"find_design returned {found!r}: expected a design name or entry")
    return name


def _takes(found: Any, chain: Sequence[Stage]) -> bool:
    """Whether a found design runs `chain` in its stages' mode: a manifest design
    decides (DesignEntry.takes: static stages only in its static form, dynamic-mode
    stages only in its dynamic form, whose added quantizes reduce their scale on the
    array); a bare name from a test's find_design takes whatever it matched."""
    takes = getattr(found, "takes", None)
    if takes is None:
        return True
    return bool(takes([st.kernel for st in chain],
                      [bool(st.attrs.get("dynamic")) for st in chain]))


def group_launches(stages: Sequence[Stage], find_design: FindDesign | None) -> list[Launch]:
    """The fewest launches that cover the stages in order: each launch is a chain of
    consecutive stages the manifest has a design for, or one stage on its own
    (design = its kernel name). Among equally short groupings the one whose
    launches start longest wins (what a greedy longest-first grouping gives
    where that is already optimal).

    Why not greedy: designs overlap. Whisper's last layer is ffn_block, ffn_block
    (the outlier split), layernorm; greedy would take ffn_ln_matmul across the
    first two blocks and leave gelu, matmul, add, layernorm as four launches."""
    n = len(stages)
    chains: list[list[tuple[int, str]]] = []  # per start: (end, design), longest first
    for i in range(n):
        options: list[tuple[int, str]] = []
        if find_design is not None:
            for j in range(n, i + 1, -1):
                found = find_design([st.kernel for st in stages[i:j]])
                if not _takes(found, stages[i:j]):
                    continue  # the design does not run these stages in their mode
                name = _design_name(found)
                if name:
                    options.append((j, name))
        single = _design_name(find_design([stages[i].kernel])) if find_design else None
        options.append((i + 1, single or stages[i].kernel))
        chains.append(options)
    best = [0] * (n + 1)  # best[i]: fewest launches for stages[i:]
    pick: list[tuple[int, str]] = [(n, "")] * n
    for i in range(n - 1, -1, -1):
        best[i] = n + 1
        for j, name in chains[i]:  # longest first: ties keep the longer first launch
            if 1 + best[j] < best[i]:
                best[i], pick[i] = 1 + best[j], (j, name)
    launches: list[Launch] = []
    i = 0
    while i < n:
        j, name = pick[i]
        launches.append(Launch(name, tuple(stages[i:j])))
        i = j
    return launches


def build_program(lr: LoweredRegion, bp: BufferPlan, qr: QuantizedRegion, name: str,
                  shapes: dict[str, tuple[Dim, ...]], find_design: FindDesign | None,
                  kernel_version: str = "") -> Program:
    em = Emitter(lr, bp, qr)
    em.emit()
    prog = Program(
        name=name,
        inputs=tuple(TensorSpec(t, "float32", shapes.get(t, ())) for t in lr.inputs),
        outputs=tuple(TensorSpec(t, "float32", shapes.get(t, ())) for t in lr.outputs),
        launches=tuple(group_launches(em.stages, find_design)),
        constants=em.constants,
        kernel_version=kernel_version,
        meta={"region": lr.region_id, "macs": int(lr.macs), "quantization": qr.mode,
              "calibration_method": qr.method,
              "source_nodes": [n for op in lr.ops for n in op.source_nodes],
              "scales": dict(sorted({**qr.scales,
                                     **{t: v[1] for t, v in em.offsets.items()}}.items())),
              "offsets": {t: v[0] for t, v in sorted(em.offsets.items())},
              "fused_qkv": any("split" in op.attrs for op in lr.ops)},
    )
    prog.validate()
    return prog
