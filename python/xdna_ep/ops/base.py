"""What one region op family is: the record every module in xdna_ep.ops fills in.

An op family owns everything the pipeline knows about one kind of NPU
operation (cf. ONNX Runtime QNN EP's op builders, which keep the support check
and the lowering in one class; TVM BYOC's pattern tables):

- `matchers`: recognise it in the ONNX graph (capability/ asks these), each
  returning an OpMatch whose `attrs` is the family's typed attrs dataclass;
- `lower`: turn one match into kernel calls on float tensors (LOps, compile/);
- `stages`: for each stage kernel it emits, the buffer rules and the emit
  function that writes the stage (compile/build.py asks these);
- `cpu_reason`: for an ONNX node of an op type it knows that no matcher took,
  the reason the report shows (capability/reasons.py asks it).

The table of families is xdna_ep/ops/registry.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import onnx

if TYPE_CHECKING:
    from ..capability.graph import GraphView
    from ..compile.build import Emitter
    from ..compile.ir import LOp
    from ..compile.model_index import ModelIndex
    from ..plan import OpMatch

Matcher = Callable[["GraphView", onnx.NodeProto], "OpMatch | None"]
Lowering = Callable[["ModelIndex", "OpMatch"], "list[LOp]"]
Emit = Callable[["Emitter", int, "LOp"], None]


@dataclass(frozen=True, kw_only=True)
class MatchAttrs:
    """Base of every family's typed match attributes.

    elements: output elements per inference (the cost model's CPU estimate for
    ops without MACs); filled in by capability.matching.build_match.
    """

    elements: int = 0


@dataclass(frozen=True)
class StageRule:
    """How compile/ treats the buffers of one stage kernel, and how it emits it.

    int8_inputs: input slots that must be int8 (a quantize stage is added if the
    producer emits float32). flex_inputs: slots that read whatever dtype the
    producer emits. int8_output: "never"; "static" = int8 when every consumer
    takes int8 and the scales are static; "always" (the kernel has no float32
    output). scaled_inputs: slots that need a static scale although no int8
    buffer of them exists (the kernel quantizes its float32 input itself).
    """

    kernel: str
    emit: Emit
    int8_inputs: tuple[int, ...] = ()
    flex_inputs: tuple[int, ...] = ()
    int8_output: Literal["never", "static", "always"] = "never"
    scaled_inputs: tuple[int, ...] = ()
    int8_weight: tuple[str, int] | None = None


@dataclass(frozen=True)
class OpFamily:
    """One region op: its match, typed attrs, lowering and emission."""

    kind: str
    attrs_type: type[MatchAttrs]
    matchers: Sequence[Matcher]
    lower: Lowering
    stages: Sequence[StageRule] = ()
    cpu_reason: Callable[[GraphView, onnx.NodeProto], str | None] | None = None

    def attrs_from_dict(self, values: dict[str, Any]) -> MatchAttrs:
        """The typed attrs from their JSON form (a cached PartitionPlan)."""
        known = {f.name for f in dataclasses.fields(self.attrs_type)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{self.kind} match attrs: unknown fields {unknown}")
        return self.attrs_type(**values)
