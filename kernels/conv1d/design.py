"""IRON design of the conv1d kernel (Whisper front end) for npu1 (4 columns).

Static input scale only (dynamic conv1d runs on the emulator; see README).
The output positions of each batch item are split in 4 column ranges. Each
compute tile loops over tiles of `nt` positions: it receives the fp32 input
window [Cin, (nt-1)*stride + Kw] (one 4-D DMA pattern per column covers all
of its overlapping windows), quantizes it and builds the im2col rows
(xdna_conv1d_im2col), then streams the weight in blocks of `nco` output
channels and writes [nco, nt] output blocks (xdna_conv1d_block: exact int32
dot products + fp32 epilogue). w_scale, bias and {in_scale, 1/in_scale} come
once per launch.

Runtime sequence (runtime/layout.py): IN = x zero-padded, `pad` zeros before
T and zeros after it up to Tp = max(T + 2 pad, (Tout_p - 1) stride + Kw)
([B, Cin, Tp]; quantize(0) = 0, so this IS ONNX's zero padding); OUT =
y [B, Cout, Tout_p] with Tout_p = Tout rounded up to 4 * nt (the host crops
the extra positions); WEIGHTS = weight [Cout, Cin*Kw] int8 | w_scale | bias |
{in_scale, 1/in_scale}; PARAMS.

    python design.py [--cin 80] [--cout 384] [--t 3000] [--stride 1] [--pad 1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from aie.helpers.taplib.tap import TensorAccessPattern
from aie.iron import Kernel, ObjectFifo, Program, Runtime, Worker
from aie.iron.controlflow import range_
from aie.iron.device import NPU1
from aie.iron.placers import SequentialPlacer

COLUMNS = 4
PARAMS_WORDS = 16

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fused"))
from scratch import conv_tiling  # noqa: E402 - one tiling rule with the fused conv_frontend


def conv1d_design(batch: int, cin: int, cout: int, t: int, kw: int, stride: int, pad: int,
                  nt: int | None = None, nco: int | None = None):
    if nt is None or nco is None:  # the most the kernel scratch and one core hold
        tiling = conv_tiling(cin, cout, stride, kw)
        nt, nco = nt or tiling.nt, nco or tiling.nco
    tout = (t + 2 * pad - kw) // stride + 1
    if tout < 1 or cout % nco:
        raise ValueError("need at least one output position, and Cout a multiple of nco")
    tout = -(-tout // (COLUMNS * nt)) * (COLUMNS * nt)  # padded; the host crops y
    tp = max(t + 2 * pad, (tout - 1) * stride + kw)  # padded input row length
    k = cin * kw
    if nt * k > 8 * 1152 or cin * ((nt - 1) * stride + kw) > 384 * 17:
        raise ValueError("tile exceeds the AIE kernel's local scratch (see conv1d_aie.cc)")
    win = (nt - 1) * stride + kw
    per_col = tout // COLUMNS
    tiles = per_col // nt
    blocks = cout // nco

    x_ty = np.ndarray[(batch * cin * tp,), np.dtype[np.float32]]
    y_ty = np.ndarray[(batch * cout * tout,), np.dtype[np.float32]]
    n_w8 = cout * k  # int8 weight bytes; fp32 words follow (4-byte aligned: k % 4 == 0 here)
    w_ty = np.ndarray[(n_w8 + 4 * (2 * cout + 2),), np.dtype[np.int8]]
    params_ty = np.ndarray[(PARAMS_WORDS,), np.dtype[np.uint32]]
    win_ty = np.ndarray[(cin * win,), np.dtype[np.float32]]
    wblk_ty = np.ndarray[(nco * k,), np.dtype[np.int8]]
    vec_ty = np.ndarray[(cout,), np.dtype[np.float32]]
    scal_ty = np.ndarray[(2,), np.dtype[np.float32]]
    yblk_ty = np.ndarray[(nco * nt,), np.dtype[np.float32]]

    im2col = Kernel("xdna_conv1d_im2col", "conv1d_aie.o",
                    [win_ty, scal_ty, np.int32, np.int32, np.int32, np.int32, np.int32])
    block = Kernel("xdna_conv1d_block", "conv1d_aie.o",
                   [wblk_ty, vec_ty, vec_ty, scal_ty, yblk_ty, np.int32, np.int32, np.int32,
                    np.int32])

    of_ws = ObjectFifo(vec_ty, name="w_scale", depth=1)
    of_b = ObjectFifo(vec_ty, name="bias", depth=1)
    of_s = ObjectFifo(scal_ty, name="scal", depth=1)
    of_win = [ObjectFifo(win_ty, name=f"win{c}", depth=1) for c in range(COLUMNS)]
    of_w = [ObjectFifo(wblk_ty, name=f"w{c}") for c in range(COLUMNS)]
    of_y = [ObjectFifo(yblk_ty, name=f"y{c}") for c in range(COLUMNS)]

    def core(fwin, fw, fws, fb, fs, fy, k_im2col, k_block):
        ws, bias, sc = fws.acquire(1), fb.acquire(1), fs.acquire(1)
        for _ in range_(batch * tiles):
            w_in = fwin.acquire(1)
            k_im2col(w_in, sc, cin, win, kw, stride, nt)
            fwin.release(1)
            for j in range_(blocks):
                wb, yb = fw.acquire(1), fy.acquire(1)
                k_block(wb, ws, bias, sc, yb, k, j * nco, nco, nt)
                fw.release(1)
                fy.release(1)
        fs.release(1)
        fb.release(1)
        fws.release(1)

    workers = [Worker(core, [of_win[c].cons(), of_w[c].cons(), of_ws.cons(), of_b.cons(),
                             of_s.cons(), of_y[c].prod(), im2col, block])
               for c in range(COLUMNS)]

    rt = Runtime()
    with rt.sequence(x_ty, y_ty, w_ty, params_ty) as (x_in, y_out, weights, _p):
        rt.start(*workers)
        n_bytes = n_w8 + 4 * (2 * cout + 2)
        rt.fill(of_ws.prod(), weights,
                TensorAccessPattern((1, n_bytes), n_w8, [1, 1, 1, 4 * cout], [0, 0, 0, 1]))
        rt.fill(of_b.prod(), weights,
                TensorAccessPattern((1, n_bytes), n_w8 + 4 * cout, [1, 1, 1, 4 * cout],
                                    [0, 0, 0, 1]))
        rt.fill(of_s.prod(), weights,
                TensorAccessPattern((1, n_bytes), n_w8 + 8 * cout, [1, 1, 1, 8], [0, 0, 0, 1]))
        tg = rt.task_group()
        for b in range(batch):
            for c in range(COLUMNS):
                t0 = c * per_col
                # all overlapping windows of this column: [tiles, Cin, win]
                rt.fill(of_win[c].prod(), x_in,
                        TensorAccessPattern((1, batch * cin * tp), b * cin * tp + t0 * stride,
                                            [1, tiles, cin, win], [0, nt * stride, tp, 1]),
                        task_group=tg)
                # the whole weight, once per position tile (blocks of nco rows)
                rt.fill(of_w[c].prod(), weights,
                        TensorAccessPattern((1, n_bytes), 0, [1, tiles, 1, cout * k],
                                            [0, 0, 0, 1]),
                        task_group=tg)
                # [tiles, blocks, nco, nt] blocks into y[b, Cout, Tout]
                rt.drain(of_y[c].cons(), y_out,
                         TensorAccessPattern((1, batch * cout * tout), b * cout * tout + t0,
                                             [tiles, blocks, nco, nt],
                                             [nt, nco * tout, tout, 1]),
                         wait=True, task_group=tg)
        rt.finish_task_group(tg)
    return Program(NPU1(), rt).resolve_program(SequentialPlacer())


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # kernels/
    from whisper_shapes import size_case  # --size NAME [--case L]: the shared table

    case = size_case("conv1d", sys.argv[1:])
    if case is not None:
        print(globals()[case.fn](*case.args))
        return
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--cin", type=int, default=80)
    p.add_argument("--cout", type=int, default=384)
    p.add_argument("--t", type=int, default=3000)
    p.add_argument("--kw", type=int, default=3)
    p.add_argument("--stride", type=int, default=1)
    p.add_argument("--pad", type=int, default=1)
    a = p.parse_args()
    print(conv1d_design(a.batch, a.cin, a.cout, a.t, a.kw, a.stride, a.pad))


if __name__ == "__main__":
    main()
