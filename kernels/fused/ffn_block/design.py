"""Fused design "ffn_block": layernorm -> matmul -> gelu -> matmul -> add, one launch.

    out = x + fc2(gelu(fc1(layernorm(x))))      (Whisper encoder/decoder MLP)

Three phases in one runtime sequence, on 12 cores (per column: LN, MM1, MM2):
  1. LN core: R rows at a time fp32 -> int8 (xdna_layernorm; R from
     _stages.ln_rows_per_tile) -> the `a` slot of OUT.
  2. MM1 core: a back tile by tile (aie::mmul A order), fc1, and on the same
     core the int8 epilogue then the GELU table (fused_epilogue_i8_gelu); the
     h tiles [32, 64] go to the `h` slot of OUT (int8 [Mp, F]).
  3. MM2 core: h back tile by tile, fc2 and, on the same core, the fp32
     epilogue followed by the residual add with x (fused_epilogue_f32_add) -> y.

Why a and h round-trip through OUT: a [32, C] or [32, F] int8 row block held
on one core next to its other buffers does not fit 64 KiB at Whisper widths
(F = 1536 already needs 48 KiB), and each matmul needs all of its A block for
every output tile; streaming A in K tiles makes every core's memory
independent of C and F (kernels/iron_check.py checks it for tiny..large-v3).

Runtime sequence (bytes): IN = x fp32 [Mp, C]; OUT = y fp32 [Mp, C], h int8
[Mp, F], a int8 [Mp, C] (kernels/fused/scratch.py OUT_ENTRIES, shared with
runtime/layout.py); WEIGHTS = LN (gamma, beta, scalars), fc1 (W1 int8 [C, F],
words int32 [3, F]), gelu table int8 [256], fc2 (W2 int8 [F, C], words fp32
[2, C]), 64-byte aligned; PARAMS.

Optional ln_matmul tail (`tail_n`; the design "ffn_ln_matmul" of
kernels/fused/ffn_ln_matmul): phases 4-5 run the NEXT layer's layernorm ->
projection on y (read back from OUT) on the same LN and MM1 cores (their code
is already the layernorm and matmul stage functions): LN(y) -> a2, then
z = matmul(a2) [Mp, N] -> OUT. OUT then holds y, h, a, a2, z; WEIGHTS
continue with the tail's LN (gamma, beta, scalars) and matmul (W3 int8
[C, N], words int32 [3, N] for int8 out or fp32 [2, N]). This folds the
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
import scratch  # noqa: E402 - the OUT slots, shared with runtime/layout.py

OBJ = "ffn_block_aie.o"


def build(rows: int, channels: int, ffn: int,  # noqa: C901 - one design, one function
          tail_n: int | None = None, tail_out: str = "int8", obj: str = OBJ):
    np, Kernel, ObjectFifo, Program, Runtime, Worker, range_, NPU1, Placer = S.iron()
    tail = tail_n is not None
    if channels % S.TILE_N or ffn % S.TILE_N or (tail and tail_n % S.TILE_N):
        raise ValueError("channels, ffn and tail_n must be multiples of 64")
    if tail_out not in ("int8", "float32"):
        raise ValueError(f"tail_out must be 'int8' or 'float32', got {tail_out!r}")
    design = "ffn_ln_matmul" if tail else "ffn_block"
    C, F = channels, ffn
    mp = scratch.padded_rows(design, rows)
    mc = mp // S.COLUMNS
    blocks = mc // S.TILE_M
    R = S.ln_rows_per_tile(C)
    kt1, nt1, kt2, nt2 = C // 64, F // 64, F // 64, C // 64
    n3 = tail_n if tail else 0
    nt3 = n3 // S.TILE_N
    zb, prow3 = (1, 3) if tail_out == "int8" else (4, 2)  # bytes per z element, word rows
    (o_g, _o_b, o_s, o_w1, o_p1, o_t, o_w2, o_p2, o_g3, _o_b3, o_s3, o_w3, o_p3), w_total = \
        S.aligned_offsets([4 * C, 4 * C, 16, C * F, 12 * F, 256, F * C, 8 * C]
                          + ([4 * C, 4 * C, 16, C * n3, 4 * prow3 * n3] if tail
                             else [0, 0, 0, 0, 0]))
    cap = [scratch.capacity(design, rows, b) for b in (4 * C, F, C)]
    if tail:
        cap += [scratch.capacity(design, rows, C), scratch.capacity(design, rows, zb * n3)]
    offs, out_total = scratch.offsets(cap)
    o_y, o_h, o_a = offs[:3]
    o_a2, o_z = offs[3:] if tail else (0, 0)
    in_total = 4 * mp * C

    i8, f32, i32 = np.int8, np.float32, np.int32

    def ty(n, dt):
        return np.ndarray[(n,), np.dtype[dt]]

    tile = S.TILE_M * S.TILE_N
    ln = Kernel("xdna_layernorm", obj, [ty(R * C, f32), ty(2 * C, f32), ty(R * C, i8),
                                        ty(4, f32), i32, i32, i32])
    zero = Kernel("matmul_zero_i32", obj, [])
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
    of_x = [ObjectFifo(ty(R * C, f32), name=f"x{c}") for c in range(S.COLUMNS)]
    of_q = [ObjectFifo(ty(R * C, i8), name=f"q{c}") for c in range(S.COLUMNS)]
    of_a1 = [ObjectFifo(ty(tile, i8), name=f"a1_{c}") for c in range(S.COLUMNS)]
    of_h = [ObjectFifo(ty(tile, i8), name=f"h{c}") for c in range(S.COLUMNS)]
    of_a2 = [ObjectFifo(ty(tile, i8), name=f"a2_{c}") for c in range(S.COLUMNS)]
    of_r = [ObjectFifo(ty(tile, f32), name=f"r{c}") for c in range(S.COLUMNS)]
    of_y = [ObjectFifo(ty(tile, f32), name=f"y{c}") for c in range(S.COLUMNS)]
    # tail only: its epilogue words and z tiles (the LN, A, weight-tile fifos are shared)
    of_p3 = ObjectFifo(ty(prow3 * 64, pdt3), name="p3") if tail else None
    of_z = [ObjectFifo(ty(tile, zdt), name=f"z{c}") for c in range(S.COLUMNS)] if tail else []

    ln_body = S.ln_core_fn(range_, mc // R, passes=2 if tail else 1)

    def ln_core(fx, fgb, fsc, fq, k):
        ln_body(fx, fgb, fsc, fq, k, R, C)

    def mm1_core(fa, fw, fp, ft, fh, k_zero, k_mm, k_epi, *tail_args):
        table = ft.acquire(1)
        S.tile_matmul(range_, blocks * nt1, kt1, fa, fw, fp, fh, k_zero, k_mm,
                      lambda p, h: k_epi(p, table, h))
        ft.release(1)
        if tail:  # the next layer's projection, K = C as for fc1
            fp3, fz, k_epi3 = tail_args
            S.tile_matmul(range_, blocks * nt3, kt1, fa, fw, fp3, fz, k_zero, k_mm, k_epi3)

    def mm2_core(fa, fw, fp, fr, fy, k_zero, k_mm, k_epi):
        def epilogue(p, y):
            r = fr.acquire(1)
            k_epi(p, r, y)
            fr.release(1)

        S.tile_matmul(range_, blocks * nt2, kt2, fa, fw, fp, fy, k_zero, k_mm, epilogue)

    workers = []
    for c in range(S.COLUMNS):
        workers += [
            Worker(ln_core, [of_x[c].cons(), of_gb.cons(), of_sc.cons(), of_q[c].prod(), ln]),
            Worker(mm1_core, [of_a1[c].cons(), of_w1.cons(), of_p1.cons(), of_tab.cons(),
                              of_h[c].prod(), zero, mm, epi_gelu]
                   + ([of_p3.cons(), of_z[c].prod(), epi3] if tail else [])),
            Worker(mm2_core, [of_a2[c].cons(), of_w2.cons(), of_p2.cons(), of_r[c].cons(),
                              of_y[c].prod(), zero, mm, epi_add]),
        ]

    rt = Runtime()
    with rt.sequence(ty(in_total, i8), ty(out_total, i8), ty(w_total, i8),
                     ty(S.PARAMS_WORDS, np.uint32)) as (x_in, out, weights, _params):
        rt.start(*workers)
        rt.fill(of_tab.prod(), weights, S.contiguous_tap(w_total, o_t, 256))
        tg = rt.task_group()  # phase 1: LN(x) -> a
        S.ln_phase(rt, of_x, of_q, of_gb, of_sc, weights, w_total, o_g, o_s, x_in, in_total, 0,
                   out, out_total, o_a, C, mc, tg)
        rt.finish_task_group(tg)
        tg = rt.task_group()  # phase 2: fc1(a) -> gelu -> h
        S.fill_a_tiles(rt, of_a1, out, out_total, o_a, C, mc, blocks, nt1, tg)
        S.stream_weight_tiles(rt, of_w1, of_p1, weights, w_total, o_w1, o_p1, F, kt1, nt1, 3,
                              blocks, tg)
        S.drain_row_tiles(rt, of_h, out, out_total, o_h, F, 1, mc, blocks, nt1, tg)
        rt.finish_task_group(tg)
        tg = rt.task_group()  # phase 3: fc2(h) -> + x -> y
        S.fill_a_tiles(rt, of_a2, out, out_total, o_h, F, mc, blocks, nt2, tg)
        for c in range(S.COLUMNS):
            for b in range(blocks):
                row0 = c * mc + b * 32
                for nt in range(nt2):
                    rt.fill(of_r[c].prod(), x_in,
                            S.block_tap(in_total, 4 * C, row0, 4 * 64 * nt, 32, 4 * 64),
                            task_group=tg)
        S.stream_weight_tiles(rt, of_w2, of_p2, weights, w_total, o_w2, o_p2, C, kt2, nt2, 2,
                              blocks, tg)
        S.drain_row_tiles(rt, of_y, out, out_total, o_y, C, 4, mc, blocks, nt2, tg)
        rt.finish_task_group(tg)
        if tail:
            tg = rt.task_group()  # phase 4: the next layer's LN(y) -> a2 (y read back)
            S.ln_phase(rt, of_x, of_q, of_gb, of_sc, weights, w_total, o_g3, o_s3, out,
                       out_total, o_y, out, out_total, o_a2, C, mc, tg)
            rt.finish_task_group(tg)
            tg = rt.task_group()  # phase 5: projection(a2) -> z
            S.fill_a_tiles(rt, of_a1, out, out_total, o_a2, C, mc, blocks, nt3, tg)
            S.stream_weight_tiles(rt, of_w1, of_p3, weights, w_total, o_w3, o_p3, n3, kt1, nt3,
                                  prow3, blocks, tg)
            S.drain_row_tiles(rt, of_z, out, out_total, o_z, n3, zb, mc, blocks, nt3, tg)
            rt.finish_task_group(tg)
    return Program(NPU1(), rt).resolve_program(Placer())


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # kernels/
    from whisper_shapes import size_case  # --size NAME [--case L]: the shared table

    case = size_case("ffn_block", sys.argv[1:])
    if case is not None:
        print(globals()[case.fn](*case.args))
        return
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
