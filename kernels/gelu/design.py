"""IRON design of the GELU kernel for npu1 (Phoenix, 4 columns).

One launch applies the int8 table to the whole tensor: the tensor is split in
4 equal column ranges, each streamed through one compute tile in `tile`-byte
blocks; the 256-byte table is broadcast to all 4 cores once per launch.
Runtime sequence arguments follow runtime/layout.py: IN, OUT, WEIGHTS, PARAMS.
The runtime pads the element count to a multiple of 4 * tile (padding is
discarded: GELU is elementwise).

    python design.py [--elements N] [--tile T]   > gelu.mlir
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
TABLE = 256
PARAMS_WORDS = 16


def gelu_design(elements: int, tile: int):
    if elements % (COLUMNS * tile):
        raise ValueError(f"elements ({elements}) must be a multiple of {COLUMNS} * tile ({tile})")
    per_col = elements // COLUMNS
    blocks = per_col // tile

    tensor_ty = np.ndarray[(elements,), np.dtype[np.int8]]
    tile_ty = np.ndarray[(tile,), np.dtype[np.int8]]
    table_ty = np.ndarray[(TABLE,), np.dtype[np.int8]]
    params_ty = np.ndarray[(PARAMS_WORDS,), np.dtype[np.uint32]]

    apply = Kernel("xdna_gelu_i8", "gelu_aie.o", [tile_ty, tile_ty, table_ty, np.int32])

    of_table = ObjectFifo(table_ty, name="table", depth=1)  # broadcast to every core
    of_in = [ObjectFifo(tile_ty, name=f"x{c}") for c in range(COLUMNS)]
    of_out = [ObjectFifo(tile_ty, name=f"y{c}") for c in range(COLUMNS)]

    def core(x_fifo, table_fifo, y_fifo, fn):
        table = table_fifo.acquire(1)
        for _ in range_(blocks):
            x = x_fifo.acquire(1)
            y = y_fifo.acquire(1)
            fn(x, y, table, tile)
            x_fifo.release(1)
            y_fifo.release(1)
        table_fifo.release(1)

    workers = [
        Worker(core, [of_in[c].cons(), of_table.cons(), of_out[c].prod(), apply])
        for c in range(COLUMNS)
    ]
    taps = [TensorAccessPattern((1, elements), c * per_col, [1, 1, 1, per_col], [0, 0, 0, 1])
            for c in range(COLUMNS)]

    rt = Runtime()
    with rt.sequence(tensor_ty, tensor_ty, table_ty, params_ty) as (x_in, y_out, weights, _p):
        rt.start(*workers)
        rt.fill(of_table.prod(), weights)
        tg = rt.task_group()
        for c in range(COLUMNS):
            rt.fill(of_in[c].prod(), x_in, taps[c], task_group=tg)
        for c in range(COLUMNS):
            rt.drain(of_out[c].cons(), y_out, taps[c], wait=True, task_group=tg)
        rt.finish_task_group(tg)
    return Program(NPU1(), rt).resolve_program(SequentialPlacer())


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # kernels/
    from whisper_shapes import size_case  # --size NAME [--case L]: the shared table

    case = size_case("gelu", sys.argv[1:])
    if case is not None:
        print(globals()[case.fn](*case.args))
        return
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--elements", type=int, default=1500 * 1536)  # Whisper tiny FFN
    p.add_argument("--tile", type=int, default=4800)
    a = p.parse_args()
    print(gelu_design(a.elements, a.tile))


if __name__ == "__main__":
    main()
