"""Fused design "ln_matmul": layernorm -> matmul in one launch (npu1, 4 columns).

    y[M, N] = matmul(layernorm(x[M, C]) -> int8, W[C, N])   (stage contracts:
    kernels/layernorm/README.md, kernels/matmul/README.md; Whisper: the q/k/v
    and fc1 projections that follow each LayerNorm)

Per column c (rows [c*Mc, (c+1)*Mc), in blocks of 32 rows):
  LN core   : fp32 rows -> int8 written in aie::mmul A order (xdna_layernorm_mmul_a)
  MM core   : holds the [32, C] int8 block; for each 64-wide output tile:
              K/64 x matmul_i8_i32 (fused_mm_kslice), then the
              int8 or fp32 epilogue (matmul_epilogue_*) -> OUT
Weight tiles and epilogue words are broadcast to the 4 MM cores (all columns
walk the same (n, k) tile order). The int8 intermediate never leaves the array.

Runtime sequence: IN = x fp32 [Mp, C]; OUT = y [Mp, Np]; WEIGHTS = layernorm
constants (gamma, beta, scalars) then matmul constants (W int8 [C, Np],
epilogue words), each at a 64-byte aligned offset (runtime/layout.py); PARAMS.

    python design.py [--rows 1500] [--channels 384] [--n 384] [--out int8|float32]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import _stages as S  # noqa: E402

OBJ = "ln_matmul_aie.o"


def build(rows: int, channels: int, n: int, out: str = "int8"):
    np, Kernel, ObjectFifo, Program, Runtime, Worker, range_, NPU1, Placer = S.iron()
    if channels % S.TILE_K:
        raise ValueError("channels must be a multiple of 64 for the fused design")
    mp = S.up(rows, S.COLUMNS * S.TILE_M)
    np_ = S.up(n, S.TILE_N)
    kt_n, nt_n = channels // S.TILE_K, np_ // S.TILE_N
    blocks = mp // S.COLUMNS // S.TILE_M
    ydt = np.int8 if out == "int8" else np.float32
    pdt, prow = (np.int32, 3) if out == "int8" else (np.float32, 2)

    # WEIGHTS byte offsets (64-byte aligned slots, runtime/layout.py)
    off_g = 0
    off_b = S.up(off_g + 4 * channels, 64)
    off_s = S.up(off_b + 4 * channels, 64)
    off_w = S.up(off_s + 16, 64)
    off_p = S.up(off_w + channels * np_, 64)
    total_w = off_p + 4 * prow * np_

    x_ty = np.ndarray[(mp * channels,), np.dtype[np.float32]]
    y_ty = np.ndarray[(mp * np_,), np.dtype[ydt]]
    w_ty = np.ndarray[(total_w,), np.dtype[np.int8]]
    par_ty = np.ndarray[(S.PARAMS_WORDS,), np.dtype[np.uint32]]
    xb_ty = np.ndarray[(S.TILE_M * channels,), np.dtype[np.float32]]
    qb_ty = np.ndarray[(S.TILE_M * channels,), np.dtype[np.int8]]
    wt_ty = np.ndarray[(S.TILE_K * S.TILE_N,), np.dtype[np.int8]]
    gb_ty = np.ndarray[(2 * channels,), np.dtype[np.float32]]
    sc_ty = np.ndarray[(4,), np.dtype[np.float32]]
    p_ty = np.ndarray[(prow * S.TILE_N,), np.dtype[pdt]]
    yt_ty = np.ndarray[(S.TILE_M * S.TILE_N,), np.dtype[ydt]]

    ln = Kernel("xdna_layernorm_mmul_a", OBJ, [xb_ty, gb_ty, qb_ty, sc_ty, np.int32, np.int32])
    mm_zero = Kernel("matmul_zero_i32", OBJ, [])
    mm = Kernel("fused_mm_kslice", OBJ, [qb_ty, wt_ty, np.int32])
    epi = Kernel("matmul_epilogue_i8" if out == "int8" else "matmul_epilogue_f32", OBJ,
                 [p_ty, yt_ty])

    of_gb = ObjectFifo(gb_ty, name="gb", depth=1)
    of_sc = ObjectFifo(sc_ty, name="sc", depth=1)
    of_w = ObjectFifo(wt_ty, name="wt")  # broadcast: same tile order in every column
    of_p = ObjectFifo(p_ty, name="ep")
    of_x = [ObjectFifo(xb_ty, name=f"x{c}", depth=1) for c in range(S.COLUMNS)]
    of_q = [ObjectFifo(qb_ty, name=f"q{c}") for c in range(S.COLUMNS)]  # core to core
    of_y = [ObjectFifo(yt_ty, name=f"y{c}") for c in range(S.COLUMNS)]

    def ln_core(fx, fgb, fsc, fq, k):
        gb, sc = fgb.acquire(1), fsc.acquire(1)
        for _ in range_(blocks):
            x, q = fx.acquire(1), fq.acquire(1)
            k(x, gb, q, sc, S.TILE_M, channels)
            fx.release(1)
            fq.release(1)
        fsc.release(1)
        fgb.release(1)

    def mm_core(fa, fw, fp, fy, k_zero, k_mm, k_epi):
        S.projection_core(range_, blocks, nt_n, kt_n, fa, fw, fp, fy, k_zero, k_mm, k_epi)

    workers = []
    for c in range(S.COLUMNS):
        workers.append(Worker(ln_core, [of_x[c].cons(), of_gb.cons(), of_sc.cons(),
                                        of_q[c].prod(), ln]))
        workers.append(Worker(mm_core, [of_q[c].cons(), of_w.cons(), of_p.cons(),
                                        of_y[c].prod(), mm_zero, mm, epi]))

    rt = Runtime()
    with rt.sequence(x_ty, y_ty, w_ty, par_ty) as (x_in, y_out, weights, _params):
        rt.start(*workers)
        rt.fill(of_gb.prod(), weights, S.contiguous_tap(total_w, off_g, 8 * channels))
        rt.fill(of_sc.prod(), weights, S.contiguous_tap(total_w, off_s, 16))
        tg = rt.task_group()
        mc = mp // S.COLUMNS
        for c in range(S.COLUMNS):
            rt.fill(of_x[c].prod(), x_in,
                    S.contiguous_tap(mp * channels, c * mc * channels, mc * channels),
                    task_group=tg)
        # the same weight stream for every row block
        S.stream_weight_tiles(rt, of_w, of_p, weights, total_w, off_w, off_p, np_, kt_n, nt_n,
                              prow, blocks, tg)
        S.drain_row_tiles(rt, of_y, y_out, mp * np_, 0, np_, 1, mc, blocks, nt_n, tg)
        rt.finish_task_group(tg)
    return Program(NPU1(), rt).resolve_program(Placer())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=1500)
    p.add_argument("--channels", type=int, default=384)
    p.add_argument("--n", type=int, default=384)
    p.add_argument("--out", choices=["int8", "float32"], default="int8")
    a = p.parse_args()
    print(build(a.rows, a.channels, a.n, a.out))


if __name__ == "__main__":
    main()
