"""THE table of region op families, in claiming order.

capability/ runs the families' matchers in this order (larger patterns first,
so a Gelu's Mul nodes are not taken by something smaller); compile/ asks it how
to lower a match of a kind and how to emit a stage of a kernel. A new region op
is one module in xdna_ep/ops/ plus one line in OPS.
"""

from __future__ import annotations

from typing import Any

from . import add, attention, conv1d, gelu, layernorm, matmul
from .base import MatchAttrs, Matcher, OpFamily, StageRule

OPS: list[OpFamily] = [
    attention.OP,
    layernorm.OP,
    gelu.OP,
    conv1d.OP,
    matmul.OP,
    add.OP,
]


def register(op: OpFamily, *, before: str | None = None) -> OpFamily:
    """Adds a family at the end of the claiming order, or before family `before`
    (a family whose pattern contains another's nodes must claim first)."""
    if any(o.kind == op.kind for o in OPS):
        raise ValueError(f"op family {op.kind!r} registered twice")
    taken = {r.kernel for o in OPS for r in o.stages}
    clash = sorted(taken & {r.kernel for r in op.stages})
    if clash:
        raise ValueError(f"op family {op.kind!r}: stage kernels {clash} are already emitted "
                         f"by another family")
    pos = len(OPS) if before is None else [o.kind for o in OPS].index(before)
    OPS.insert(pos, op)
    return op


def unregister(kind: str) -> None:
    OPS[:] = [o for o in OPS if o.kind != kind]


def kinds() -> tuple[str, ...]:
    return tuple(o.kind for o in OPS)


def matchers() -> list[tuple[str, Matcher]]:
    """(kind, matcher) in claiming order."""
    return [(o.kind, fn) for o in OPS for fn in o.matchers]


def family(kind: str) -> OpFamily:
    for o in OPS:
        if o.kind == kind:
            return o
    raise KeyError(f"no region op family {kind!r} (known: {list(kinds())})")


def stage_rule(kernel: str) -> StageRule:
    """The rule (buffers + emit) of stage kernel `kernel`, from the family that emits it."""
    for o in OPS:
        for r in o.stages:
            if r.kernel == kernel:
                return r
    raise KeyError(f"no region op family emits stage kernel {kernel!r}")


def attrs_from_dict(kind: str, values: dict[str, Any]) -> MatchAttrs:
    return family(kind).attrs_from_dict(values)
