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

Optional ln_matmul tail (`tail_n`; the design "ffn_ln_matmul" of
kernels/fused/ffn_ln_matmul): phase 3 runs the NEXT layer's layernorm ->
projection on y, on the same LN and MM1 cores (their code is already the
layernorm and matmul stage functions): y is read back from OUT block by
block, z = matmul(layernorm(y)) [Mp, Np] goes to OUT after h. WEIGHTS then
continue with the tail's LN (gamma, beta, scalars) and matmul (W3 int8
[C, Np], words int32 [3, Np] for int8 out or fp32 [2, Np]). This folds the
launch boundary between one encoder layer's MLP and the next layer's
q/k/v projection: two launches become one.

    python design.py [--rows 1500] [--channels 384] [--ffn 1536] [--tail-n N]
                     [--tail-out int8|float32]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import _stages as S  # noqa: E402

OBJ = "ffn_block_aie.o"


def build(rows: int, channels: int, ffn: int,  # noqa: C901 - one design, one function
          tail_n: int | None = None, tail_out: str = "int8", obj: str = OBJ):
    np, Kernel, ObjectFifo, Program, Runtime, Worker, range_, NPU1, Placer = S.iron()
    if channels % S.TILE_N or ffn % S.TILE_N:
        raise ValueError("channels and ffn must be multiples of 64")
    if tail_out not in ("int8", "float32"):
        raise ValueError(f"tail_out must be 'int8' or 'float32', got {tail_out!r}")
    C, F = channels, ffn
    mp = S.up(rows, S.COLUMNS * S.TILE_M)
    mc = mp // S.COLUMNS
    blocks = mc // S.TILE_M
    kt1, nt1, kt2, nt2 = C // 64, F // 64, F // 64, C // 64
    tail = tail_n is not None
    n3 = S.up(tail_n, S.TILE_N) if tail else 0
    nt3 = n3 // S.TILE_N
    zb, prow3 = (1, 3) if tail_out == "int8" else (4, 2)  # bytes per z element, word rows
    (o_g, o_b, o_s, o_w1, o_p1, o_t, o_w2, o_p2, o_g3, o_s3, o_w3, o_p3), w_total = \
        S.aligned_offsets([4 * C, 4 * C, 16, C * F, 12 * F, 256, F * C, 8 * C]
                          + ([8 * C, 16, C * n3, 4 * prow3 * n3] if tail else [0, 0, 0, 0]))
    (o_y, o_h, o_z), out_total = S.aligned_offsets([4 * mp * C, mp * F, zb * mp * n3])

    i8, f32, i32 = np.int8, np.float32, np.int32

    def ty(n, dt):
        return np.ndarray[(n,), np.dtype[dt]]

    tile = S.TILE_M * S.TILE_N
    ln = Kernel("xdna_layernorm_mmul_a", obj, [ty(32 * C, f32), ty(2 * C, f32), ty(32 * C, i8),
                                              ty(4, f32), i32, i32])
    zero = Kernel("matmul_zero_i32", obj, [])
    kslice = Kernel("fused_mm_kslice", obj, [ty(32 * C, i8), ty(64 * 64, i8), i32])
    mm = Kernel("matmul_i8_i32", obj, [ty(tile, i8), ty(64 * 64, i8)])
    epi_gelu = Kernel("fused_epilogue_i8_gelu", obj, [ty(192, i32), ty(256, i8), ty(tile, i8)])
    epi_add = Kernel("fused_epilogue_f32_add", obj, [ty(128, f32), ty(tile, f32), ty(tile, f32)])
    zdt, pdt3 = (i8, i32) if tail_out == "int8" else (f32, f32)
    epi3 = Kernel("matmul_epilogue_i8" if tail_out == "int8" else "matmul_epilogue_f32", obj,
                  [ty(prow3 * 64, pdt3), ty(tile, zdt)])

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
    # tail only: its epilogue words and z tiles (the LN, q, weight-tile fifos are shared)
    of_p3 = ObjectFifo(ty(prow3 * 64, pdt3), name="p3") if tail else None
    of_z = [ObjectFifo(ty(tile, zdt), name=f"z{c}") for c in range(S.COLUMNS)] if tail else []

    def ln_core(fx, fgb, fsc, fq, k):
        for _ in range(2 if tail else 1):  # this block's LN, then the tail's
            gb, sc = fgb.acquire(1), fsc.acquire(1)
            for _ in range_(blocks):
                x, q = fx.acquire(1), fq.acquire(1)
                k(x, gb, q, sc, S.TILE_M, C)
                fx.release(1)
                fq.release(1)
            fsc.release(1)
            fgb.release(1)

    def mm1_core(fq, fw, fp, ft, fh, k_zero, k_mm, k_epi, *tail_args):
        table = ft.acquire(1)
        S.projection_core(range_, blocks, nt1, kt1, fq, fw, fp, fh, k_zero, k_mm,
                          lambda p, h: k_epi(p, table, h))
        ft.release(1)
        if tail:  # the next layer's projection, K = C as for fc1
            fp3, fz, k_epi3 = tail_args
            S.projection_core(range_, blocks, nt3, kt1, fq, fw, fp3, fz, k_zero, k_mm, k_epi3)

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
                              of_h[c].prod(), zero, kslice, epi_gelu]
                   + ([of_p3.cons(), of_z[c].prod(), epi3] if tail else [])),
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
        S.stream_weight_tiles(rt, of_w1, of_p1, weights, w_total, o_w1, o_p1, F, kt1, nt1, 3,
                              blocks, tg)
        S.drain_row_tiles(rt, of_h, out, out_total, o_h, F, 1, mc, blocks, nt1, tg)
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
        S.stream_weight_tiles(rt, of_w2, of_p2, weights, w_total, o_w2, o_p2, C, kt2, nt2, 2,
                              blocks, tg)
        S.drain_row_tiles(rt, of_y, out, out_total, o_y, C, 4, mc, blocks, nt2, tg)
        rt.finish_task_group(tg)
        if tail:
            # phase 3: the next layer's LN -> projection on y (read back from OUT) -> z
            tg = rt.task_group()
            rt.fill(of_gb.prod(), weights, S.contiguous_tap(w_total, o_g3, 8 * C), task_group=tg)
            rt.fill(of_sc.prod(), weights, S.contiguous_tap(w_total, o_s3, 16), task_group=tg)
            for c in range(S.COLUMNS):
                rt.fill(of_x[c].prod(), out,
                        S.contiguous_tap(out_total, o_y + 4 * c * mc * C, 4 * mc * C),
                        task_group=tg)
            S.stream_weight_tiles(rt, of_w1, of_p3, weights, w_total, o_w3, o_p3, n3, kt1, nt3,
                                  prow3, blocks, tg)
            S.drain_row_tiles(rt, of_z, out, out_total, o_z, n3, zb, mc, blocks, nt3, tg)
            rt.finish_task_group(tg)
    return Program(NPU1(), rt).resolve_program(Placer())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=1500)
    p.add_argument("--channels", type=int, default=384)
    p.add_argument("--ffn", type=int, default=1536)
    p.add_argument("--tail-n", type=int, default=None,
                   help="fold the next layernorm -> matmul (N outputs) into this launch")
    p.add_argument("--tail-out", choices=["int8", "float32"], default="int8")
    a = p.parse_args()
    print(build(a.rows, a.channels, a.ffn, a.tail_n, a.tail_out))


if __name__ == "__main__":
    main()
