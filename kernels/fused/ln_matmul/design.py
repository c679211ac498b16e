"""Fused design "ln_matmul": layernorm -> matmul in one launch (npu1, 4 columns).

    y[M, N] = matmul(layernorm(x[M, C]) -> int8, W[C, N])   (stage contracts:
    kernels/layernorm/README.md, kernels/matmul/README.md; Whisper: the q/k/v
    and fc1 projections that follow each LayerNorm)

Phase 1, per column (rows [c*Mc, (c+1)*Mc)): the LN core normalizes R rows at a
time (xdna_layernorm, fp32 in, int8 out; R = _stages.ln_rows_per_tile(C): 8 at
C = 384, 2 at C = 1280) and the int8 rows go to the `a` slot of OUT.
Phase 2, per column: the MM core reads a back tile by tile in aie::mmul A
order, runs K/64 x matmul_i8_i32 per output tile, then the int8 or fp32
epilogue -> OUT. Weight tiles and epilogue words are broadcast to the 4 MM
cores. Why a goes through OUT: a [32, C] int8 block held on the MM core (next
to its weight, output and accumulator buffers, and the LN core's fp32 rows
next to it) does not fit 64 KiB beyond C = 384; streaming A in K tiles makes
every core's memory independent of C. It is still one launch.

Runtime sequence (bytes): IN = x fp32 [Mp, C]; OUT = y [Mp, N] then a int8
[Mp, C] (kernels/fused/scratch.py OUT_ENTRIES, shared with runtime/layout.py);
WEIGHTS = layernorm constants (gamma, beta, scalars) then matmul constants as
the host packs them (W int8 [C, Np], epilogue words [rows, Np], the (K, N) pair;
Np = N rounded up to 256: _stages.matmul_weight_blobs), each 64-byte aligned;
PARAMS. C and N are
multiples of 64; Mp = M rounded up to 128.

    python design.py [--rows 1500] [--channels 384] [--n 384] [--out int8|float32]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import _stages as S  # noqa: E402
import scratch  # noqa: E402 - the OUT slots, shared with runtime/layout.py

OBJ = "ln_matmul_aie.o"


@dataclass(frozen=True)
class Geometry:
    """The row and tile grid both forms share: mp padded rows, mc per column, 32-row
    blocks per column, K and N tiles, R LayerNorm rows per tile (out_bytes: the LN
    output's element size, 4 in the dynamic form), IN bytes."""

    channels: int
    mp: int
    mc: int
    blocks: int
    kt_n: int
    nt_n: int
    rows_per_tile: int
    in_total: int


def _geometry(rows: int, channels: int, n: int, out_bytes: int) -> Geometry:
    if channels % S.TILE_K or n % S.TILE_N:
        raise ValueError("channels and n must be multiples of 64 for the fused design")
    mp = scratch.padded_rows("ln_matmul", rows)
    mc = mp // S.COLUMNS
    return Geometry(channels, mp, mc, mc // S.TILE_M, channels // S.TILE_K, n // S.TILE_N,
                    S.ln_rows_per_tile(channels, out_bytes=out_bytes), 4 * mp * channels)


def build(rows: int, channels: int, n: int, out: str = "int8"):
    np, Kernel, ObjectFifo, Program, Runtime, Worker, range_, NPU1, Placer = S.iron()
    g = _geometry(rows, channels, n, 1)
    C, mc, blocks, kt_n, nt_n, R = g.channels, g.mc, g.blocks, g.kt_n, g.nt_n, g.rows_per_tile
    ydt, yb = (np.int8, 1) if out == "int8" else (np.float32, 4)
    pdt, prow = (np.int32, 3) if out == "int8" else (np.float32, 2)
    i8, f32, i32 = np.int8, np.float32, np.int32

    def ty(k, dt):
        return np.ndarray[(k,), np.dtype[dt]]

    (o_g, _o_b, o_s, o_w, o_p, _o_kn), w_total = S.aligned_offsets(
        [4 * C, 4 * C, 16] + S.matmul_weight_blobs(C, n, prow))
    (o_y, o_a), out_total = scratch.offsets([scratch.capacity("ln_matmul", rows, yb * n),
                                             scratch.capacity("ln_matmul", rows, C)])
    in_total = g.in_total
    tile = S.TILE_M * S.TILE_N

    ln = Kernel("xdna_layernorm", OBJ, [ty(R * C, f32), ty(2 * C, f32), ty(R * C, i8),
                                        ty(4, f32), i32, i32, i32])
    zero = Kernel("matmul_zero_i32", OBJ, [])
    mm = Kernel("matmul_i8_i32", OBJ, [ty(tile, i8), ty(64 * 64, i8)])
    epi = Kernel("matmul_epilogue_i8" if out == "int8" else "matmul_epilogue_f32", OBJ,
                 [ty(prow * 64, pdt), ty(tile, ydt)])

    of_gb = ObjectFifo(ty(2 * C, f32), name="gb", depth=1)
    of_sc = ObjectFifo(ty(4, f32), name="sc", depth=1)
    of_w = ObjectFifo(ty(64 * 64, i8), name="wt")  # broadcast: same tile order in every column
    of_p = ObjectFifo(ty(prow * 64, pdt), name="ep")
    of_x = [ObjectFifo(ty(R * C, f32), name=f"x{c}") for c in range(S.COLUMNS)]
    of_q = [ObjectFifo(ty(R * C, i8), name=f"q{c}") for c in range(S.COLUMNS)]
    of_a = [ObjectFifo(ty(tile, i8), name=f"a{c}") for c in range(S.COLUMNS)]
    of_y = [ObjectFifo(ty(tile, ydt), name=f"y{c}") for c in range(S.COLUMNS)]

    ln_body = S.ln_core_fn(range_, mc // R)

    def ln_core(fx, fgb, fsc, fq, k):
        ln_body(fx, fgb, fsc, fq, k, R, C)

    def mm_core(fa, fw, fp, fy, k_zero, k_mm, k_epi):
        S.tile_matmul(range_, blocks * nt_n, kt_n, fa, fw, fp, fy, k_zero, k_mm, k_epi)

    workers = []
    for c in range(S.COLUMNS):
        workers.append(Worker(ln_core, [of_x[c].cons(), of_gb.cons(), of_sc.cons(),
                                        of_q[c].prod(), ln]))
        workers.append(Worker(mm_core, [of_a[c].cons(), of_w.cons(), of_p.cons(),
                                        of_y[c].prod(), zero, mm, epi]))

    rt = Runtime()
    with rt.sequence(ty(in_total, i8), ty(out_total, i8), ty(w_total, i8),
                     ty(S.PARAMS_WORDS, np.uint32)) as (x_in, y_out, weights, _params):
        rt.start(*workers)
        tg = rt.task_group()  # phase 1: LN -> a
        S.ln_phase(rt, of_x, of_q, of_gb, of_sc, weights, w_total, o_g, o_s, x_in, in_total, 0,
                   y_out, out_total, o_a, C, mc, tg)
        rt.finish_task_group(tg)
        tg = rt.task_group()  # phase 2: a -> matmul -> y
        S.fill_a_tiles(rt, of_a, y_out, out_total, o_a, C, mc, blocks, nt_n, tg)
        S.stream_weight_tiles(rt, of_w, of_p, weights, w_total, o_w, o_p, S.padded_cols(n), kt_n,
                              nt_n, prow,
                              blocks, tg)
        S.drain_row_tiles(rt, of_y, y_out, out_total, o_y, n, yb, mc, blocks, nt_n, tg)
        rt.finish_task_group(tg)
    return Program(NPU1(), rt).resolve_program(Placer())


def build_dynamic(rows: int, channels: int, n: int):
    """The dynamic form (manifest "dynamic_stages": layernorm -> quantize -> matmul):
    the LayerNorm output is float32 and its dynamic scale is reduced on the array
    (kernels/common/dynamic_scale.h, _stages.ScaleReduction), then the matmul's
    float32 epilogue uses that scale (a_scale * w_scale, kernels/matmul/README.md).

    Phase 1, per column: the LN core normalizes R rows at a time into float32
    (xdna_layernorm_f32) -> the `a` slot of OUT (float32 [Mp, C]).
    Phase 2: each LN core streams its rows back and folds them into a partial;
    the 4 partials join on a memory tile, the reducer core finishes the params
    {scale, 1/scale, flag, 0}: broadcast to the 4 MM cores, drained to SCALES.
    Phase 3, per column: the MM core takes float32 A tiles of a (aie::mmul A
    order), quantizes each with 1/scale into an int8 tile (the quantize
    contract's code), runs K/64 x matmul_i8_i32 per output tile, then the
    dynamic float32 epilogue -> y. 9 cores.

    Runtime sequence (bytes): IN = x fp32 [Mp, C]; OUT = y fp32 [Mp, N], a fp32
    [Mp, C], SCALES (16 B) (scratch.DYNAMIC_OUT_ENTRIES); WEIGHTS = layernorm
    constants, then matmul constants as the host packs them (W int8 [C, Np], words
    fp32 [2, Np] = w_scale, bias, the (K, N) pair; Np = N rounded up to 256:
    _stages.matmul_weight_blobs), each 64-byte aligned; PARAMS. Padding rows are zero in IN, so they
    normalize to beta: phase 2 folds only the real rows (their count comes from
    `rows`), the same tensor the host's quantize sees."""
    np, Kernel, ObjectFifo, Program, Runtime, Worker, range_, NPU1, Placer = S.iron()
    from aie.iron import Buffer

    g = _geometry(rows, channels, n, 4)
    C, mc, blocks, kt_n, nt_n, R = g.channels, g.mc, g.blocks, g.kt_n, g.nt_n, g.rows_per_tile
    i8, f32 = np.int8, np.float32

    def ty(k, dt):
        return np.ndarray[(k,), np.dtype[dt]]

    (o_g, _o_b, o_s, o_w, o_p, _o_kn), w_total = S.aligned_offsets(
        [4 * C, 4 * C, 16] + S.matmul_weight_blobs(C, n, 2))
    (o_y, o_a, o_sc), out_total = scratch.offsets([
        scratch.capacity("ln_matmul", rows, 4 * n), scratch.capacity("ln_matmul", rows, 4 * C),
        scratch.scales_bytes(1)])
    in_total = g.in_total
    tile = S.TILE_M * S.TILE_N
    # rows each column's producer folds: the real rows only (padding rows are beta)
    real = [max(0, min(rows - c * mc, mc)) for c in range(S.COLUMNS)]

    ln, zero, mm, epi = S.dyn_ln_matmul_kernels(OBJ, R, C)
    begin, fold, quant = S.dyn_kernels(OBJ, C, tile)
    red = S.ScaleReduction("sa", OBJ, S.COLUMNS)

    of_gb = ObjectFifo(ty(2 * C, f32), name="gb", depth=1)
    of_sc = ObjectFifo(ty(4, f32), name="sc", depth=1)
    of_w = ObjectFifo(ty(64 * 64, i8), name="wt")  # broadcast: same tile order in every column
    of_p = ObjectFifo(ty(128, f32), name="ep")
    of_x = [ObjectFifo(ty(R * C, f32), name=f"x{c}") for c in range(S.COLUMNS)]
    of_q = [ObjectFifo(ty(R * C, f32), name=f"q{c}") for c in range(S.COLUMNS)]
    of_r = [ObjectFifo(ty(C, f32), name=f"r{c}") if real[c] else None   # fold: a rows
            for c in range(S.COLUMNS)]
    of_a = [ObjectFifo(ty(tile, f32), name=f"a{c}") for c in range(S.COLUMNS)]
    of_y = [ObjectFifo(ty(tile, f32), name=f"y{c}") for c in range(S.COLUMNS)]

    ln_body = S.ln_core_fn(range_, mc // R, mode=None)

    def ln_core(fx, fgb, fsc, fq, fr, fpart, k, k_begin, k_fold, folds):
        ln_body(fx, fgb, fsc, fq, k, R, C)
        S.dyn_producer(range_, folds, fr, fpart, k_begin, k_fold, C)  # 0: padding only

    def mm_core(fa, fs, fw, fp, fy, k_zero, k_mm, k_quant, k_epi, qbuf):
        S.dyn_tile_matmul(range_, blocks * nt_n, kt_n, fa, fs, fw, fp, fy, k_zero, k_mm,
                          k_quant, k_epi, qbuf)

    workers = [red.worker]
    for c in range(S.COLUMNS):
        workers.append(Worker(ln_core, [of_x[c].cons(), of_gb.cons(), of_sc.cons(),
                                        of_q[c].prod(),
                                        of_r[c].cons() if real[c] else None,
                                        red.partials[c].prod(),
                                        ln, begin, fold, real[c]]))
        workers.append(Worker(mm_core, [of_a[c].cons(), red.params.cons(), of_w.cons(),
                                        of_p.cons(), of_y[c].prod(), zero, mm, quant, epi,
                                        Buffer(ty(tile, i8), name=f"qa{c}")]))

    rt = Runtime()
    with rt.sequence(ty(in_total, i8), ty(out_total, i8), ty(w_total, i8),
                     ty(S.PARAMS_WORDS, np.uint32)) as (x_in, out, weights, _params):
        rt.start(*workers)
        tg = rt.task_group()  # phase 1: LN -> a (float32)
        S.ln_phase(rt, of_x, of_q, of_gb, of_sc, weights, w_total, o_g, o_s, x_in, in_total, 0,
                   out, out_total, o_a, C, mc, tg, out_bytes=4)
        rt.finish_task_group(tg)
        # phase 2: the real rows of a -> partials -> params; phase 3: a -> Q -> matmul -> y
        S.dyn_projection_phases(rt, S.DynProjectionFifos(of_r, red.params, of_a, of_w, of_p, of_y),
                                out, out_total, weights, w_total, o_a, o_sc, 0, o_w, o_p, o_y,
                                C, n, rows, mc)
    return Program(NPU1(), rt).resolve_program(Placer())


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # kernels/
    from whisper_shapes import size_case  # --size NAME [--case L]: the shared table

    case = size_case("ln_matmul", sys.argv[1:])
    if case is not None:
        print(globals()[case.fn](*case.args))
        return
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=1500)
    p.add_argument("--channels", type=int, default=384)
    p.add_argument("--n", type=int, default=384)
    p.add_argument("--out", choices=["int8", "float32"], default="int8")
    p.add_argument("--dynamic", action="store_true",
                   help="the dynamic form (scales reduced on the array; float32 out)")
    a = p.parse_args()
    print(build_dynamic(a.rows, a.channels, a.n) if a.dynamic
          else build(a.rows, a.channels, a.n, a.out))


if __name__ == "__main__":
    main()
