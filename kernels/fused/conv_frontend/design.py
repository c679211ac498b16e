"""Fused design "conv_frontend": Whisper's audio front end in one launch.

    h   = gelu(conv1d(mel, W1, stride 1, pad 1))          [B, D, T]
    out = gelu(conv1d(h,  W2, stride 2, pad 1))^T + pos   [B, T/2, D]

Stage order conv1d -> gelu -> conv1d -> gelu -> add; the fp32/int8 boundary
around each gelu is the quantize -> gelu -> dequantize composition (the
manifest lists quantize/dequantize as this design's glue), done on the conv
core right after its epilogue (frontend_conv_gelu*).

Phase 1 (conv1): per column a range of output positions; windows of the
zero-padded mel input (IN) -> im2col -> 8-channel blocks -> gelu glue ->
scratch h (OUT slot, fp32 [B, D, T + 2], one zero column each side; the host
zero-fills the OUT BO at allocation, so the borders are conv2's padding).
Phase 2 (conv2): windows of h -> blocks -> gelu glue -> + positional embedding
-> OUT, written transposed ([B, T/2, D]) by the drain pattern.

Runtime sequence: IN = fp32: mel [B, 80, T1p + 2] (zero-bordered by the host
layout, runtime/layout.py in_frames; mel[b, m, t] at [b, m, 1 + t]; T1p = t1 of
scratch.conv_frontend_dims); OUT = fp32: y [B, T2p, D] (T2p rows per batch, the
host reads the first T/2 of each; T2p = T/2 rounded up to 4 x NT) then h;
WEIGHTS = conv1 (W1 int8 [D, 240], w_scale, bias, {s, 1/s}), gelu1 table,
gelu1 glue {1/s_in, s_out}, conv2 (same four), gelu2 table, gelu2 glue, then
the add stage's constant b: the position table fp32 [T2p, D], row-major, zero
rows past T/2 (kernels/add device_constants pads it to whole 32-row tiles),
64-byte aligned; PARAMS. The table reaches the cores row by row ([NT, NCO]
blocks: 4 x NCO contiguous bytes per position) and frontend_conv_gelu_add adds
it transposed. build() takes static scales; build_dynamic() below is the
default (dynamic) mode's variant, its scales reduced on the array. NT (positions) and NCO (output channels)
per tile come from kernels/fused/scratch.py conv_tiling, per stage and width
(tiny: 8 x 8; large-v3 conv2: 2 x 1), so every core fits its 64 KiB; the same
module gives the runtime the OUT slots (y rows, h scratch).

    python design.py [--batch 1] [--mels 80] [--d-model 384] [--frames 3000] [--dynamic]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import _stages as S  # noqa: E402
import scratch  # noqa: E402 - OUT slots and conv tiling, shared with runtime/layout.py

OBJ = "conv_frontend_aie.o"
KW = scratch.CONV_KW


def build(batch: int, mels: int, d: int, frames: int):  # noqa: C901 - one design
    np, Kernel, ObjectFifo, Program, Runtime, Worker, range_, NPU1, Placer = S.iron()
    if d % 8 or frames < 2:
        raise ValueError("d_model must be a multiple of 8 and frames >= 2")
    # output lengths (conv1: stride 1, pad 1; conv2: stride 2, pad 1) rounded up to
    # whole tiles of 4 columns x NT positions; the host crops y to the real T/2.
    # Padded positions only ever feed padded outputs (conv2's last real window
    # ends at h index T, conv1's last real output).
    # per-stage tiles (positions x output channels) from the shared rule, so the
    # runtime reserves the same padded y rows and h scratch (scratch.py)
    dims = scratch.conv_frontend_dims(mels, d, frames)
    t1, t2, tp2 = dims.t1, dims.t2, dims.tp2  # tp2: h row = 1 zero, conv1 outputs, zeros
    k1, k2 = mels * KW, d * KW
    tp1 = dims.tp1  # mel row: 1 zero, frames, zeros (the host packs it so)
    f32, i8, i32 = np.float32, np.int8, np.int32

    def ty(n, dt):
        return np.ndarray[(n,), np.dtype[dt]]

    sizes = [d * k1, 4 * d, 4 * d, 8, 256, 8, d * k2, 4 * d, 4 * d, 8, 256, 8, 4 * t2 * d]
    (o_w1, o_s1, o_b1, o_c1, o_t1, o_g1, o_w2, o_s2, o_b2, o_c2, o_t2, o_g2, o_pos), w_total = \
        S.aligned_offsets(sizes)
    # IN and OUT hold only fp32, so they are typed float32 and offsets count floats
    (o_mel,), in_bytes = S.aligned_offsets([dims.in_bytes(batch, mels)])
    o_mel, in_total = o_mel // 4, S.up(in_bytes, 4) // 4
    (o_y, o_h), out_bytes = scratch.offsets([dims.y_bytes(batch, d), dims.h_bytes(batch, d)])
    o_y, o_h, out_total = o_y // 4, o_h // 4, out_bytes // 4

    def stage(name, cin, k, stride, with_add, tiling):
        NT, NCO = tiling.nt, tiling.nco  # noqa: N806 - the tile constants of this stage
        win = (NT - 1) * stride + KW
        im2col = Kernel("xdna_conv1d_im2col", OBJ,
                        [ty(cin * win, f32), ty(2, f32), i32, i32, i32, i32, i32])
        blk_args = [ty(NCO * k, i8), ty(d, f32), ty(d, f32), ty(2, f32), ty(256, i8), ty(2, f32)]
        if with_add:
            blk_args.append(ty(NCO * NT, f32))
        blk = Kernel("frontend_conv_gelu_add" if with_add else "frontend_conv_gelu", OBJ,
                     blk_args + [ty(NCO * NT, f32), i32, i32, i32, i32])
        f = {key: ObjectFifo(ty(n, dt), name=f"{name}_{key}", depth=1) for key, n, dt in
             (("ws", d, f32), ("b", d, f32), ("sc", 2, f32), ("tab", 256, i8), ("gs", 2, f32))}
        f["w"] = ObjectFifo(ty(NCO * k, i8), name=f"{name}_w")  # broadcast to 4 cores
        cols = []
        tiles = (t1 if not with_add else t2) // S.COLUMNS // NT
        for c in range(S.COLUMNS):
            cf = {"win": ObjectFifo(ty(cin * win, f32), name=f"{name}_win{c}", depth=1),
                  "y": ObjectFifo(ty(NCO * NT, f32), name=f"{name}_y{c}")}
            if with_add:
                cf["emb"] = ObjectFifo(ty(NCO * NT, f32), name=f"{name}_emb{c}")
            cols.append(cf)

        def core(fwin, fw, fws, fb, fsc, ftab, fgs, fy, *rest):
            femb = rest[0] if with_add else None
            k_im, k_blk = rest[-2], rest[-1]
            ws, bias, sc, tab, gs = (fws.acquire(1), fb.acquire(1), fsc.acquire(1),
                                     ftab.acquire(1), fgs.acquire(1))
            for _ in range_(batch * tiles):
                wv = fwin.acquire(1)
                k_im(wv, sc, cin, win, KW, stride, NT)
                fwin.release(1)
                for j in range_(d // NCO):
                    wb, yb = fw.acquire(1), fy.acquire(1)
                    if with_add:
                        eb = femb.acquire(1)
                        k_blk(wb, ws, bias, sc, tab, gs, eb, yb, k, j * NCO, NCO, NT)
                        femb.release(1)
                    else:
                        k_blk(wb, ws, bias, sc, tab, gs, yb, k, j * NCO, NCO, NT)
                    fw.release(1)
                    fy.release(1)
            for h in (fgs, ftab, fsc, fb, fws):
                h.release(1)

        workers = []
        for c in range(S.COLUMNS):
            args = [cols[c]["win"].cons(), f["w"].cons(), f["ws"].cons(), f["b"].cons(),
                    f["sc"].cons(), f["tab"].cons(), f["gs"].cons(), cols[c]["y"].prod()]
            if with_add:
                args.append(cols[c]["emb"].cons())
            workers.append(Worker(core, args + [im2col, blk]))
        return f, cols, workers, tiles, win

    f1, c1, w1, tiles1, win1 = stage("c1", mels, k1, 1, False, dims.c1)
    f2, c2, w2, tiles2, win2 = stage("c2", d, k2, 2, True, dims.c2)

    rt = Runtime()
    with rt.sequence(ty(in_total, f32), ty(out_total, f32), ty(w_total, i8),
                     ty(S.PARAMS_WORDS, np.uint32)) as (x_in, out, weights, _params):
        rt.start(*(w1 + w2))
        for f, offs in ((f1, (o_s1, o_b1, o_c1, o_t1, o_g1)), (f2, (o_s2, o_b2, o_c2, o_t2, o_g2))):
            for key, off, n in zip(("ws", "b", "sc", "tab", "gs"), offs,
                                   (4 * d, 4 * d, 8, 256, 8), strict=True):
                rt.fill(f[key].prod(), weights, S.contiguous_tap(w_total, off, n))

        def phase(f, cols, tiles, win, cin, tp, stride, src, src_total, src_base, o_w, k, tout,
                  final, tiling):
            from aie.helpers.taplib import TensorAccessPattern

            NT, NCO = tiling.nt, tiling.nco  # noqa: N806

            tg = rt.task_group()
            per_col = tout // S.COLUMNS
            for b in range(batch):
                for c in range(S.COLUMNS):
                    t0 = c * per_col
                    base = src_base + b * cin * tp + t0 * stride
                    rt.fill(cols[c]["win"].prod(), src,
                            TensorAccessPattern((1, src_total), base, [1, tiles, cin, win],
                                                [0, NT * stride, tp, 1]),
                            task_group=tg)
                    if final:  # pos rows [NT, NCO] per block, bytes of WEIGHTS
                        rt.fill(cols[c]["emb"].prod(), weights,
                                TensorAccessPattern((1, w_total), o_pos + 4 * t0 * d,
                                                    [tiles, d // NCO, NT, 4 * NCO],
                                                    [4 * NT * d, 4 * NCO, 4 * d, 1]),
                                task_group=tg)
            for _ in range(batch * tiles):
                rt.fill(f["w"].prod(), weights, S.contiguous_tap(w_total, o_w, d * k),
                        task_group=tg)
            for b in range(batch):
                for c in range(S.COLUMNS):
                    t0 = c * per_col
                    if final:  # transposed: y[b, t, co]
                        tap = TensorAccessPattern(
                            (1, out_total), o_y + b * tout * d + t0 * d,
                            [tiles, d // NCO, NCO, NT], [NT * d, NCO, 1, d])
                    else:  # h[b, co, 1 + t]
                        tap = TensorAccessPattern(
                            (1, out_total), o_h + b * d * tp2 + 1 + t0,
                            [tiles, d // NCO, NCO, NT], [NT, NCO * tp2, tp2, 1])
                    rt.drain(cols[c]["y"].cons(), out, tap, wait=(b == batch - 1),
                             task_group=tg)
            rt.finish_task_group(tg)

        phase(f1, c1, tiles1, win1, mels, tp1, 1, x_in, in_total, o_mel, o_w1, k1, t1, False,
              dims.c1)
        phase(f2, c2, tiles2, win2, d, tp2, 2, out, out_total, o_h, o_w2, k2, t2, True, dims.c2)
    return Program(NPU1(), rt).resolve_program(Placer())


# ---- the dynamic variant (default mode without calibration) ------------------------------
GELU_BYTES = S.GELU_BYTES  # the gelu reducer's object: table[256], {s_out, 0, 0, 0}
NEG_LIMIT = scratch.CONV_NEG_LIMIT   # the dynamic quantize before each gelu
pass_chunk = S.pass_chunk  # floats per chunk of a [.., frames] row (3000 -> 1000)


def build_dynamic(batch: int, mels: int, d: int, frames: int,  # noqa: C901 - one design
                  approximate: str = scratch.CONV_GELU_APPROXIMATE):
    """The front end's dynamic-mode chain in ONE launch: conv1d(dynamic), quantize
    (dynamic, neg_limit 4) -> gelu(dynamic) -> dequantize, conv1d(dynamic), quantize
    -> gelu -> dequantize, + positions. Every scale is computed on the array with the
    quantize contract's rule (kernels/common/dynamic_scale.h), over the REAL
    elements only (the padded positions never enter a reduction), so the bytes are
    the emulator's stage by stage.

    Cores (15 of 16): 4 conv1 + 4 conv2 cores (the static design's conv stages
    without the gelu glue: raw fp32 blocks), 4 pass cores (one per column, element
    passes over the real rows), and 3 reducers: A (neg_limit 0: the mel, then h;
    broadcast to the conv cores), B (neg_limit 4: c1, then c2; to the pass cores and
    the gelu reducer), G (the gelu code ranges -> the dynamic gelu's table and output
    scale, gelu.h; to the pass cores).

    Phases (task groups, in order):
      1. pass cores fold the mel (IN, real frames) -> A -> params to the conv1 cores;
         conv1 -> raw c1 [B, d, t1] (OUT).
      2. three passes of the pass cores over c1's real rows: fold -> B (c1 params);
         quantize + code range -> G (table 1); quantize -> table -> dequantize -> h
         (OUT, zero-bordered [B, d, tp2]) folded -> A (h params).
      3. conv2 with h's params -> raw c2, transposed [B, t2, d] (OUT).
      4. three passes over c2's real rows (a quarter of d per column): fold -> B;
         code range -> G; gelu glue + the position row (WEIGHTS) -> y.
    The reducers' params of the four float reductions (mel, c1, h, c2) are drained
    to OUT's SCALES entry (scratch.CONV_REDUCTIONS, in the launch's order of its
    reducing stages: conv1d, quantize, conv1d, quantize); the host raises the quantize
    contract's error on a set flag.

    Runtime sequence: IN and the first OUT entries as the static design (y, h), then
    c1, c2, scales (scratch.DYNAMIC_OUT_ENTRIES); WEIGHTS = conv1 (W1, w_scale, bias),
    conv2 (same), the position table (the stages' device constants: dynamic conv1d
    has no scalar block, dynamic gelu no table); PARAMS."""
    np, Kernel, ObjectFifo, Program, Runtime, Worker, range_, NPU1, Placer = S.iron()
    from aie.helpers.taplib import TensorAccessPattern

    if d % 8 or frames < 2 or mels % S.COLUMNS:
        raise ValueError("d_model must be a multiple of 8, mels of 4, and frames >= 2")
    tanh = {"none": 0, "tanh": 1}[approximate]
    dims = scratch.conv_frontend_dims(mels, d, frames)
    t1, t2, tp1, tp2 = dims.t1, dims.t2, dims.tp1, dims.tp2
    t2_real = (frames + 2 - KW) // 2 + 1       # conv2's real outputs (y rows per batch)
    k1, k2 = mels * KW, d * KW
    f32, i8, i32 = np.float32, np.int8, np.int32
    cols = S.COLUMNS
    p1 = pass_chunk(frames)                    # floats per chunk of a [.., frames] row
    q2 = d // cols                             # floats per row chunk of c2 / y / pos
    mel_rows, ch_rows = mels // cols, d // cols
    n_mel = batch * mel_rows * (frames // p1)  # chunks per pass core, per pass
    n_c1 = batch * ch_rows * (frames // p1)
    n_c2 = batch * t2_real

    def ty(n, dt):
        return np.ndarray[(n,), np.dtype[dt]]

    sizes = [d * k1, 4 * d, 4 * d, d * k2, 4 * d, 4 * d, 4 * t2 * d]
    (o_w1, o_s1, o_b1, o_w2, o_s2, o_b2, o_pos), w_total = S.aligned_offsets(sizes)
    (o_mel,), in_bytes = S.aligned_offsets([dims.in_bytes(batch, mels)])
    o_mel, in_total = o_mel // 4, S.up(in_bytes, 4) // 4
    outs = [dims.y_bytes(batch, d)] + [dims.scratch_bytes(e.name, batch, d)
                                       for e in scratch.out_entries("conv_frontend", True)[1:]]
    offs, out_bytes = scratch.offsets(outs)
    o_y, o_h, o_c1, o_c2, o_fl = (o // 4 for o in offs)
    out_total = out_bytes // 4

    # the three reducers (kernels/fused/_stages.py ScaleReduction; G is the gelu one)
    red_a = S.ScaleReduction("ra", OBJ, cols, 0.0, rounds=2)         # mel, then h
    red_b = S.ScaleReduction("rb", OBJ, cols, NEG_LIMIT, rounds=2)   # c1, then c2
    red_g = S.GeluTableReduction("rg", OBJ, cols, red_b.params, tanh, rounds=2)
    workers = [red_a.worker, red_b.worker, red_g.worker]

    # ---- conv cores: the static stages without the gelu glue, params from reducer A ----
    def conv_stage(name, cin, k, stride, tiling, first):
        NT, NCO = tiling.nt, tiling.nco  # noqa: N806 - the tile constants of this stage
        win = (NT - 1) * stride + KW
        im2col = Kernel("xdna_conv1d_im2col", OBJ,
                        [ty(cin * win, f32), ty(S.DYN_WORDS, f32), i32, i32, i32, i32, i32])
        blk = Kernel("xdna_conv1d_block", OBJ,
                     [ty(NCO * k, i8), ty(d, f32), ty(d, f32), ty(S.DYN_WORDS, f32),
                      ty(NCO * NT, f32), i32, i32, i32, i32])
        f = {key: ObjectFifo(ty(d, f32), name=f"{name}_{key}", depth=1) for key in ("ws", "b")}
        f["w"] = ObjectFifo(ty(NCO * k, i8), name=f"{name}_w")
        tiles = (t1 if first else t2) // cols // NT
        cf = [{"win": ObjectFifo(ty(cin * win, f32), name=f"{name}_win{c}", depth=1),
               "y": ObjectFifo(ty(NCO * NT, f32), name=f"{name}_y{c}")} for c in range(cols)]

        def core(fwin, fw, fws, fb, fsc, fy, k_im, k_blk):
            ws, bias = fws.acquire(1), fb.acquire(1)
            if not first:           # round 1 of A (the mel's params) is conv1's
                fsc.acquire(1)
                fsc.release(1)
            sc = fsc.acquire(1)
            for _ in range_(batch * tiles):
                wv = fwin.acquire(1)
                k_im(wv, sc, cin, win, KW, stride, NT)
                fwin.release(1)
                for j in range_(d // NCO):
                    wb, yb = fw.acquire(1), fy.acquire(1)
                    k_blk(wb, ws, bias, sc, yb, k, j * NCO, NCO, NT)
                    fw.release(1)
                    fy.release(1)
            fsc.release(1)
            if first:               # round 2 of A (h's params) is conv2's
                fsc.acquire(1)
                fsc.release(1)
            fb.release(1)
            fws.release(1)

        ws = [Worker(core, [cf[c]["win"].cons(), f["w"].cons(), f["ws"].cons(), f["b"].cons(),
                            red_a.params.cons(), cf[c]["y"].prod(), im2col, blk])
              for c in range(cols)]
        return f, cf, ws, tiles, win

    f1, c1, w1, tiles1, win1 = conv_stage("c1", mels, k1, 1, dims.c1, True)
    f2, c2, w2, tiles2, win2 = conv_stage("c2", d, k2, 2, dims.c2, False)
    workers += w1 + w2

    # ---- pass cores: one per column -----------------------------------------------------
    begin, fold, _quant = S.dyn_kernels(OBJ, p1)
    k_cbegin, k_cfold = S.gelu_kernels(OBJ, p1)
    k_cfold_row = Kernel("frontend_codes_fold_row", OBJ, [ty(q2, f32), ty(S.DYN_WORDS, f32),
                                                         ty(S.DYN_WORDS, i32), i32])
    k_fold_row = Kernel("frontend_fold_row", OBJ, [ty(q2, f32), ty(S.DYN_WORDS, f32), i32])
    k_gfold = Kernel("frontend_gelu_fold", OBJ, [ty(p1, f32), ty(S.DYN_WORDS, f32),
                                                ty(GELU_BYTES, i8), ty(p1, f32),
                                                ty(S.DYN_WORDS, f32), i32])
    k_gadd = Kernel("frontend_gelu_add_row", OBJ, [ty(q2, f32), ty(q2, f32), ty(S.DYN_WORDS, f32),
                                                  ty(GELU_BYTES, i8), ty(q2, f32), i32])
    pc = [{"x": ObjectFifo(ty(p1, f32), name=f"px{c}"),
           "h": ObjectFifo(ty(p1, f32), name=f"ph{c}"),
           "x2": ObjectFifo(ty(q2, f32), name=f"px2_{c}"),
           "e": ObjectFifo(ty(q2, f32), name=f"pe{c}"),
           "y": ObjectFifo(ty(q2, f32), name=f"py{c}")} for c in range(cols)]

    def pass_core(fx, fh, fx2, fe, fy, fpa, fpb, fpg, fsb, fg, kb, kf, kcb, kcf, kcfr, kfr,
                  kgf, kga):
        def fold_pass(fpart, n, src, k, chunk):
            S.dyn_producer(range_, n, src, fpart, kb, k, chunk)

        def codes_pass(n, src, s, k, chunk):
            S.gelu_codes_pass(range_, n, src, fpg, s, kcb, k, chunk)

        fold_pass(fpa, n_mel, fx, kf, p1)                  # 1: the mel -> A
        fold_pass(fpb, n_c1, fx, kf, p1)                   # 2a: c1 -> B
        s1 = fsb.acquire(1)
        codes_pass(n_c1, fx, s1, kcf, p1)                  # 2b: c1's codes -> G
        g1, part = fg.acquire(1), fpa.acquire(1)           # 2c: gelu -> h, h -> A
        kb(part)
        for _ in range_(n_c1):
            x, h = fx.acquire(1), fh.acquire(1)
            kgf(x, s1, g1, h, part, p1)
            fx.release(1)
            fh.release(1)
        fpa.release(1)
        fg.release(1)
        fsb.release(1)
        fold_pass(fpb, n_c2, fx2, kfr, q2)                 # 4a: c2 -> B
        s4 = fsb.acquire(1)
        codes_pass(n_c2, fx2, s4, kcfr, q2)                # 4b: c2's codes -> G
        g2 = fg.acquire(1)                                 # 4c: gelu + positions -> y
        for _ in range_(n_c2):
            x, e, y = fx2.acquire(1), fe.acquire(1), fy.acquire(1)
            kga(x, e, s4, g2, y, q2)
            fx2.release(1)
            fe.release(1)
            fy.release(1)
        fg.release(1)
        fsb.release(1)

    for c in range(cols):
        workers.append(Worker(pass_core, [
            pc[c]["x"].cons(), pc[c]["h"].prod(), pc[c]["x2"].cons(), pc[c]["e"].cons(),
            pc[c]["y"].prod(), red_a.partials[c].prod(), red_b.partials[c].prod(),
            red_g.partials[c].prod(), red_b.params.cons(), red_g.table.cons(), begin, fold, k_cbegin,
            k_cfold, k_cfold_row, k_fold_row, k_gfold, k_gadd]))

    def rows_tap(total, base, n_rows, row_len, chunk, count_rows):
        """[n_rows] rows of `count_rows` floats at `base` (row stride row_len), in chunks."""
        return TensorAccessPattern((1, total), base, [1, n_rows, count_rows // chunk, chunk],
                                   [0, row_len, chunk, 1])

    rt = Runtime()
    with rt.sequence(ty(in_total, f32), ty(out_total, f32), ty(w_total, i8),
                     ty(S.PARAMS_WORDS, np.uint32)) as (x_in, out, weights, _params):
        rt.start(*workers)
        for f, (o_s, o_b) in ((f1, (o_s1, o_b1)), (f2, (o_s2, o_b2))):
            rt.fill(f["ws"].prod(), weights, S.contiguous_tap(w_total, o_s, 4 * d))
            rt.fill(f["b"].prod(), weights, S.contiguous_tap(w_total, o_b, 4 * d))

        def flags(red, slot, tg):   # the reducer's params of one round -> OUT scales
            rt.drain(red.params.cons(), out, TensorAccessPattern(
                (1, out_total), o_fl + S.DYN_WORDS * slot, [1, 1, 1, S.DYN_WORDS],
                [0, 0, 0, 1]), wait=True, task_group=tg)

        def conv_phase(f, cf, tiles, win, cin, tp, stride, src, src_total, src_base, o_w, k,
                       tout, dst_tap, tiling, tg):
            NT = tiling.nt  # noqa: N806
            per_col = tout // cols
            for b in range(batch):
                for c in range(cols):
                    base = src_base + b * cin * tp + c * per_col * stride
                    rt.fill(cf[c]["win"].prod(), src,
                            TensorAccessPattern((1, src_total), base, [1, tiles, cin, win],
                                                [0, NT * stride, tp, 1]), task_group=tg)
            for _ in range(batch * tiles):
                rt.fill(f["w"].prod(), weights, S.contiguous_tap(w_total, o_w, d * k),
                        task_group=tg)
            for b in range(batch):
                for c in range(cols):
                    rt.drain(cf[c]["y"].cons(), out, dst_tap(b, c * per_col),
                             wait=(b == batch - 1), task_group=tg)

        def c1_tap(b, t0):   # raw conv1 blocks -> c1[b, co, t]
            NT, NCO = dims.c1.nt, dims.c1.nco  # noqa: N806
            return TensorAccessPattern((1, out_total), o_c1 + b * d * t1 + t0,
                                       [tiles1, d // NCO, NCO, NT], [NT, NCO * t1, t1, 1])

        def c2_tap(b, t0):   # raw conv2 blocks -> c2[b, t, co] (transposed, as y)
            NT, NCO = dims.c2.nt, dims.c2.nco  # noqa: N806
            return TensorAccessPattern((1, out_total), o_c2 + b * t2 * d + t0 * d,
                                       [tiles2, d // NCO, NCO, NT], [NT * d, NCO, 1, d])

        # phase 1: the mel's scale (A), conv1 -> c1
        tg = rt.task_group()
        for b in range(batch):
            for c in range(cols):
                rt.fill(pc[c]["x"].prod(), x_in,
                        rows_tap(in_total, o_mel + (b * mels + c * mel_rows) * tp1 + 1,
                                 mel_rows, tp1, p1, frames), task_group=tg)
        flags(red_a, 0, tg)
        conv_phase(f1, c1, tiles1, win1, mels, tp1, 1, x_in, in_total, o_mel, o_w1, k1, t1,
                   c1_tap, dims.c1, tg)
        rt.finish_task_group(tg)
        # phase 2: three passes over c1's real rows -> B, G, h (+ h's partials -> A)
        tg = rt.task_group()
        for _pass in range(3):
            for b in range(batch):
                for c in range(cols):
                    rt.fill(pc[c]["x"].prod(), out,
                            rows_tap(out_total, o_c1 + (b * d + c * ch_rows) * t1, ch_rows, t1,
                                     p1, frames), task_group=tg)
        flags(red_b, 1, tg)
        for b in range(batch):
            for c in range(cols):
                rt.drain(pc[c]["h"].cons(), out,
                         rows_tap(out_total, o_h + (b * d + c * ch_rows) * tp2 + 1, ch_rows,
                                  tp2, p1, frames), wait=True, task_group=tg)
        rt.finish_task_group(tg)
        # phase 3: conv2 with h's scale (A, round 2) -> c2
        tg = rt.task_group()
        flags(red_a, 2, tg)
        conv_phase(f2, c2, tiles2, win2, d, tp2, 2, out, out_total, o_h, o_w2, k2, t2, c2_tap,
                   dims.c2, tg)
        rt.finish_task_group(tg)
        # phase 4: three passes over c2's real rows -> B, G, y (+ positions)
        tg = rt.task_group()
        for _pass in range(3):
            for b in range(batch):
                for c in range(cols):
                    rt.fill(pc[c]["x2"].prod(), out,
                            rows_tap(out_total, o_c2 + b * t2 * d + c * q2, t2_real, d, q2,
                                     q2), task_group=tg)
        for _b in range(batch):
            for c in range(cols):   # position rows: bytes of WEIGHTS
                rt.fill(pc[c]["e"].prod(), weights,
                        TensorAccessPattern((1, w_total), o_pos + 4 * c * q2,
                                            [1, 1, t2_real, 4 * q2], [0, 0, 4 * d, 1]),
                        task_group=tg)
        flags(red_b, 3, tg)
        for b in range(batch):
            for c in range(cols):
                rt.drain(pc[c]["y"].cons(), out,
                         rows_tap(out_total, o_y + b * t2 * d + c * q2, t2_real, d, q2, q2),
                         wait=True, task_group=tg)
        rt.finish_task_group(tg)
    return Program(NPU1(), rt).resolve_program(Placer())


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # kernels/
    from whisper_shapes import size_case  # --size NAME [--case L]: the shared table

    case = size_case("conv_frontend", sys.argv[1:])
    if case is not None:
        print(globals()[case.fn](*case.args))
        return
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--mels", type=int, default=80)
    p.add_argument("--d-model", type=int, default=384)
    p.add_argument("--frames", type=int, default=3000)
    p.add_argument("--dynamic", action="store_true",
                   help="the dynamic-mode variant (scales reduced on the array)")
    a = p.parse_args()
    fn = build_dynamic if a.dynamic else build
    print(fn(a.batch, a.mels, a.d_model, a.frames))


if __name__ == "__main__":
    main()
