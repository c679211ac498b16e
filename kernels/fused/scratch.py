"""What a fused design keeps in its OUT buffer: ONE definition imported by the
designs (kernels/fused/<design>/design.py, as `scratch`) and by the host runtime
(xdna_ep.runtime.layout, as xdna_ep._kernels.fused.scratch), so the offsets the
design's DMA writes to and the slots the runtime reserves cannot drift.

A fused launch's OUT holds, in this order and each 64-byte aligned:
  1. the design's OUT entries below: stage outputs the design writes to OUT
     (exported results, and intermediates it reads back inside the launch:
     ffn h, attn_block o, ffn_ln_matmul y) and private scratch (conv_frontend's
     zero-bordered h rows). Each is reserved for the design's padded row count
     (rows rounded up to ROW_PAD), so the padding rows the cores write land
     inside the slot; the runtime reads the real rows (row-major: the first M);
  2. any other buffer the program needs later (appended by the runtime).

Entries name stage outputs by (kernel, occurrence among the launch's stages of
that kernel, output index), so glue stages do not shift them.
Pure Python, no numpy: the designs import it without the package.
"""

from __future__ import annotations

from dataclasses import dataclass

ALIGN = 64
ROW_PAD = 128          # 4 columns x 32-row blocks: the matmul-bearing designs' row grid
CONV_COLUMNS = 4


def up(x: int, q: int) -> int:
    return -(-x // q) * q


@dataclass(frozen=True)
class OutEntry:
    """One slot of a fused design's OUT. `stage` = (kernel, occurrence, output) for a
    stage output; None for private scratch (sized by `scratch_bytes`)."""

    name: str
    stage: tuple[str, int, int] | None


OUT_ENTRIES: dict[str, tuple[OutEntry, ...]] = {
    "ln_matmul": (OutEntry("y", ("matmul", 0, 0)), OutEntry("a", ("layernorm", 0, 0))),
    "ffn_block": (OutEntry("y", ("add", 0, 0)), OutEntry("h", ("gelu", 0, 0)),
                  OutEntry("a", ("layernorm", 0, 0))),
    "ffn_ln_matmul": (OutEntry("y", ("add", 0, 0)), OutEntry("h", ("gelu", 0, 0)),
                      OutEntry("a", ("layernorm", 0, 0)), OutEntry("a2", ("layernorm", 1, 0)),
                      OutEntry("z", ("matmul", 2, 0))),
    "attn_block": (OutEntry("y", ("add", 0, 0)), OutEntry("o", ("attention", 0, 0))),
    "conv_frontend": (OutEntry("y", ("add", 0, 0)), OutEntry("h", None)),
}


def padded_rows(design: str, rows: int) -> int:
    """Rows the design computes for `rows` real rows (conv_frontend: positions)."""
    if design == "conv_frontend":
        raise ValueError("conv_frontend pads positions per tile: use conv_frontend_dims")
    return up(rows, ROW_PAD)


def capacity(design: str, rows: int, row_bytes: int) -> int:
    """Bytes reserved for a row-major [rows, row_bytes] stage output of `design`."""
    return padded_rows(design, rows) * row_bytes


# --- conv_frontend: its tiling decides its row padding and its h scratch ------------------
CONV_KW = 3
CONV_SCRATCH_COL = 8 * 1152    # conv1d_aie.cc g_col: nt * cin * kw int8
CONV_SCRATCH_WIN = 384 * 17    # conv1d_aie.cc g_qwin: cin * win int8


def conv_tiling(cin: int, stride: int, kw: int = CONV_KW) -> int:
    """Output positions per core tile (nt <= 8) for a conv1d stage: the largest that
    fits the AIE kernel's im2col scratch and keeps the fp32 input window small
    (<= 26 KiB, so the window, weight blocks and constants fit a 64 KiB core)."""
    for nt in range(8, 0, -1):
        win = (nt - 1) * stride + kw
        if nt * cin * kw <= CONV_SCRATCH_COL and cin * win <= CONV_SCRATCH_WIN \
                and 4 * cin * win <= 26 * 1024:
            return nt
    raise ValueError(f"conv1d with {cin} input channels does not fit the AIE kernel scratch")


@dataclass(frozen=True)
class ConvFrontendDims:
    nt1: int     # conv1 positions per tile
    nt2: int     # conv2 positions per tile
    t1: int      # conv1 outputs computed (padded)
    t2: int      # conv2 outputs computed (padded): y rows per batch
    tp2: int     # h row length: 1 zero, conv1 outputs, zeros

    def h_bytes(self, batch: int, d: int) -> int:
        return 4 * batch * d * self.tp2


def conv_frontend_dims(mels: int, d: int, frames: int) -> ConvFrontendDims:
    nt1, nt2 = conv_tiling(mels, 1), conv_tiling(d, 2)
    t1 = up(frames, CONV_COLUMNS * nt1)
    t2 = up((frames + 2 - CONV_KW) // 2 + 1, CONV_COLUMNS * nt2)
    return ConvFrontendDims(nt1, nt2, t1, t2, max(1 + t1, (t2 - 1) * 2 + CONV_KW))


# --- the layout both sides compute ---------------------------------------------------
def offsets(sizes: list[int]) -> tuple[list[int], int]:
    """Byte offsets of consecutive slots, each ALIGN-aligned, and the total
    (runtime/layout.py RegionLayout.plan packs the same way)."""
    offs, pos = [], 0
    for n in sizes:
        pos = up(pos, ALIGN)
        offs.append(pos)
        pos += n
    return offs, up(pos, ALIGN) if pos else ALIGN
