"""Shared pieces of the fused-chain IRON designs (kernels/fused/<design>/design.py).

A fused design chains the stage kernels' AIE core functions in ONE runtime
sequence (one device launch): intermediates move core to core through
ObjectFifos (through a memory tile where a re-layout is needed) instead of
returning to host memory. Each design links one object, <design>_aie.o,
built from kernels/fused/<design>/<design>_aie.cc, which includes the stage
kernels' AIE sources, so every stage runs exactly its own kernel's code.

Runtime sequence arguments follow runtime/layout.py: IN, OUT, WEIGHTS, PARAMS.
Weight matrices are the matmul kernel's device constants (int8 [Kp, Np]
row-major, then the per-channel epilogue words); the DMA blocks them into
aie::mmul tiles on the way (tile_taps below), as kernels/matmul/design.py does.

Imports of the `aie` package happen inside functions, so this module (and the
designs) can be imported and py_compiled without the MLIR-AIE toolchain.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

COLUMNS = 4
TILE_M, TILE_K, TILE_N = 32, 64, 64  # kernels/matmul/aie/matmul_aie.cc
MMUL_R, MMUL_S, MMUL_T = 4, 8, 8
PARAMS_WORDS = 16

# AIE core functions each stage provides (extern "C" symbols of the stage sources).
SYMBOLS = {
    "layernorm": ("xdna_layernorm", "xdna_layernorm_ktiled"),
    "matmul": ("matmul_zero_i32", "matmul_i8_i32", "matmul_epilogue_i8", "matmul_epilogue_f32"),
    "gelu": ("xdna_gelu_i8",),
    "add": ("xdna_add_f32",),
    "conv1d": ("xdna_conv1d_im2col", "xdna_conv1d_block"),
    # attention: symbol owned by kernels/attention/aie/attention_aie.cc
    "attention": ("xdna_attn_begin", "xdna_attn_pass1", "xdna_attn_pass2", "xdna_attn_end_i8"),
}


def kernels_root() -> Path:
    return Path(__file__).resolve().parent.parent


def add_kernel_paths() -> None:
    """Lets a design import a stage design module (e.g. matmul's padded_shape)."""
    root = str(kernels_root())
    if root not in sys.path:
        sys.path.insert(0, root)


def up(x: int, q: int) -> int:
    return -(-x // q) * q


def a_tile_dims(k_row: int) -> list[tuple[int, int]]:
    """(size, stride) dims that block one row-major [TILE_M, TILE_K] slice of
    rows of length k_row into aie::mmul A order [m/4][k/8][4][8]."""
    return [(TILE_M // MMUL_R, MMUL_R * k_row), (TILE_K // MMUL_S, MMUL_S),
            (MMUL_R, k_row), (MMUL_S, 1)]


def w_tile_tap(total: int, base: int, n_cols: int, kt: int, nt: int):
    """Access pattern of weight tile (kt, nt) of a row-major [K, n_cols] int8
    matrix starting at byte `base` of WEIGHTS, in aie::mmul B order [k/8][n/8][8][8]."""
    from aie.helpers.taplib import TensorAccessPattern

    offset = base + kt * TILE_K * n_cols + nt * TILE_N
    return TensorAccessPattern(
        (1, total), offset,
        [TILE_K // MMUL_S, TILE_N // MMUL_T, MMUL_S, MMUL_T],
        [MMUL_S * n_cols, MMUL_T, n_cols, 1])


def contiguous_tap(total: int, offset: int, length: int):
    from aie.helpers.taplib import TensorAccessPattern

    return TensorAccessPattern((1, total), offset, [1, 1, 1, length], [0, 0, 0, 1])


def block_tap(total: int, row_len: int, row0: int, col0: int, rows: int, cols: int):
    """A [rows, cols] block at (row0, col0) of a row-major matrix with rows of row_len."""
    from aie.helpers.taplib import TensorAccessPattern

    return TensorAccessPattern((1, total), row0 * row_len + col0, [1, 1, rows, cols],
                               [0, 0, row_len, 1])


def iron():
    """The IRON names the designs use, imported lazily (toolchain optional)."""
    import numpy as np
    from aie.iron import Kernel, ObjectFifo, Program, Runtime, Worker
    from aie.iron.controlflow import range_
    from aie.iron.device import NPU1
    from aie.iron.placers import SequentialPlacer

    return np, Kernel, ObjectFifo, Program, Runtime, Worker, range_, NPU1, SequentialPlacer


def a_tile_tap(total: int, base: int, row_len: int, row0: int, kt: int):
    """A tile (rows row0..row0+31, K tile kt) of a row-major int8 [M, row_len]
    matrix at byte `base`, in aie::mmul A order [m/4][k/8][4][8]."""
    from aie.helpers.taplib import TensorAccessPattern

    dims = a_tile_dims(row_len)
    return TensorAccessPattern((1, total), base + row0 * row_len + kt * TILE_K,
                               [d[0] for d in dims], [d[1] for d in dims])


MATMUL_N_GROUP = COLUMNS * TILE_N   # kernels/matmul/design.py padded_shape: N to 4 x 64


def matmul_weight_blobs(k: int, n: int, word_rows: int) -> list[int]:
    """Bytes of a matmul stage's WEIGHTS blobs as the host packs them (kernel_specs/
    matmul.py device_constants): W int8 [Kp, Np], the 4-byte epilogue words
    [word_rows, Np], the int32 (K, N) pair. Np = N rounded up to MATMUL_N_GROUP: a
    design reads W and the words with row length Np (padded_cols)."""
    kp, np_ = up(k, TILE_K), padded_cols(n)
    return [kp * np_, 4 * word_rows * np_, 8]


def padded_cols(n: int) -> int:
    """Np: the row length of a matmul's W and words in WEIGHTS."""
    return up(n, MATMUL_N_GROUP)


def aligned_offsets(sizes: list[int], align: int = 64) -> tuple[list[int], int]:
    """Byte offsets of consecutive slots, each 64-byte aligned (runtime/layout.py)."""
    offs, pos = [], 0
    for n in sizes:
        pos = up(pos, align)
        offs.append(pos)
        pos += n
    return offs, pos


# ---- pieces every matmul-bearing design repeats (runtime sequence and core loop) ----


def stream_weight_tiles(rt, fw, fp, weights, w_total: int, o_w: int, o_p: int, n_cols: int,
                        ktiles: int, ntiles: int, prow: int, blocks: int, tg) -> None:
    """Fill the broadcast weight-tile and epilogue-word fifos for `blocks` row blocks:
    per output tile nt, the K tiles of W (row-major int8 [K, n_cols] at o_w, blocked
    by w_tile_tap) then its `prow` rows of 4-byte epilogue words ([prow, n_cols] at o_p)."""
    for _b in range(blocks):
        for nt in range(ntiles):
            for kt in range(ktiles):
                rt.fill(fw.prod(), weights, w_tile_tap(w_total, o_w, n_cols, kt, nt),
                        task_group=tg)
            rt.fill(fp.prod(), weights,
                    block_tap(w_total, 4 * n_cols, 0, o_p + 4 * TILE_N * nt, prow, 4 * TILE_N),
                    task_group=tg)


def drain_row_tiles(rt, fifos, out, total: int, base: int, n_cols: int, elem_bytes: int,
                    rows_per_col: int, blocks: int, ntiles: int, tg) -> None:
    """Drain each column's [TILE_M, TILE_N] output tiles into a row-major [M, n_cols]
    matrix at `base` of `out` (offsets in units of `out`'s elements; `elem_bytes` is
    the matrix's element size in those units, e.g. 4 for fp32 in a byte-typed BO)."""
    for c, fifo in enumerate(fifos):
        for b in range(blocks):
            row0 = c * rows_per_col + b * TILE_M
            for nt in range(ntiles):
                rt.drain(fifo.cons(), out,
                         block_tap(total, elem_bytes * n_cols, 0,
                                   base + elem_bytes * (row0 * n_cols + TILE_N * nt),
                                   TILE_M, elem_bytes * TILE_N),
                         wait=(b == blocks - 1 and nt == ntiles - 1), task_group=tg)


def projection_core(range_, blocks: int, ntiles: int, ktiles: int, fa, fw, fp, fout,
                    k_zero, k_mm, epilogue) -> None:
    """Core loop of a matmul whose [32, K] int8 A block stays on the core: per output
    tile, K/64 x k_mm(a, w, kt) into the accumulator, then epilogue(words, out_tile)."""
    for _ in range_(blocks):
        a = fa.acquire(1)
        for _ in range_(ntiles):
            k_zero()
            for kt in range_(ktiles):
                w = fw.acquire(1)
                k_mm(a, w, kt)
                fw.release(1)
            p, o = fp.acquire(1), fout.acquire(1)
            epilogue(p, o)
            fp.release(1)
            fout.release(1)
        fa.release(1)


# ---- layernorm -> OUT -> matmul (the int8 LayerNorm output is streamed back in tiles) ----
LN_STATIC = 2 * 4 * 1280 + 1024   # layernorm_aie.cc row scratch + the core's stack
CORE_BYTES = 64 * 1024


def ln_rows_per_tile(channels: int, out_bytes: int = 1, extra: int = 0) -> int:
    """Rows per LayerNorm tile (dividing 32): double-buffered fp32 x and y rows (int8,
    or fp32 with out_bytes = 4: a dynamic form's LN output, which also folds its rows),
    gamma/beta and the kernel's row scratch in one 64 KiB core (int8 y: tiny 8, large-v3
    2; float32 y: tiny 4, large-v3 1), next to `extra` bytes of the core's other work
    (the MLP designs' pass buffers)."""
    for r in (8, 4, 2, 1):
        # the dynamic form's fold: its partial and the double-buffered row it folds
        partial = 4 * DYN_WORDS + 2 * 4 * channels if out_bytes == 4 else 0
        if 2 * r * channels * (4 + out_bytes) + 8 * channels + 16 + partial + LN_STATIC \
                + extra <= CORE_BYTES:
            return r
    raise ValueError(f"a LayerNorm row of {channels} channels does not fit one core")


def ln_core_fn(range_, tiles: int, passes: int = 1, mode: int | None = 2):
    """LN core body: per pass (a layernorm stage), gamma/beta and scalars once, then
    `tiles` row tiles fp32 -> int8 row-major (xdna_layernorm mode 2; mode None: a
    kernel without the mode argument, e.g. the dynamic forms' xdna_layernorm_f32)."""
    tail = () if mode is None else (mode,)

    def body(fx, fgb, fsc, fq, k, rows, channels):
        for _ in range(passes):
            gb, sc = fgb.acquire(1), fsc.acquire(1)
            for _ in range_(tiles):
                x, q = fx.acquire(1), fq.acquire(1)
                k(x, gb, q, sc, rows, channels, *tail)
                fx.release(1)
                fq.release(1)
            fsc.release(1)
            fgb.release(1)
    return body


def tile_matmul(range_, tiles: int, ktiles: int, fa, fw, fp, fout, k_zero, k_mm,
                epilogue) -> None:
    """Core loop of a matmul fed A tile by tile: per output tile, ktiles x
    (A tile, W tile) into the accumulator, then epilogue(words, out_tile)."""
    for _ in range_(tiles):
        k_zero()
        for _ in range_(ktiles):
            a, w = fa.acquire(1), fw.acquire(1)
            k_mm(a, w)
            fa.release(1)
            fw.release(1)
        p, o = fp.acquire(1), fout.acquire(1)
        epilogue(p, o)
        fp.release(1)
        fout.release(1)


def fill_a_tiles(rt, fifos, src, total: int, base: int, k_row: int, rows_per_col: int,
                 blocks: int, ntiles: int, tg, tap=None) -> None:
    """Per column, per 32-row block and output tile: the block's K tiles of a row-major
    int8 [M, k_row] matrix at byte `base` of `src`, in aie::mmul A order (tap =
    a_tile_tap_f32: a float32 matrix, a dynamic matmul's A quantized on the core)."""
    tap = tap or a_tile_tap
    for c, fifo in enumerate(fifos):
        for b in range(blocks):
            row0 = c * rows_per_col + b * TILE_M
            for _nt in range(ntiles):
                for kt in range(k_row // TILE_K):
                    rt.fill(fifo.prod(), src, tap(total, base, k_row, row0, kt), task_group=tg)


def ln_phase(rt, fx, fq, fgb, fsc, weights, w_total: int, o_gb: int, o_sc: int, src,
             src_total: int, src_base: int, dst, dst_total: int, dst_base: int, channels: int,
             rows_per_col: int, tg, out_bytes: int = 1) -> None:
    """DMA of one LayerNorm pass: constants, each column's fp32 rows (bytes of `src` from
    src_base) in, its int8 (out_bytes 1) or float32 (4: a dynamic form's) rows out to
    `dst` (bytes from dst_base), both row-major."""
    rt.fill(fgb.prod(), weights, contiguous_tap(w_total, o_gb, 8 * channels), task_group=tg)
    rt.fill(fsc.prod(), weights, contiguous_tap(w_total, o_sc, 16), task_group=tg)
    span = rows_per_col * channels
    for c in range(COLUMNS):
        rt.fill(fx[c].prod(), src, contiguous_tap(src_total, src_base + 4 * c * span, 4 * span),
                task_group=tg)
        rt.drain(fq[c].cons(), dst, contiguous_tap(dst_total, dst_base + out_bytes * c * span,
                                                   out_bytes * span),
                 wait=True, task_group=tg)


# ---- the on-device dynamic scale (kernels/common/dynamic_scale.h, README there) ----
# A dynamic quantize needs max|x| of the WHOLE float tensor before its first element
# is quantized. Inside one launch: every producer core folds its tiles into a
# 4-word partial, the partials join on a memory tile, one reducer core finishes
# them into 4-word params {scale, 1/scale, flag, 0} and broadcasts them to the
# consumer cores (and to OUT, where the host reads the scale and the NaN/inf flag).
DYN_WORDS = 4          # dynamic_scale.h kWords: floats per partial / params object
DYN_SYMBOLS = ("xdna_dynscale_begin", "xdna_dynscale_fold", "xdna_dynscale_reduce",
               "xdna_dynscale_quantize")   # kernels/common/aie/dynamic_scale_aie.cc


def neg_limit_bits(neg_limit: float) -> int:
    """The stage's neg_limit as the int32 holding its float32 bits: the reducer's
    argument (xdna_dynscale_reduce), so the value reaches the core exactly."""
    import struct

    return struct.unpack("<i", struct.pack("<f", float(neg_limit)))[0]


class ScaleReduction:
    """The fifos and reducer core of one on-device dynamic scale.

    `partials[i]` is producer i's fifo of 4-word partials (its .prod() goes to that
    producer's Worker; a producer calls begin once, fold per tile, then releases the
    partial), `params` the 4-word params broadcast to every consumer (.cons() per
    consumer Worker, plus one drained by the host to OUT), `worker` the reducer.
    `rounds` tensors are reduced one after another (e.g. q, k, v of attn_block). `obj`:
    the design's core object, which includes kernels/common/aie/dynamic_scale_aie.cc."""

    def __init__(self, name: str, obj: str, producers: int, neg_limit: float = 0.0,
                 rounds: int = 1, placement=None) -> None:
        np, Kernel, ObjectFifo, _Program, _Runtime, Worker, range_, *_ = iron()
        if producers < 1:
            raise ValueError("a scale reduction needs at least one producer core")
        f32, i32 = np.float32, np.int32

        def ty(k):
            return np.ndarray[(k,), np.dtype[f32]]

        self.name, self.producers, self.rounds = name, producers, rounds
        joined = ObjectFifo(ty(producers * DYN_WORDS), name=f"{name}_pj", depth=1)
        self.partials = joined.prod().join(
            [i * DYN_WORDS for i in range(producers)], obj_types=[ty(DYN_WORDS)] * producers,
            names=[f"{name}_p{i}" for i in range(producers)], placement=placement)
        self.params = ObjectFifo(ty(DYN_WORDS), name=f"{name}_s", depth=1)
        reduce_k = Kernel("xdna_dynscale_reduce", obj, [ty(producers * DYN_WORDS), ty(DYN_WORDS),
                                                      i32, i32])
        n, bits = producers, neg_limit_bits(neg_limit)

        def reducer(fj, fs, k):
            for _ in range_(rounds):
                parts, out = fj.acquire(1), fs.acquire(1)
                k(parts, out, n, bits)
                fj.release(1)
                fs.release(1)

        self.worker = Worker(reducer, [joined.cons(), self.params.prod(), reduce_k])


def dyn_kernels(obj: str, tile_elems: int, quant_elems: int | None = None):
    """(begin, fold, quantize) Kernels of the producer / consumer side, linked from the
    design's object `obj`: fold takes float32 tiles of `tile_elems` values, quantize
    tiles of `quant_elems` (default the same)."""
    np, Kernel, *_ = iron()
    f32, i8, i32 = np.float32, np.int8, np.int32
    q = quant_elems or tile_elems

    def ty(k, dt):
        return np.ndarray[(k,), np.dtype[dt]]

    return (Kernel("xdna_dynscale_begin", obj, [ty(DYN_WORDS, f32)]),
            Kernel("xdna_dynscale_fold", obj, [ty(tile_elems, f32), ty(DYN_WORDS, f32), i32]),
            Kernel("xdna_dynscale_quantize", obj, [ty(q, f32), ty(DYN_WORDS, f32),
                                                   ty(q, i8), i32]))


def a_tile_tap_f32(total: int, base: int, k_row: int, row0: int, kt: int):
    """A float32 A tile (rows row0..row0+31, K tile kt) of a row-major float32
    [M, k_row] matrix at byte `base` of a byte-typed buffer, in aie::mmul A order
    [m/4][k/8][4][8] (runs of 8 floats = 32 bytes): the consumer quantizes it in
    place order, so its int8 image is already an A tile."""
    from aie.helpers.taplib import TensorAccessPattern

    rb = 4 * k_row
    return TensorAccessPattern((1, total), base + row0 * rb + 4 * kt * TILE_K,
                               [TILE_M // MMUL_R, TILE_K // MMUL_S, MMUL_R, 4 * MMUL_S],
                               [MMUL_R * rb, 4 * MMUL_S, rb, 1])


def dyn_producer(range_, tiles: int, fx, fpart, k_begin, k_fold, tile_elems: int) -> None:
    """Producer side of one reduction inside a core body: after the core wrote its
    `tiles` float32 tiles to `fx` (or alongside), fold each into its partial. Here
    the core reads the tiles it produced from fifo `fx` (its own output stream).
    tiles = 0 (a column holding only padding rows): the empty partial, the identity."""
    part = fpart.acquire(1)
    k_begin(part)
    if tiles:
        for _ in range_(tiles):
            x = fx.acquire(1)
            k_fold(x, part, tile_elems)
            fx.release(1)
    fpart.release(1)


def dyn_consumer(range_, tiles: int, fx, fs, fq, k_quant, tile_elems: int) -> None:
    """Consumer side inside a core body: wait for the broadcast params, then quantize
    `tiles` float32 tiles streamed back from OUT (fifo `fx`) into int8 tiles (`fq`)."""
    s = fs.acquire(1)
    for _ in range_(tiles):
        x, q = fx.acquire(1), fq.acquire(1)
        k_quant(x, s, q, tile_elems)
        fx.release(1)
        fq.release(1)
    fs.release(1)


def dyn_tile_matmul(range_, tiles: int, ktiles: int, fa, fs, fw, fp, fout, k_zero, k_mm,
                    k_quant, k_epi, qbuf) -> None:
    """tile_matmul of a dynamic matmul fed float32 A tiles (aie::mmul A order): with
    the broadcast params held, each A tile is quantized into `qbuf` (the quantize
    contract's code) before its matmul, and the epilogue is the dynamic one,
    k_epi(words, params, out) (a_scale * w_scale)."""
    s = fs.acquire(1)

    def mm(a, w):
        k_quant(a, s, qbuf, TILE_M * TILE_K)
        k_mm(qbuf, w)

    tile_matmul(range_, tiles, ktiles, fa, fw, fp, fout, k_zero, mm,
                lambda p, o: k_epi(p, s, o))
    fs.release(1)


def dyn_ln_matmul_kernels(obj: str, rows_per_tile: int, channels: int):
    """(layernorm f32, matmul zero, matmul, dynamic f32 epilogue) Kernels of a dynamic
    form's LN -> Q -> matmul (kernels/fused/ln_matmul/ln_matmul_aie.cc, which the MLP
    designs' object includes): R rows of float32 in and out, [32, 64] tiles."""
    np, Kernel, *_ = iron()
    f32, i8, i32 = np.float32, np.int8, np.int32
    n = rows_per_tile * channels
    tile = TILE_M * TILE_N

    def ty(k, dt):
        return np.ndarray[(k,), np.dtype[dt]]

    return (Kernel("xdna_layernorm_f32", obj, [ty(n, f32), ty(2 * channels, f32), ty(n, f32),
                                               ty(4, f32), i32, i32]),
            Kernel("matmul_zero_i32", obj, []),
            Kernel("matmul_i8_i32", obj, [ty(tile, i8), ty(64 * 64, i8)]),
            Kernel("ln_matmul_epilogue_f32_dyn", obj, [ty(128, f32), ty(DYN_WORDS, f32),
                                                       ty(tile, f32)]))


@dataclass(frozen=True)
class DynProjectionFifos:
    """The fifos of a dynamic LN -> Q -> matmul's last two phases: per column the fold
    fifo its producer folds float32 A rows from, the reducer's params, per column the
    float32 A tile fifo and the output tile fifo, the broadcast weight tiles and
    float32 epilogue words."""

    folds: list
    params: object
    a: list
    w: object
    p: object
    out: list


def dyn_projection_phases(rt, f: DynProjectionFifos, out, out_total: int, weights,
                          w_total: int, o_a: int, o_sc: int, slot: int, o_w: int, o_p: int,
                          o_out: int, k_row: int, n_cols: int, rows: int,
                          rows_per_col: int) -> None:
    """DMA of a dynamic projection once its float32 A [Mp, k_row] is in OUT at o_a:
    (1) the real rows of A to the producers, the reducer's params to SCALES[slot];
    (2) A tiles to the matmul cores (quantized there), weight tiles (W [k_row, Np] at
    o_w) and words ([2, Np] float32 at o_p) broadcast, float32 output tiles [Mp,
    n_cols] to o_out."""
    tg = rt.task_group()
    fill_real_rows(rt, f.folds, out, out_total, o_a, 4 * k_row, rows, rows_per_col, tg)
    drain_scales(rt, f.params, out, out_total, o_sc, slot, tg)
    rt.finish_task_group(tg)
    tg = rt.task_group()
    blocks, nt = rows_per_col // TILE_M, n_cols // TILE_N
    fill_a_tiles(rt, f.a, out, out_total, o_a, k_row, rows_per_col, blocks, nt, tg,
                 tap=a_tile_tap_f32)
    stream_weight_tiles(rt, f.w, f.p, weights, w_total, o_w, o_p, padded_cols(n_cols),
                        k_row // TILE_K, nt, 2, blocks, tg)
    drain_row_tiles(rt, f.out, out, out_total, o_out, n_cols, 4, rows_per_col, blocks, nt, tg)
    rt.finish_task_group(tg)


def fill_real_rows(rt, fifos, src, total: int, base: int, row_bytes: int, rows: int,
                   rows_per_col: int, tg) -> None:
    """Per column, the REAL rows (of `rows`) of its row block of a row-major matrix at
    byte `base` (row_bytes each), contiguous: what a dynamic scale's producers fold (a
    column holding only padding rows gets nothing)."""
    for c, fifo in enumerate(fifos):
        real = max(0, min(rows - c * rows_per_col, rows_per_col))
        if real:
            rt.fill(fifo.prod(), src,
                    contiguous_tap(total, base + c * rows_per_col * row_bytes, real * row_bytes),
                    task_group=tg)


def drain_scales(rt, params, out, total: int, base: int, slot: int, tg) -> None:
    """The reducer's params of one reduction -> SCALES object `slot` (4 words from byte
    `base` of a byte-typed OUT), in the launch's order of its reducing stages."""
    rt.drain(params.cons(), out, contiguous_tap(total, base + 4 * DYN_WORDS * slot,
                                                4 * DYN_WORDS), wait=True, task_group=tg)


# ---- the on-array dynamic GELU table (kernels/common/aie/gelu_table_aie.cc) ----
# A dynamic gelu's table and output scale depend on the code range of its WHOLE
# quantized input: producer cores quantize their chunks with the input's broadcast
# params and fold the codes into a 4-int32 range, the ranges join on a memory tile,
# one reducer core builds {table[256], s_out} and broadcasts it.
PASS_MAX = 1024           # floats per pass chunk (gelu_table_aie.cc g_gelu_codes)
GELU_BYTES = 256 + 16     # the gelu reducer's object: table[256], {s_out, 0, 0, 0}
GELU_SYMBOLS = ("xdna_gelu_codes_begin", "xdna_gelu_codes_fold", "xdna_gelu_table_reduce",
                "xdna_gelu_table_apply")


def pass_chunk(n: int, limit: int = PASS_MAX) -> int:
    """Floats per chunk of a pass over rows of n values: the largest divisor of n up
    to `limit` (3000 -> 1000), so a chunk never spans two rows."""
    return max(k for k in range(1, min(n, limit) + 1) if n % k == 0)


class GeluTableReduction:
    """The fifos and reducer core of one on-array dynamic gelu table.

    `partials[i]`: producer i's fifo of 4-int32 code ranges (begin once, fold per
    chunk: gelu_codes_pass); `table`: the {table, s_out} object broadcast to every
    consumer (.cons() per consumer Worker); `worker`: the reducer, which also takes
    the gelu input's params from `params` (the ScaleReduction's fifo) each round.
    `rounds` gelus are built one after another (conv_frontend: 2). tanh: the gelu
    form (0 erf, 1 tanh)."""

    def __init__(self, name: str, obj: str, producers: int, params, tanh: int,
                 rounds: int = 1) -> None:
        np, Kernel, ObjectFifo, _Program, _Runtime, Worker, range_, *_ = iron()
        f32, i8, i32 = np.float32, np.int8, np.int32

        def ty(k, dt):
            return np.ndarray[(k,), np.dtype[dt]]

        joined = ObjectFifo(ty(producers * DYN_WORDS, i32), name=f"{name}_pj", depth=1)
        self.partials = joined.prod().join(
            [i * DYN_WORDS for i in range(producers)], obj_types=[ty(DYN_WORDS, i32)] * producers,
            names=[f"{name}_p{i}" for i in range(producers)])
        self.table = ObjectFifo(ty(GELU_BYTES, i8), name=f"{name}_s", depth=1)
        reduce_k = Kernel("xdna_gelu_table_reduce", obj, [ty(producers * DYN_WORDS, i32),
                                                          ty(DYN_WORDS, f32),
                                                          ty(GELU_BYTES, i8), i32, i32])
        n = producers

        def reducer(fj, fs, fg, k):
            for _ in range_(rounds):
                s, parts, g = fs.acquire(1), fj.acquire(1), fg.acquire(1)
                k(parts, s, g, n, tanh)
                fj.release(1)
                fg.release(1)
                fs.release(1)

        self.worker = Worker(reducer, [joined.cons(), params.cons(), self.table.prod(),
                                       reduce_k])


def gelu_kernels(obj: str, chunk: int, fold_symbol: str = "xdna_gelu_codes_fold"):
    """(codes begin, codes fold) Kernels of a gelu table's producer side for float32
    chunks of `chunk` values (another chunk size in the same design needs its own
    fold symbol: a shim calling xdna_gelu_codes_fold)."""
    np, Kernel, *_ = iron()
    f32, i32 = np.float32, np.int32

    def ty(k, dt):
        return np.ndarray[(k,), np.dtype[dt]]

    return (Kernel("xdna_gelu_codes_begin", obj, [ty(DYN_WORDS, i32)]),
            Kernel(fold_symbol, obj, [ty(chunk, f32), ty(DYN_WORDS, f32), ty(DYN_WORDS, i32),
                                      i32]))


def gelu_apply_kernel(obj: str, chunk: int):
    """The consumer side: quantize a float32 chunk with the input's params and apply
    the broadcast table -> the gelu's int8 output (xdna_gelu_table_apply)."""
    np, Kernel, *_ = iron()
    f32, i8, i32 = np.float32, np.int8, np.int32

    def ty(k, dt):
        return np.ndarray[(k,), np.dtype[dt]]

    return Kernel("xdna_gelu_table_apply", obj, [ty(chunk, f32), ty(DYN_WORDS, f32),
                                                 ty(GELU_BYTES, i8), ty(chunk, i8), i32])


def gelu_codes_pass(range_, chunks: int, fx, fpart, params, k_begin, k_fold, chunk: int) -> None:
    """Producer side of a gelu table inside a core body: quantize `chunks` float32
    chunks from `fx` with the input's params and fold their codes into the partial
    (chunks = 0: the empty range, the identity)."""
    rng = fpart.acquire(1)
    k_begin(rng)
    if chunks:
        for _ in range_(chunks):
            x = fx.acquire(1)
            k_fold(x, params, rng, chunk)
            fx.release(1)
    fpart.release(1)
