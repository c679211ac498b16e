"""What a fused design keeps in its OUT buffer: ONE definition imported by the
designs (kernels/fused/<design>/design.py, as `scratch`) and by the host runtime
(xdna_ep.runtime.layout, as xdna_ep._kernels.fused.scratch), so the offsets the
design's DMA writes to and the slots the runtime reserves cannot drift.

A fused launch's IN holds its inputs in Launch.inputs order, each reserved for
the rows the design reads (IN_ROW_PAD; the extra rows stay zero; conv_frontend's
mel as zero-bordered rows [B, mels, tp1], ConvFrontendDims.tp1). Its OUT holds,
in this order and each 64-byte aligned:
  1. the design's OUT entries below: stage outputs the design writes to OUT
     (exported results, and intermediates it reads back inside the launch:
     ffn h, attn_block o, ffn_ln_matmul y) and private scratch (conv_frontend's
     zero-bordered h rows). Each is reserved for the design's padded row count
     (rows rounded up to ROW_PAD), so the padding rows the cores write land
     inside the slot; the runtime reads the real rows (row-major: the first M;
     conv_frontend's y: the first T/2 of each batch's t2 rows; a `whole`
     entry's split outputs: their column blocks of the one matrix);
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
    stage output; None for private scratch (sized by `scratch_bytes`). `whole`: the
    design writes ALL outputs of that stage as one row-major [rows_p, sum N]
    matrix, a split stage's outputs (q/k/v) being its column blocks in output order;
    the host reads each block out of it."""

    name: str
    stage: tuple[str, int, int] | None
    whole: bool = False


OUT_ENTRIES: dict[str, tuple[OutEntry, ...]] = {
    "ln_matmul": (OutEntry("y", ("matmul", 0, 0), whole=True),
                  OutEntry("a", ("layernorm", 0, 0))),
    "ffn_block": (OutEntry("y", ("add", 0, 0)), OutEntry("h", ("gelu", 0, 0)),
                  OutEntry("a", ("layernorm", 0, 0))),
    "ffn_ln_matmul": (OutEntry("y", ("add", 0, 0)), OutEntry("h", ("gelu", 0, 0)),
                      OutEntry("a", ("layernorm", 0, 0)), OutEntry("a2", ("layernorm", 1, 0)),
                      OutEntry("z", ("matmul", 2, 0), whole=True)),
    "attn_block": (OutEntry("y", ("add", 0, 0)), OutEntry("o", ("attention", 0, 0))),
    "conv_frontend": (OutEntry("y", ("add", 0, 0)), OutEntry("h", None)),
}

# The dynamic form of a design (kernels/manifest.json "dynamic_stages"): each dynamic
# quantize between its stages is a reduction on the array (kernels/common/dynamic_scale.h).
# Its OUT holds the static form's entries (the same stage outputs; a LayerNorm output a
# is float32 there, quantized as it streams back), the float32 fc1 output f of the MLP
# designs (the GELU input's scale needs all of it before gelu runs), conv_frontend's
# raw conv outputs c1 [B, d, t1] and c2 (transposed like y, [B, t2, d]; its passes
# stream them back), and SCALES: the reducer's 4-word params {scale, 1/scale, flag,
# 0} per reduction, in the launch's order of its reducing stages (a dynamic quantize,
# or a dynamic conv1d, which quantizes its own float input: runtime/layout.py
# reductions). The host reads the flags (NaN/inf -> the quantize contract's error).
SCALES = "scales"
SCALE_WORDS = 4
DYNAMIC_OUT_ENTRIES: dict[str, tuple[OutEntry, ...]] = {
    "ln_matmul": OUT_ENTRIES["ln_matmul"] + (OutEntry(SCALES, None),),
    "attn_block": OUT_ENTRIES["attn_block"] + (OutEntry(SCALES, None),),
    "ffn_block": OUT_ENTRIES["ffn_block"] + (OutEntry("f", ("matmul", 0, 0)),
                                             OutEntry(SCALES, None)),
    "ffn_ln_matmul": OUT_ENTRIES["ffn_ln_matmul"] + (OutEntry("f", ("matmul", 0, 0)),
                                                     OutEntry(SCALES, None)),
    "conv_frontend": OUT_ENTRIES["conv_frontend"] + (OutEntry("c1", None), OutEntry("c2", None),
                                                     OutEntry(SCALES, None)),
}


