"""Fused design "ffn_block": layernorm -> matmul -> gelu -> matmul -> add, one launch.

    out = x + fc2(gelu(fc1(layernorm(x))))      (Whisper encoder/decoder MLP)

Phase 1, per column (rows in blocks of 32): LN core writes the int8 block in
aie::mmul A order; MM1 core runs fc1 tile by tile and, on the same core,
the int8 epilogue followed by the GELU table (fused_epilogue_i8_gelu); the
h tiles [32, 64] go to a scratch slot of OUT (int8 [Mp, F]).
Phase 2, per column: MM2 core reads h back in A order, runs fc2 and, on the
same core, the fp32 epilogue followed by the residual add with x
(fused_epilogue_f32_add) -> OUT.

Why h round-trips through the scratch slot: a [32, F] int8 row block (48 KiB
at F = 1536) does not fit one core's 64 KiB next to its other buffers, and
fc2 needs all of it for every output tile. It is still one launch (one
instruction stream, no host involvement between the phases).

Runtime sequence: IN = x fp32 [Mp, C]; OUT = bytes: y fp32 [Mp, C] then h
int8 [Mp, F] (64-byte aligned); WEIGHTS = LN (gamma, beta, scalars), fc1
(W1 int8 [C, F], words int32 [3, F]), gelu table int8 [256], fc2 (W2 int8
[F, C], words fp32 [2, C]), 64-byte aligned; PARAMS.

    python design.py [--rows 1500] [--channels 384] [--ffn 1536]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import _stages as S  # noqa: E402

OBJ = "ffn_block_aie.o"


def build(rows: int, channels: int, ffn: int):  # noqa: C901 - one design, one function
    np, Kernel, ObjectFifo, Program, Runtime, Worker, range_, NPU1, Placer = S.iron()
    if channels % S.TILE_N or ffn % S.TILE_N:
        raise ValueError("channels and ffn must be multiples of 64")
    C, F = channels, ffn
    mp = S.up(rows, S.COLUMNS * S.TILE_M)
    mc = mp // S.COLUMNS
    blocks = mc // S.TILE_M
    kt1, nt1, kt2, nt2 = C // 64, F // 64, F // 64, C // 64
    (o_g, o_b, o_s, o_w1, o_p1, o_t, o_w2, o_p2), w_total = S.aligned_offsets(
        [4 * C, 4 * C, 16, C * F, 12 * F, 256, F * C, 8 * C])
    (o_y, o_h), out_total = S.aligned_offsets([4 * mp * C, mp * F])

    i8, f32, i32 = np.int8, np.float32, np.int32

    def ty(n, dt):
        return np.ndarray[(n,), np.dtype[dt]]

    tile = S.TILE_M * S.TILE_N
    ln = Kernel("xdna_layernorm_mmul_a", OBJ, [ty(32 * C, f32), ty(2 * C, f32), ty(32 * C, i8),
                                              ty(4, f32), i32, i32])
    zero = Kernel("matmul_zero_i32", OBJ, [])
    kslice = Kernel("fused_mm_kslice", OBJ, [ty(32 * C, i8), ty(64 * 64, i8), i32])
    mm = Kernel("matmul_i8_i32", OBJ, [ty(tile, i8), ty(64 * 64, i8)])
    epi_gelu = Kernel("fused_epilogue_i8_gelu", OBJ, [ty(192, i32), ty(256, i8), ty(tile, i8)])
    epi_add = Kernel("fused_epilogue_f32_add", OBJ, [ty(128, f32), ty(tile, f32), ty(tile, f32)])

    of_gb = ObjectFifo(ty(2 * C, f32), name="gb", depth=1)
    of_sc = ObjectFifo(ty(4, f32), name="sc", depth=1)
    of_tab = ObjectFifo(ty(256, i8), name="table", depth=1)
    of_w1 = ObjectFifo(ty(64 * 64, i8), name="w1")  # broadcast to the 4 MM1 cores
    of_p1 = ObjectFifo(ty(192, i32), name="p1")
    of_w2 = ObjectFifo(ty(64 * 64, i8), name="w2")  # broadcast to the 4 MM2 cores
    of_p2 = ObjectFifo(ty(128, f32), name="p2")
    of_x = [ObjectFifo(ty(32 * C, f32), name=f"x{c}", depth=1) for c in range(S.COLUMNS)]
    of_q = [ObjectFifo(ty(32 * C, i8), name=f"q{c}") for c in range(S.COLUMNS)]
    of_h = [ObjectFifo(ty(tile, i8), name=f"h{c}") for c in range(S.COLUMNS)]
    of_a2 = [ObjectFifo(ty(tile, i8), name=f"a2_{c}") for c in range(S.COLUMNS)]
    of_r = [ObjectFifo(ty(tile, f32), name=f"r{c}") for c in range(S.COLUMNS)]
    of_y = [ObjectFifo(ty(tile, f32), name=f"y{c}") for c in range(S.COLUMNS)]

    def ln_core(fx, fgb, fsc, fq, k):
        gb, sc = fgb.acquire(1), fsc.acquire(1)
        for _ in range_(blocks):
            x, q = fx.acquire(1), fq.acquire(1)
            k(x, gb, q, sc, S.TILE_M, C)
            fx.release(1)
            fq.release(1)
        fsc.release(1)
        fgb.release(1)

    def mm1_core(fq, fw, fp, ft, fh, k_zero, k_mm, k_epi):
        table = ft.acquire(1)
        for _ in range_(blocks):
            a = fq.acquire(1)
            for _ in range_(nt1):
                k_zero()
                for kt in range_(kt1):
                    w = fw.acquire(1)
                    k_mm(a, w, kt)
                    fw.release(1)
                p, h = fp.acquire(1), fh.acquire(1)
                k_epi(p, table, h)
                fp.release(1)
                fh.release(1)
            fq.release(1)
        ft.release(1)

    def mm2_core(fa, fw, fp, fr, fy, k_zero, k_mm, k_epi):
        for _ in range_(blocks * nt2):
            k_zero()
            for _ in range_(kt2):
                a, w = fa.acquire(1), fw.acquire(1)
                k_mm(a, w)
                fa.release(1)
                fw.release(1)
            p, r, y = fp.acquire(1), fr.acquire(1), fy.acquire(1)
            k_epi(p, r, y)
            fp.release(1)
            fr.release(1)
            fy.release(1)

    workers = []
    for c in range(S.COLUMNS):
        workers += [
            Worker(ln_core, [of_x[c].cons(), of_gb.cons(), of_sc.cons(), of_q[c].prod(), ln]),
            Worker(mm1_core, [of_q[c].cons(), of_w1.cons(), of_p1.cons(), of_tab.cons(),
                              of_h[c].prod(), zero, kslice, epi_gelu]),
            Worker(mm2_core, [of_a2[c].cons(), of_w2.cons(), of_p2.cons(), of_r[c].cons(),
                              of_y[c].prod(), zero, mm, epi_add]),
        ]

    rt = Runtime()
    with rt.sequence(ty(mp * C, f32), ty(out_total, i8), ty(w_total, i8),
                     ty(S.PARAMS_WORDS, np.uint32)) as (x_in, out, weights, _params):
        rt.start(*workers)
        rt.fill(of_gb.prod(), weights, S.contiguous_tap(w_total, o_g, 8 * C))
        rt.fill(of_sc.prod(), weights, S.contiguous_tap(w_total, o_s, 16))
        rt.fill(of_tab.prod(), weights, S.contiguous_tap(w_total, o_t, 256))
        # phase 1: LN -> fc1 -> gelu -> h (scratch)
        tg = rt.task_group()
        for c in range(S.COLUMNS):
            rt.fill(of_x[c].prod(), x_in, S.contiguous_tap(mp * C, c * mc * C, mc * C),
                    task_group=tg)
        for _b in range(blocks):
            for nt in range(nt1):
                for kt in range(kt1):
                    rt.fill(of_w1.prod(), weights, S.w_tile_tap(w_total, o_w1, F, kt, nt),
                            task_group=tg)
                rt.fill(of_p1.prod(), weights,
                        S.block_tap(w_total, 4 * F, 0, o_p1 + 4 * 64 * nt, 3, 4 * 64),
                        task_group=tg)
        for c in range(S.COLUMNS):
            for b in range(blocks):
                for nt in range(nt1):
                    rt.drain(of_h[c].cons(), out,
                             S.block_tap(out_total, F, 0, o_h + (c * mc + b * 32) * F + 64 * nt,
                                         32, 64),
                             wait=(b == blocks - 1 and nt == nt1 - 1), task_group=tg)
        rt.finish_task_group(tg)
        # phase 2: fc2 (A = h from scratch) -> + x -> y
        tg = rt.task_group()
        for c in range(S.COLUMNS):
            for b in range(blocks):
                row0 = c * mc + b * 32
                for nt in range(nt2):
                    for kt in range(kt2):
                        rt.fill(of_a2[c].prod(), out, S.a_tile_tap(out_total, o_h, F, row0, kt),
                                task_group=tg)
                    rt.fill(of_r[c].prod(), x_in, S.block_tap(mp * C, C, row0, 64 * nt, 32, 64),
                            task_group=tg)
        for _b in range(blocks):
            for nt in range(nt2):
                for kt in range(kt2):
                    rt.fill(of_w2.prod(), weights, S.w_tile_tap(w_total, o_w2, C, kt, nt),
                            task_group=tg)
                rt.fill(of_p2.prod(), weights,
                        S.block_tap(w_total, 4 * C, 0, o_p2 + 4 * 64 * nt, 2, 4 * 64),
                        task_group=tg)
        for c in range(S.COLUMNS):
            for b in range(blocks):
                for nt in range(nt2):
                    rt.drain(of_y[c].cons(), out,
                             S.block_tap(out_total, 4 * C, 0,
                                         o_y + 4 * ((c * mc + b * 32) * C + 64 * nt), 32, 4 * 64),
                             wait=(b == blocks - 1 and nt == nt2 - 1), task_group=tg)
        rt.finish_task_group(tg)
    return Program(NPU1(), rt).resolve_program(Placer())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=1500)
    p.add_argument("--channels", type=int, default=384)
    p.add_argument("--ffn", type=int, default=1536)
    a = p.parse_args()
    print(build(a.rows, a.channels, a.ffn))


if __name__ == "__main__":
    main()
