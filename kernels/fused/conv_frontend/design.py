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
it transposed. Static scales only. NT (positions) and NCO (output channels)
per tile come from kernels/fused/scratch.py conv_tiling, per stage and width
(tiny: 8 x 8; large-v3 conv2: 2 x 1), so every core fits its 64 KiB; the same
module gives the runtime the OUT slots (y rows, h scratch).

    python design.py [--batch 1] [--mels 80] [--d-model 384] [--frames 3000]
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
    a = p.parse_args()
    print(build(a.batch, a.mels, a.d_model, a.frames))


if __name__ == "__main__":
    main()
