"""IRON design of the quantize (float32 -> int8) and dequantize (int8 ->
float32) kernels for npu1 (Phoenix, 4 columns).

Elementwise over a flat buffer: the runtime sequence splits the (padded)
tensor into 4 contiguous quarters, one per array column; each column's
compute tile converts TILE elements per object with the per-tensor scale from
a 16-float params buffer (params[0] = scale; the rest is padding that keeps
the DMA transfer 64-byte aligned). One launch converts the whole tensor.

Dynamic quantize: the scale max|x|/127 (kernels/quantize/README.md) is
computed by the host runtime from the float32 region input it already holds,
written to params[0], and the same design runs; the runtime returns that
scale as the stage's scale buffer.

Buffers of the runtime sequence, in order: input [Np], params float32 [16],
output [Np]; Np = element count rounded up to 4 * TILE (zero padding; the
runtime crops). Needs the MLIR-AIE toolchain (`aie` package) for build().
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

TILE = 1024  # elements per object, must match aie/quantize_aie.cc
COLUMNS = 4
PARAMS = 16
KERNEL_OBJECT = "quantize_aie.o"


def padded_size(n: int) -> int:
    if n < 1:
        raise ValueError(f"element count must be positive, got {n}")
    step = COLUMNS * TILE
    return -(-n // step) * step


def build(n: int, kind: str = "quantize"):
    """MLIR module converting n elements; kind is "quantize" or "dequantize"."""
    import numpy as np
    from aie.iron import Kernel, ObjectFifo, Program, Runtime, Worker
    from aie.iron.placers import SequentialPlacer

    try:
        from aie.iron.device import NPU1Col4, Tile
    except ImportError:  # newer IRON moved the physical device classes
        from aie.iron.phys.device import NPU1Col4
        from aie.iron.phys.tile import Tile
    try:
        from aie.iron.controlflow import range_
    except ImportError:
        from aie.helpers.dialects.ext.scf import _for as range_
    from aie.helpers.taplib import TensorAccessPattern

    if kind not in ("quantize", "dequantize"):
        raise ValueError(f"kind must be 'quantize' or 'dequantize', got {kind!r}")
    np_ = padded_size(n)
    per_column = np_ // COLUMNS
    tiles = per_column // TILE
    in_dt, out_dt = (np.float32, np.int8) if kind == "quantize" else (np.int8, np.float32)
    in_ty = np.ndarray[(np_,), np.dtype[in_dt]]
    out_ty = np.ndarray[(np_,), np.dtype[out_dt]]
    par_ty = np.ndarray[(PARAMS,), np.dtype[np.float32]]
    in_tile = np.ndarray[(TILE,), np.dtype[in_dt]]
    out_tile = np.ndarray[(TILE,), np.dtype[out_dt]]

    fn = "quantize_f32_i8" if kind == "quantize" else "dequantize_i8_f32"
    convert = Kernel(fn, KERNEL_OBJECT, [in_tile, par_ty, out_tile])

    ins = [ObjectFifo(in_tile, name=f"in_{c}", default_depth=2) for c in range(COLUMNS)]
    outs = [ObjectFifo(out_tile, name=f"out_{c}", default_depth=2) for c in range(COLUMNS)]
    params = ObjectFifo(par_ty, name="params", default_depth=1)

    def core(x_in, p_in, y_out, convert_k):
        p = p_in.acquire(1)
        for _ in range_(tiles):
            x = x_in.acquire(1)
            y = y_out.acquire(1)
            convert_k(x, p, y)
            x_in.release(1)
            y_out.release(1)
        p_in.release(1)

    workers = [Worker(core, [ins[c].cons(), params.cons(), outs[c].prod(), convert],
                      placement=Tile(c, 2)) for c in range(COLUMNS)]

    rt = Runtime()
    with rt.sequence(in_ty, par_ty, out_ty) as (X, P, Y):
        rt.start(*workers)
        tg = rt.task_group()
        rt.fill(params.prod(), P, task_group=tg, placement=Tile(0, 0))
        for c in range(COLUMNS):
            tap = TensorAccessPattern((np_,), c * per_column, [1, 1, 1, per_column],
                                      [0, 0, 0, 1])
            rt.fill(ins[c].prod(), X, tap=tap, task_group=tg, placement=Tile(c, 0))
            rt.drain(outs[c].cons(), Y, tap=tap, wait=True, task_group=tg,
                     placement=Tile(c, 0))
        rt.finish_task_group(tg)

    return Program(NPU1Col4(), rt).resolve_program(SequentialPlacer())


def build_dynamic(n: int, neg_limit: float = 0.0):
    """Dynamic quantize in ONE launch, the scale computed on the array
    (kernels/common/dynamic_scale.h, _stages.ScaleReduction): phase 1, per column a
    producer core folds its quarter of x (tile by tile) into a partial; the partials
    join on a memory tile and the reducer core finishes them into params {scale,
    1/scale, flag, 0}, broadcast to the 4 consumer cores and drained to P. Phase 2:
    each consumer reads its quarter of x again and quantizes it with 1/scale.

    Runtime sequence: x float32 [Np] (zero padding does not change max|x|), params
    float32 [16] (OUT: words 0..3 = the reducer's params; the host reads the scale
    and raises the quantize contract's error on the flag), q int8 [Np]."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fused"))
    import _stages as S  # noqa: PLC0415 - kernels/fused/_stages.py, next to the designs

    np, Kernel, ObjectFifo, Program, Runtime, Worker, range_, NPU1, Placer = S.iron()
    from aie.helpers.taplib import TensorAccessPattern

    np_ = padded_size(n)
    per_column = np_ // COLUMNS
    tiles = per_column // TILE
    f32, i8 = np.float32, np.int8

    def ty(k, dt):
        return np.ndarray[(k,), np.dtype[dt]]

    red = S.ScaleReduction("xs", KERNEL_OBJECT, COLUMNS, neg_limit)
    begin, fold, quant = S.dyn_kernels(KERNEL_OBJECT, TILE)
    xs = [ObjectFifo(ty(TILE, f32), name=f"xr{c}") for c in range(COLUMNS)]
    xq = [ObjectFifo(ty(TILE, f32), name=f"xq{c}") for c in range(COLUMNS)]
    qs = [ObjectFifo(ty(TILE, i8), name=f"q{c}") for c in range(COLUMNS)]

    def producer(fx, fpart, k_begin, k_fold):
        S.dyn_producer(range_, tiles, fx, fpart, k_begin, k_fold, TILE)

    def consumer(fx, fs, fq, k_quant):
        S.dyn_consumer(range_, tiles, fx, fs, fq, k_quant, TILE)

    workers = [red.worker]
    for c in range(COLUMNS):
        workers.append(Worker(producer, [xs[c].cons(), red.partials[c].prod(), begin, fold]))
        workers.append(Worker(consumer, [xq[c].cons(), red.params.cons(), qs[c].prod(), quant]))

    rt = Runtime()
    with rt.sequence(ty(np_, f32), ty(PARAMS, f32), ty(np_, i8)) as (X, P, Q):
        rt.start(*workers)
        tg = rt.task_group()  # phase 1: partials -> params
        for c in range(COLUMNS):
            tap = TensorAccessPattern((1, np_), c * per_column, [1, 1, 1, per_column],
                                      [0, 0, 0, 1])
            rt.fill(xs[c].prod(), X, tap, task_group=tg)
        rt.drain(red.params.cons(), P, TensorAccessPattern((1, PARAMS), 0, [1, 1, 1, 4],
                                                           [0, 0, 0, 1]),
                 wait=True, task_group=tg)
        rt.finish_task_group(tg)
        tg = rt.task_group()  # phase 2: x again -> int8
        for c in range(COLUMNS):
            tap = TensorAccessPattern((1, np_), c * per_column, [1, 1, 1, per_column],
                                      [0, 0, 0, 1])
            rt.fill(xq[c].prod(), X, tap, task_group=tg)
            rt.drain(qs[c].cons(), Q, tap, wait=True, task_group=tg)
        rt.finish_task_group(tg)
    return Program(NPU1(), rt).resolve_program(Placer())


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # kernels/
    from whisper_shapes import size_case  # --size NAME [--case L]: the shared table

    case = size_case("dequantize" if "dequantize" in sys.argv else "quantize", sys.argv[1:])
    if case is not None:
        print(globals()[case.fn](*case.args))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, required=True, help="number of elements")
    ap.add_argument("--kind", choices=("quantize", "dequantize"), default="quantize")
    args = ap.parse_args()
    print(build(args.n, args.kind))


if __name__ == "__main__":
    main()
