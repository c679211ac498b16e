"""Where the add design reads a and b and writes c: ONE definition imported by the
design (kernels/add/design.py, as `geometry`), by the host runtime
(xdna_ep.runtime.layout, as xdna_ep._kernels.add.geometry, to put the geometry
into PARAMS and to refuse what the design cannot do) and by the FAKE hardware of
the tests (which reads IN / WEIGHTS through these patterns, the design's side).

Why a broadcast costs no copy: `b` is a suffix of `a`'s shape (leading 1s
dropped, kernels/STAGES.md), so flat `a` is `reps` repetitions of a `period` of
`b`'s size: a[r * period + j] pairs with b[j]. The design splits the PERIOD into
4 column ranges [lo, hi); column c streams

    a: offset lo,           sizes [1, 1, reps, hi - lo], strides [0, 0, period, 1]
    b: offset b_start + lo, sizes [1, 1, reps, hi - lo], strides [0, 0, 0, 1]
    c: like a, into OUT

so `b` is stored ONCE (its own size) and the shim DMA repeats it over the
broadcast axes with a zero stride; each core sees b rows aligned with a's
rows. Equal shapes are the case reps = 1 (the previous design, unchanged).

The position form (Whisper's `Transpose(conv_out, [0, 2, 1]) + table`) reads a
[B, D, T] TRANSPOSED: the period is the [T, D] table, split at ROW boundaries
(column c takes rows [t0, t1) of every batch) and a's pattern walks d with
stride T (4-byte elements: float32 only):

    a: offset t0, sizes [1, B, t1 - t0, D], strides [0, D * T, 1, T]

`b` lives in IN (a second activation) or, when it is a constant (a position
table: role "b"), in WEIGHTS at offset 0 (its device constant, uploaded once).
Every buffer of IN / OUT / WEIGHTS starts at a multiple of ALIGN bytes, in the
launch's input order (runtime/layout.py RegionLayout.plan packs the same way).
Dynamic int8 reads its two float32 scales from IN (one 2-element pattern) and
writes c_scale after c in OUT.

Pure Python, no numpy: the design imports it without the package.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

ALIGN = 64
COLUMNS = 4
B_IN, B_WEIGHTS = "in", "weights"


def up(x: int, q: int) -> int:
    return -(-x // q) * q


def packed_offsets(nbytes: Sequence[int]) -> list[int]:
    """Byte offset of each buffer packed in order, each at a multiple of ALIGN."""
    out, at = [], 0
    for n in nbytes:
        out.append(at)
        at = up(at + n, ALIGN)
    return out


@dataclass(frozen=True)
class Pattern:
    """One DMA access pattern, in elements of its tensor's dtype (4 dims, outermost
    first, like IRON's TensorAccessPattern)."""

    offset: int
    sizes: tuple[int, int, int, int]
    strides: tuple[int, int, int, int]

    @property
    def count(self) -> int:
        n = 1
        for s in self.sizes:
            n *= s
        return n


