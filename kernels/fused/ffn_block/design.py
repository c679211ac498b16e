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
runtime/layout.py); WEIGHTS = the stages' device constants as the host packs
them: LN (gamma, beta, scalars), fc1 (W1 int8 [C, Fp], words int32 [3, Fp], the
(K, N) pair), gelu table int8 [256], fc2 (W2 int8 [F, Cp], words fp32 [2, Cp],
(K, N)), 64-byte aligned (Xp: X rounded up to 256, _stages.matmul_weight_blobs);
PARAMS. build_dynamic (below, `--dynamic`) is the default mode's form.

Optional ln_matmul tail (`tail_n`; the design "ffn_ln_matmul" of
kernels/fused/ffn_ln_matmul): phases 4-5 run the NEXT layer's layernorm ->
projection on y (read back from OUT) on the same LN and MM1 cores (their code
is already the layernorm and matmul stage functions): LN(y) -> a2, then
z = matmul(a2) [Mp, N] -> OUT. OUT then holds y, h, a, a2, z; WEIGHTS
continue with the tail's LN (gamma, beta, scalars) and matmul (W3 int8
[C, Np], words int32 [3, Np] for int8 out or fp32 [2, Np], (K, N)). This folds the
launch boundary between one encoder layer's MLP and the next layer's
q/k/v projection: two launches become one.

    python design.py [--rows 1500] [--channels 384] [--ffn 1536] [--tail-n N]
                     [--tail-out int8|float32] [--dynamic]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import _stages as S  # noqa: E402
import scratch  # noqa: E402 - the OUT slots, shared with runtime/layout.py

OBJ = "ffn_block_aie.o"