def out_entries(design: str, dynamic: bool) -> tuple[OutEntry, ...] | None:
    """The OUT entries of `design` in its static or dynamic form (None: not fused)."""
    if dynamic and design in DYNAMIC_OUT_ENTRIES:
        return DYNAMIC_OUT_ENTRIES[design]
    return OUT_ENTRIES.get(design)


def scales_bytes(reductions: int) -> int:
    """The SCALES slot: one 4-word float32 params object per reduction."""
    return 4 * SCALE_WORDS * reductions


def flagged(words: list[float]) -> list[int]:
    """Indexes of the reductions whose params carry the NaN/inf flag (word 2 != 0)."""
    return [i for i in range(len(words) // SCALE_WORDS) if words[i * SCALE_WORDS + 2] != 0.0]


# Rows per IN slot the design reads (its launch inputs in Launch.inputs order): the
# matmul-bearing designs read whole 128-row groups; attn_block's keys and values
# whole 64-key blocks. The host reserves that much and leaves the extra rows zero.
IN_ROW_PAD: dict[str, tuple[int, ...]] = {
    "ln_matmul": (ROW_PAD,),
    "ffn_block": (ROW_PAD,),
    "ffn_ln_matmul": (ROW_PAD,),
    "attn_block": (ROW_PAD, 64, 64, ROW_PAD),     # q, k, v, x
}


def in_capacity(design: str, index: int, rows: int, row_bytes: int) -> int | None:
    """Bytes reserved for IN slot `index` of `design` (None: the buffer's own size)."""
    pads = IN_ROW_PAD.get(design)
    if pads is None or index >= len(pads):
        return None
    return up(rows, pads[index]) * row_bytes


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


CORE_BYTES = 64 * 1024
CONV_STATIC = 8 * 1152 + 384 * 17 + 256 + 1024   # kernel scratch, frontend block, stack


@dataclass(frozen=True)
class ConvTiling:
    nt: int      # output positions per core tile
    nco: int     # output channels per weight block


def conv_tiling(cin: int, cout: int, stride: int, kw: int = CONV_KW,
                frontend: bool = False) -> ConvTiling:
    """Tile of a conv1d stage on one core: the most positions (nt <= 8) the AIE
    kernel's im2col scratch takes with an fp32 input window of <= 26 KiB, then
    the most output channels per weight block (nco <= 8, dividing cout) whose
    double-buffered weight rows fit next to the window, w_scale/bias [cout] and
    the output blocks in 64 KiB (conv_frontend's blocks also carry the gelu
    table and the positional rows). Whisper tiny: nt = 8, nco = 8; large-v3
    conv2: nt = 2, nco = 1."""
    for nt in range(8, 0, -1):
        win = (nt - 1) * stride + kw
        if nt * cin * kw <= CONV_SCRATCH_COL and cin * win <= CONV_SCRATCH_WIN \
                and 4 * cin * win <= 26 * 1024:
            break
    else:
        raise ValueError(f"conv1d with {cin} input channels does not fit the AIE kernel scratch")
    for nco in (8, 4, 2, 1):
        if cout % nco:
            continue
        outs = (2 if frontend else 1) * 2 * 4 * nco * nt
        need = 4 * cin * win + 2 * nco * cin * kw + 8 * cout + 16 + outs + CONV_STATIC \
            + (256 + 8 if frontend else 0)
        if need <= CORE_BYTES:
            return ConvTiling(nt, nco)
    raise ValueError(f"conv1d {cin}->{cout} does not fit one core")


@dataclass(frozen=True)
class ConvFrontendDims:
    c1: ConvTiling   # conv1 (mels -> d, stride 1)
    c2: ConvTiling   # conv2 (d -> d, stride 2)
    t1: int      # conv1 outputs computed (padded)
    t2: int      # conv2 outputs computed (padded): y rows per batch
    tp2: int     # h row length: 1 zero, conv1 outputs, zeros

    @property
    def tp1(self) -> int:
        """IN mel row length the design reads: 1 zero (conv1's left padding), the
        frames, zeros up to t1 + 2; the host packs mel[b, m, t] at [b, m, 1 + t]."""
        return self.t1 + 2

    def in_bytes(self, batch: int, mels: int) -> int:
        """IN: the zero-bordered mel fp32 [B, mels, tp1]."""
        return 4 * batch * mels * self.tp1

    def y_bytes(self, batch: int, d: int) -> int:
        """The add stage's output y fp32 [B, t2, d]: t2 rows per batch, of which the
        host reads the first T/2 of each batch."""
        return 4 * batch * self.t2 * d

    def h_bytes(self, batch: int, d: int) -> int:
        """Private scratch: conv1's gelu output fp32 [B, d, tp2] with zero borders."""
        return 4 * batch * d * self.tp2

    def scratch_bytes(self, name: str, batch: int, d: int) -> int:
        """Bytes of the private scratch entry `name` (h; dynamic form: c1, c2, and
        SCALES: the params of its CONV_REDUCTIONS float reductions)."""
        sizes = {"h": self.h_bytes(batch, d), "c1": 4 * batch * d * self.t1,
                 "c2": 4 * batch * self.t2 * d, SCALES: scales_bytes(CONV_REDUCTIONS)}
        if name not in sizes:
            raise ValueError(f"conv_frontend has no private scratch {name!r}")
        return sizes[name]


# The float reductions of a dynamic conv_frontend launch, in SCALES order (its
# reducing stages in launch order): the mel (conv1's input), c1 (the quantize
# before gelu 1), h (conv2's input), c2 (the quantize before gelu 2). The two gelu
# code-range reductions work on int8 codes: no params, never non-finite.
CONV_REDUCTIONS = 4
# Attrs the dynamic conv_frontend is built for (design.py build_dynamic): the
# neg_limit of the quantize before each gelu (compile/ops gelu.py GELU_NEG_LIMIT)
# and the gelu form. A launch with others is refused on the NPU (runtime/layout.py
# dynamic_design_refusal), never run with the wrong constants.
CONV_NEG_LIMIT = 4.0
CONV_GELU_APPROXIMATE = "none"
# The same for every dynamic design with an on-array gelu table (the MLP designs'
# build_dynamic share conv_frontend's constants): the neg_limit each dynamic quantize
# of the launch is built with, in launch order (0: not a gelu input), and the gelu form.
DYNAMIC_NEG_LIMITS: dict[str, tuple[float, ...]] = {
    "conv_frontend": (CONV_NEG_LIMIT, CONV_NEG_LIMIT),
    "ffn_block": (0.0, CONV_NEG_LIMIT),
    "ffn_ln_matmul": (0.0, CONV_NEG_LIMIT, 0.0),
}


def conv_frontend_dims(mels: int, d: int, frames: int) -> ConvFrontendDims:
    c1, c2 = conv_tiling(mels, d, 1, frontend=True), conv_tiling(d, d, 2, frontend=True)
    t1 = up(frames, CONV_COLUMNS * c1.nt)
    t2 = up((frames + 2 - CONV_KW) // 2 + 1, CONV_COLUMNS * c2.nt)
    return ConvFrontendDims(c1, c2, t1, t2, max(1 + t1, (t2 - 1) * 2 + CONV_KW))


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
