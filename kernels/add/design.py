"""IRON design of the add kernel for npu1 (Phoenix, 4 columns).

fp32 (residual stream) or int8-with-rescale elementwise add in one launch:
a and b are split in 4 column ranges and streamed in `tile`-element blocks.
Runtime sequence arguments follow runtime/layout.py: IN (a then b, packed),
OUT, WEIGHTS (int8 mode: int32 {ma, mb, shift}), PARAMS. The runtime pads
the element count to a multiple of 4 * tile.

    python design.py [--dtype float32|int8] [--elements N] [--tile T]  > add.mlir
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


def add_design(dtype: str, elements: int, tile: int):
    if elements % (COLUMNS * tile) or tile % 16:
        raise ValueError("elements must be a multiple of 4 * tile, tile a multiple of 16")
    dt = np.float32 if dtype == "float32" else np.int8
    per_col = elements // COLUMNS
    blocks = per_col // tile
    in_ty = np.ndarray[(2 * elements,), np.dtype[dt]]  # a then b
    out_ty = np.ndarray[(elements,), np.dtype[dt]]
    tile_ty = np.ndarray[(tile,), np.dtype[dt]]
    rq_ty = np.ndarray[(3,), np.dtype[np.int32]]
    params_ty = np.ndarray[(PARAMS_WORDS,), np.dtype[np.uint32]]

    if dtype == "float32":
        fn = Kernel("xdna_add_f32", "add_aie.o", [tile_ty, tile_ty, tile_ty, np.int32])
    else:
        fn = Kernel("xdna_add_i8", "add_aie.o", [tile_ty, tile_ty, tile_ty, rq_ty, np.int32])
    of_rq = ObjectFifo(rq_ty, name="rq", depth=1) if dtype == "int8" else None
    of_a = [ObjectFifo(tile_ty, name=f"a{c}") for c in range(COLUMNS)]
    of_b = [ObjectFifo(tile_ty, name=f"b{c}") for c in range(COLUMNS)]
    of_c = [ObjectFifo(tile_ty, name=f"c{c}") for c in range(COLUMNS)]

    def core_f32(fa, fb, fc, k):
        for _ in range_(blocks):
            a, b, c = fa.acquire(1), fb.acquire(1), fc.acquire(1)
            k(a, b, c, tile)
            fa.release(1)
            fb.release(1)
            fc.release(1)

    def core_i8(fa, fb, fc, frq, k):
        rq = frq.acquire(1)
        for _ in range_(blocks):
            a, b, c = fa.acquire(1), fb.acquire(1), fc.acquire(1)
            k(a, b, c, rq, tile)
            fa.release(1)
            fb.release(1)
            fc.release(1)
        frq.release(1)

    workers = []
    for c in range(COLUMNS):
        args = [of_a[c].cons(), of_b[c].cons(), of_c[c].prod()]
        if of_rq is None:
            workers.append(Worker(core_f32, args + [fn]))
        else:
            workers.append(Worker(core_i8, args + [of_rq.cons(), fn]))

    def tap(total: int, offset: int) -> TensorAccessPattern:
        return TensorAccessPattern((1, total), offset, [1, 1, 1, per_col], [0, 0, 0, 1])

    rt = Runtime()
    with rt.sequence(in_ty, out_ty, rq_ty, params_ty) as (ab, out, weights, _p):
        rt.start(*workers)
        if of_rq is not None:
            rt.fill(of_rq.prod(), weights)
        tg = rt.task_group()
        for c in range(COLUMNS):
            rt.fill(of_a[c].prod(), ab, tap(2 * elements, c * per_col), task_group=tg)
            rt.fill(of_b[c].prod(), ab, tap(2 * elements, elements + c * per_col), task_group=tg)
        for c in range(COLUMNS):
            rt.drain(of_c[c].cons(), out, tap(elements, c * per_col), wait=True, task_group=tg)
        rt.finish_task_group(tg)
    return Program(NPU1(), rt).resolve_program(SequentialPlacer())


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # kernels/
    from whisper_shapes import size_case  # --size NAME [--case L]: the shared table

    case = size_case("add", sys.argv[1:])
    if case is not None:
        print(globals()[case.fn](*case.args))
        return
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dtype", choices=["float32", "int8"], default="float32")
    p.add_argument("--elements", type=int, default=1500 * 384)  # Whisper tiny residual
    p.add_argument("--tile", type=int, default=1200)
    a = p.parse_args()
    print(add_design(a.dtype, a.elements, a.tile))


if __name__ == "__main__":
    main()