def fc2_phase(rt, fa, fr, fw, fp, fy, x_in, in_total: int, out, out_total: int, weights,
              w_total: int, o_h: int, o_w2: int, o_p2: int, o_y: int, channels: int, ffn: int,
              mc: int, tg) -> None:
    """DMA of fc2 + the residual add, both forms: per column the int8 h tiles (from
    OUT at o_h) and the residual x tiles (IN) in, W2 tiles and its float32 words
    ([2, Cp] at o_p2; W2 and the words have rows of Cp = C rounded up to 256 in
    WEIGHTS) broadcast, the float32 y tiles out to o_y."""
    C, F = channels, ffn
    blocks, nt2 = mc // S.TILE_M, C // S.TILE_N
    S.fill_a_tiles(rt, fa, out, out_total, o_h, F, mc, blocks, nt2, tg)
    for c in range(S.COLUMNS):
        for b in range(blocks):
            row0 = c * mc + b * S.TILE_M
            for nt in range(nt2):
                rt.fill(fr[c].prod(), x_in,
                        S.block_tap(in_total, 4 * C, row0, 4 * S.TILE_N * nt, S.TILE_M,
                                    4 * S.TILE_N), task_group=tg)
    S.stream_weight_tiles(rt, fw, fp, weights, w_total, o_w2, o_p2, S.padded_cols(C),
                          F // S.TILE_K, nt2, 2, blocks, tg)
    S.drain_row_tiles(rt, fy, out, out_total, o_y, C, 4, mc, blocks, nt2, tg)


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
    # WEIGHTS as the host packs the stages' device constants (matmul: W [K, Np], words
    # [rows, Np], the (K, N) pair; _stages.matmul_weight_blobs)
    ln_blobs = [4 * C, 4 * C, 16]
    offs_w, w_total = S.aligned_offsets(
        ln_blobs + S.matmul_weight_blobs(C, F, 3) + [256] + S.matmul_weight_blobs(F, C, 2)
        + (ln_blobs + S.matmul_weight_blobs(C, n3, prow3) if tail else []))
    o_g, _o_b, o_s, o_w1, o_p1, _kn1, o_t, o_w2, o_p2, _kn2 = offs_w[:10]
    o_g3, o_s3, o_w3, o_p3 = (offs_w[10], offs_w[12], offs_w[13], offs_w[14]) if tail \
        else (0, 0, 0, 0)
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
        S.stream_weight_tiles(rt, of_w1, of_p1, weights, w_total, o_w1, o_p1, S.padded_cols(F),
                              kt1, nt1, 3,
                              blocks, tg)
        S.drain_row_tiles(rt, of_h, out, out_total, o_h, F, 1, mc, blocks, nt1, tg)
        rt.finish_task_group(tg)
        tg = rt.task_group()  # phase 3: fc2(h) -> + x -> y
        fc2_phase(rt, of_a2, of_r, of_w2, of_p2, of_y, x_in, in_total, out, out_total, weights,
                  w_total, o_h, o_w2, o_p2, o_y, C, F, mc, tg)
        rt.finish_task_group(tg)
        if tail:
            tg = rt.task_group()  # phase 4: the next layer's LN(y) -> a2 (y read back)
            S.ln_phase(rt, of_x, of_q, of_gb, of_sc, weights, w_total, o_g3, o_s3, out,
                       out_total, o_y, out, out_total, o_a2, C, mc, tg)
            rt.finish_task_group(tg)
            tg = rt.task_group()  # phase 5: projection(a2) -> z
            S.fill_a_tiles(rt, of_a1, out, out_total, o_a2, C, mc, blocks, nt3, tg)
            S.stream_weight_tiles(rt, of_w1, of_p3, weights, w_total, o_w3, o_p3,
                                  S.padded_cols(n3), kt1, nt3,
                                  prow3, blocks, tg)
            S.drain_row_tiles(rt, of_z, out, out_total, o_z, n3, zb, mc, blocks, nt3, tg)
            rt.finish_task_group(tg)
    return Program(NPU1(), rt).resolve_program(Placer())


# ---- the dynamic form (default mode without calibration) -----------------------------
NEG_LIMIT = scratch.CONV_NEG_LIMIT              # the dynamic quantize before the gelu
GELU_APPROXIMATE = scratch.CONV_GELU_APPROXIMATE  # the table's gelu form (erf)


def build_dynamic(rows: int, channels: int, ffn: int,  # noqa: C901 - one design
                  tail_n: int | None = None, obj: str = OBJ):
    """The dynamic form (manifest "dynamic_stages": layernorm -> Q -> matmul -> Q
    (neg_limit 4) -> gelu -> matmul -> add, with `tail_n` the ffn_ln_matmul tail ->
    layernorm -> Q -> matmul): every scale is reduced on the array with the quantize
    contract's rule (kernels/common/dynamic_scale.h) over the REAL rows only, and the
    dynamic gelu's table is built on the array from the code range of its quantized
    input (kernels/common/aie/gelu_table_aie.cc), so the bytes are the emulator's
    stage by stage.

    Cores (15 of 16): per column a pass core P (the LayerNorm, then the element
    passes over a and f), an fc1 core MM1 (the tail's projection too) and an fc2
    core MM2; reducers SA (neg_limit 0: a, then the tail's a2), SF (neg_limit 4: f)
    and G (the gelu table from f's code ranges and SF's params).

    Phases (task groups, in order):
      1. P: LN(x) -> a (float32, OUT).
      2. P folds a's real rows -> SA -> params to MM1, to SCALES[0].
      3. MM1: a tiles quantized with SA's params -> fc1 -> dynamic float32
         epilogue -> f (float32 [Mp, F], OUT).
      4. P, three passes over f: its real rows folded -> SF (neg_limit 4) ->
         SCALES[1]; its real rows quantized with SF's params, codes ranged -> G
         (table + s_out); all its rows quantized -> table -> h (int8, OUT).
      5. MM2: h tiles -> fc2 -> dynamic epilogue with G's s_out (a_scale * w_scale)
         + the residual x (IN) -> y.
      tail: 6. P: LN(y) -> a2 (float32); 7. P folds a2's real rows -> SA (round 2)
         -> SCALES[2]; 8. MM1: a2 -> Q -> matmul -> z (float32).
    SCALES holds the params in the launch's order of its reducing stages (the
    quantizes of a, f, a2), as runtime/layout.py and the FAKE hardware read them.

    Runtime sequence (bytes): IN = x fp32 [Mp, C]; OUT = scratch.DYNAMIC_OUT_ENTRIES
    (y, h, a, [a2, z,] f, SCALES); WEIGHTS as the host packs the stages' device
    constants: LN (gamma, beta, scalars), fc1 (W1 int8 [C, Fp], words fp32 [2, Fp] =
    w_scale, bias, the (K, N) pair), fc2 (W2 [F, Cp], words [2, Cp], (K, N)), [tail
    LN, W3 [C, Np], words [2, Np], (K, N)] (Xp: X rounded up to 256,
    _stages.matmul_weight_blobs; a dynamic gelu and quantize have none), 64-byte
    aligned; PARAMS. Built for neg_limit 4 and the erf gelu
    (runtime/layout.py dynamic_design_refusal sends other launches to the emulator)."""
    np, Kernel, ObjectFifo, Program, Runtime, Worker, range_, NPU1, Placer = S.iron()
    from math import gcd

    from aie.iron import Buffer

    tail = tail_n is not None
    if channels % S.TILE_N or ffn % S.TILE_N or (tail and tail_n % S.TILE_N):
        raise ValueError("channels, ffn and tail_n must be multiples of 64")
    design = "ffn_ln_matmul" if tail else "ffn_block"
    C, F = channels, ffn
    n3 = tail_n if tail else 0
    mp = scratch.padded_rows(design, rows)
    mc = mp // S.COLUMNS
    blocks = mc // S.TILE_M
    kt1, nt1, kt2, nt2, nt3 = C // 64, F // 64, F // 64, C // 64, n3 // 64
    ch = S.pass_chunk(gcd(C, F))     # floats per pass chunk: rows of a and of f split evenly
    # the pass core's work next to its LayerNorm: f chunks in, h chunks out, the gelu
    # object, SF's params, the two extra partials, the codes scratch
    extra = 2 * ch + S.GELU_BYTES + 3 * 4 * S.DYN_WORDS + S.PASS_MAX
    R = S.ln_rows_per_tile(C, out_bytes=4, extra=extra)
    i8, f32 = np.int8, np.float32

    def ty(n, dt):
        return np.ndarray[(n,), np.dtype[dt]]

    ln_blobs = [4 * C, 4 * C, 16]       # gamma, beta, scalars (layernorm device constants)
    offs_w, w_total = S.aligned_offsets(
        ln_blobs + S.matmul_weight_blobs(C, F, 2) + S.matmul_weight_blobs(F, C, 2)
        + (ln_blobs + S.matmul_weight_blobs(C, n3, 2) if tail else []))
    o_g, _o_b, o_s, o_w1, o_p1, _kn1, o_w2, o_p2, _kn2 = offs_w[:9]
    o_g3, o_s3, o_w3, o_p3 = (offs_w[9], offs_w[11], offs_w[12], offs_w[13]) if tail \
        else (0, 0, 0, 0)
    row_bytes = {"y": 4 * C, "h": F, "a": 4 * C, "a2": 4 * C, "z": 4 * n3, "f": 4 * F}
    entries = [e.name for e in scratch.out_entries(design, True)]
    offs, out_total = scratch.offsets([
        scratch.scales_bytes(3 if tail else 2) if e == scratch.SCALES
        else scratch.capacity(design, rows, row_bytes[e]) for e in entries])
    o = dict(zip(entries, offs, strict=True))
    o_y, o_h, o_a, o_f, o_sc = o["y"], o["h"], o["a"], o["f"], o[scratch.SCALES]
    o_a2, o_z = (o["a2"], o["z"]) if tail else (0, 0)
    in_total = 4 * mp * C
    tile = S.TILE_M * S.TILE_N
    real = [max(0, min(rows - c * mc, mc)) for c in range(S.COLUMNS)]

    ln, zero, mm, epi1 = S.dyn_ln_matmul_kernels(obj, R, C)
    epi2 = Kernel("ffn_epilogue_f32_dyn_add", obj, [ty(128, f32), ty(S.GELU_BYTES, i8),
                                                     ty(tile, f32), ty(tile, f32)])
    begin, fold, quant = S.dyn_kernels(obj, ch, tile)
    cbegin, cfold = S.gelu_kernels(obj, ch)
    apply_ = S.gelu_apply_kernel(obj, ch)
    red_a = S.ScaleReduction("sa", obj, S.COLUMNS, rounds=2 if tail else 1)
    red_f = S.ScaleReduction("sf", obj, S.COLUMNS, NEG_LIMIT)
    red_g = S.GeluTableReduction("sg", obj, S.COLUMNS, red_f.params,
                                 {"none": 0, "tanh": 1}[GELU_APPROXIMATE])

    of_gb = ObjectFifo(ty(2 * C, f32), name="gb", depth=1)
    of_sc = ObjectFifo(ty(4, f32), name="sc", depth=1)
    of_w1 = ObjectFifo(ty(64 * 64, i8), name="w1")   # broadcast to the MM1 cores
    of_p1 = ObjectFifo(ty(128, f32), name="p1")      # fc1's words, then the tail's
    of_w2 = ObjectFifo(ty(64 * 64, i8), name="w2")   # broadcast to the MM2 cores
    of_p2 = ObjectFifo(ty(128, f32), name="p2")
    of_x = [ObjectFifo(ty(R * C, f32), name=f"x{c}") for c in range(S.COLUMNS)]
    of_q = [ObjectFifo(ty(R * C, f32), name=f"q{c}") for c in range(S.COLUMNS)]
    of_e = [ObjectFifo(ty(ch, f32), name=f"e{c}") for c in range(S.COLUMNS)]   # pass chunks
    of_hc = [ObjectFifo(ty(ch, i8), name=f"hc{c}") for c in range(S.COLUMNS)]  # h chunks
    of_a1 = [ObjectFifo(ty(tile, f32), name=f"a1_{c}") for c in range(S.COLUMNS)]
    of_f = [ObjectFifo(ty(tile, f32), name=f"f{c}") for c in range(S.COLUMNS)]  # f, then z
    of_a2 = [ObjectFifo(ty(tile, i8), name=f"a2_{c}") for c in range(S.COLUMNS)]
    of_r = [ObjectFifo(ty(tile, f32), name=f"r{c}") for c in range(S.COLUMNS)]
    of_y = [ObjectFifo(ty(tile, f32), name=f"y{c}") for c in range(S.COLUMNS)]
    row_chunks, f_chunks = C // ch, F // ch

    ln_body = S.ln_core_fn(range_, mc // R, mode=None)

    def ln_pass(fx, fgb, fsc, fq, k):
        ln_body(fx, fgb, fsc, fq, k, R, C)

    def p_core(fx, fgb, fsc, fq, fe, fh, fpa, fpf, fpg, fsf, fg, k_ln, kb, kf, kcb, kcf, k_app,
               real_rows):
        ln_pass(fx, fgb, fsc, fq, k_ln)                                       # 1
        S.dyn_producer(range_, real_rows * row_chunks, fe, fpa, kb, kf, ch)   # 2
        S.dyn_producer(range_, real_rows * f_chunks, fe, fpf, kb, kf, ch)     # 4a
        s = fsf.acquire(1)
        S.gelu_codes_pass(range_, real_rows * f_chunks, fe, fpg, s, kcb, kcf, ch)  # 4b
        g = fg.acquire(1)                                                     # 4c
        for _ in range_(mc * f_chunks):
            x, h = fe.acquire(1), fh.acquire(1)
            k_app(x, s, g, h, ch)
            fe.release(1)
            fh.release(1)
        fg.release(1)
        fsf.release(1)
        if tail:
            ln_pass(fx, fgb, fsc, fq, k_ln)                                   # 6
            S.dyn_producer(range_, real_rows * row_chunks, fe, fpa, kb, kf, ch)  # 7

    def mm1_core(fa, fs, fw, fp, fo, k_zero, k_mm, k_quant, k_epi, qbuf):
        S.dyn_tile_matmul(range_, blocks * nt1, kt1, fa, fs, fw, fp, fo, k_zero, k_mm,
                          k_quant, k_epi, qbuf)                               # 3
        if tail:  # the next layer's projection, K = C as for fc1
            S.dyn_tile_matmul(range_, blocks * nt3, kt1, fa, fs, fw, fp, fo, k_zero, k_mm,
                              k_quant, k_epi, qbuf)                           # 8

    def mm2_core(fa, fg, fw, fp, fr, fy, k_zero, k_mm, k_epi):
        g = fg.acquire(1)

        def epilogue(p, y):
            r = fr.acquire(1)
            k_epi(p, g, r, y)
            fr.release(1)

        S.tile_matmul(range_, blocks * nt2, kt2, fa, fw, fp, fy, k_zero, k_mm, epilogue)  # 5
        fg.release(1)

    workers = [red_a.worker, red_f.worker, red_g.worker]
    for c in range(S.COLUMNS):
        workers += [
            Worker(p_core, [of_x[c].cons(), of_gb.cons(), of_sc.cons(), of_q[c].prod(),
                            of_e[c].cons(), of_hc[c].prod(), red_a.partials[c].prod(),
                            red_f.partials[c].prod(), red_g.partials[c].prod(),
                            red_f.params.cons(), red_g.table.cons(), ln, begin, fold, cbegin,
                            cfold, apply_, real[c]]),
            Worker(mm1_core, [of_a1[c].cons(), red_a.params.cons(), of_w1.cons(),
                              of_p1.cons(), of_f[c].prod(), zero, mm, quant, epi1,
                              Buffer(ty(tile, i8), name=f"qa{c}")]),
            Worker(mm2_core, [of_a2[c].cons(), red_g.table.cons(), of_w2.cons(), of_p2.cons(),
                              of_r[c].cons(), of_y[c].prod(), zero, mm, epi2]),
        ]

    rt = Runtime()
    with rt.sequence(ty(in_total, i8), ty(out_total, i8), ty(w_total, i8),
                     ty(S.PARAMS_WORDS, np.uint32)) as (x_in, out, weights, _params):
        rt.start(*workers)
        tg = rt.task_group()  # 1: LN(x) -> a (float32)
        S.ln_phase(rt, of_x, of_q, of_gb, of_sc, weights, w_total, o_g, o_s, x_in, in_total, 0,
                   out, out_total, o_a, C, mc, tg, out_bytes=4)
        rt.finish_task_group(tg)
        # 2: a's real rows -> SA -> SCALES[0]; 3: a -> Q -> fc1 -> f (float32)
        S.dyn_projection_phases(rt, S.DynProjectionFifos(of_e, red_a.params, of_a1, of_w1, of_p1,
                                                         of_f), out, out_total, weights, w_total,
                                o_a, o_sc, 0, o_w1, o_p1, o_f, C, F, rows, mc)
        tg = rt.task_group()  # 4: f -> SF -> SCALES[1]; f's codes -> G; f -> gelu -> h
        S.fill_real_rows(rt, of_e, out, out_total, o_f, 4 * F, rows, mc, tg)
        S.fill_real_rows(rt, of_e, out, out_total, o_f, 4 * F, rows, mc, tg)
        S.fill_real_rows(rt, of_e, out, out_total, o_f, 4 * F, mp, mc, tg)   # every row
        S.drain_scales(rt, red_f.params, out, out_total, o_sc, 1, tg)
        for c in range(S.COLUMNS):
            rt.drain(of_hc[c].cons(), out, S.contiguous_tap(out_total, o_h + c * mc * F, mc * F),
                     wait=True, task_group=tg)
        rt.finish_task_group(tg)
        tg = rt.task_group()  # 5: h -> fc2 (s_out) -> + x -> y
        fc2_phase(rt, of_a2, of_r, of_w2, of_p2, of_y, x_in, in_total, out, out_total, weights,
                  w_total, o_h, o_w2, o_p2, o_y, C, F, mc, tg)
        rt.finish_task_group(tg)
        if tail:
            tg = rt.task_group()  # 6: the next layer's LN(y) -> a2 (float32; y read back)
            S.ln_phase(rt, of_x, of_q, of_gb, of_sc, weights, w_total, o_g3, o_s3, out,
                       out_total, o_y, out, out_total, o_a2, C, mc, tg, out_bytes=4)
            rt.finish_task_group(tg)
            # 7: a2's real rows -> SA (round 2) -> SCALES[2]; 8: a2 -> Q -> projection -> z
            S.dyn_projection_phases(rt, S.DynProjectionFifos(of_e, red_a.params, of_a1, of_w1,
                                                             of_p1, of_f), out, out_total,
                                    weights, w_total, o_a2, o_sc, 2, o_w3, o_p3, o_z, C, n3,
                                    rows, mc)
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
    p.add_argument("--dynamic", action="store_true",
                   help="the dynamic form (scales and the gelu table reduced on the array)")
    a = p.parse_args()
    print(build_dynamic(a.rows, a.channels, a.ffn, a.tail_n) if a.dynamic
          else build(a.rows, a.channels, a.ffn, a.tail_n, a.tail_out))


if __name__ == "__main__":
    main()