@dataclass(frozen=True)
class AddGeometry:
    """The add design's reads and writes for one launch (all offsets in bytes)."""

    elements: int            # a's and c's element count
    period: int              # b's element count (elements = reps * period)
    itemsize: int            # 4 (float32) or 1 (int8)
    b_source: str            # B_IN or B_WEIGHTS
    a_offset: int            # in IN
    b_offset: int            # in IN or WEIGHTS
    scale_offsets: tuple[int, ...] = ()   # dynamic int8: a_scale, b_scale in IN
    a_rows: int = 0          # position form: T, a [B, D, T] read transposed; 0: row-major

    def __post_init__(self) -> None:
        if self.elements <= 0 or self.period <= 0 or self.elements % self.period:
            raise ValueError(f"add geometry: b's {self.period} elements do not repeat a "
                             f"whole number of times over a's {self.elements}")
        if self.b_source not in (B_IN, B_WEIGHTS):
            raise ValueError(f"add geometry: b comes from {self.b_source!r}")
        if self.a_rows and (self.a_rows < 0 or self.period % self.a_rows
                            or self.itemsize != 4):
            raise ValueError(f"add geometry: a transposed float32 a of {self.a_rows} rows "
                             f"per period of {self.period}")
        for off in (self.a_offset, self.b_offset, *self.scale_offsets):
            if off % ALIGN:
                raise ValueError(f"add geometry: offset {off} is not {ALIGN}-byte aligned")

    @property
    def reps(self) -> int:
        return self.elements // self.period

    @property
    def dynamic(self) -> bool:
        return bool(self.scale_offsets)

    def columns(self) -> list[tuple[int, int]]:
        """Column c's range [lo, hi) of the period (ranges differ by at most one
        element, or one row in the position form; a column whose range is empty
        moves nothing)."""
        if self.a_rows:
            d = self.period // self.a_rows
            return [(c * self.a_rows // COLUMNS * d, (c + 1) * self.a_rows // COLUMNS * d)
                    for c in range(COLUMNS)]
        return [(c * self.period // COLUMNS, (c + 1) * self.period // COLUMNS)
                for c in range(COLUMNS)]

    def a_pattern(self, col: int) -> Pattern:
        lo, hi = self.columns()[col]
        if self.a_rows:                  # a [B, D, T], rows [t0, t1) read transposed
            t, d = self.a_rows, self.period // self.a_rows
            return Pattern(self.a_offset // self.itemsize + lo // d,
                           (1, self.reps, (hi - lo) // d, d), (0, d * t, 1, t))
        return Pattern(self.a_offset // self.itemsize + lo, (1, 1, self.reps, hi - lo),
                       (0, 0, self.period, 1))

    def b_pattern(self, col: int) -> Pattern:
        """b's range of column `col`, repeated `reps` times (zero stride)."""
        lo, hi = self.columns()[col]
        return Pattern(self.b_offset // self.itemsize + lo, (1, 1, self.reps, hi - lo),
                       (0, 0, 0, 1))

    def c_pattern(self, col: int) -> Pattern:
        """Into OUT, where c starts at offset 0."""
        lo, hi = self.columns()[col]
        return Pattern(lo, (1, 1, self.reps, hi - lo), (0, 0, self.period, 1))

    def scales_pattern(self) -> Pattern:
        """Dynamic int8: the 4 bytes of a_scale then of b_scale (IN viewed as bytes)."""
        sa, sb = self.scale_offsets
        return Pattern(sa, (1, 1, 2, 4), (0, 0, sb - sa, 1))

    @property
    def out_scale_offset(self) -> int:
        """Dynamic int8: c_scale (float32) follows c in OUT."""
        return up(self.elements * self.itemsize, ALIGN)

    def to_json(self) -> dict[str, Any]:
        return {"elements": self.elements, "period": self.period, "itemsize": self.itemsize,
                "b_source": self.b_source, "a_offset": self.a_offset,
                "b_offset": self.b_offset, "scale_offsets": list(self.scale_offsets),
                "a_rows": self.a_rows}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AddGeometry:
        return cls(int(d["elements"]), int(d["period"]), int(d["itemsize"]),
                   str(d["b_source"]), int(d["a_offset"]), int(d["b_offset"]),
                   tuple(int(x) for x in d["scale_offsets"]), int(d["a_rows"]))


def plan(in_buffers: Sequence[tuple[str, int]], a: str, b: str | None, elements: int,
         period: int, itemsize: int, scales: tuple[str, str] | None = None,
         a_rows: int = 0) -> AddGeometry:
    """The geometry of an add launch whose IN holds `in_buffers` ((name, bytes) in
    the launch's input order); `b` None: b is the constant in WEIGHTS (offset 0);
    `scales`: the dynamic int8 scale buffers' names; `a_rows`: T of a [B, D, T]
    read transposed (the position form), 0 for a row-major a."""
    names = [n for n, _ in in_buffers]
    offs = dict(zip(names, packed_offsets([n for _, n in in_buffers]), strict=True))
    missing = [x for x in (a, b, *(scales or ())) if x is not None and x not in offs]
    if missing:
        raise ValueError(f"add geometry: {missing} not in IN {names}")
    return AddGeometry(elements, period, itemsize, B_WEIGHTS if b is None else B_IN,
                       offs[a], 0 if b is None else offs[b],
                       tuple(offs[s] for s in scales) if scales else (), a_rows)
