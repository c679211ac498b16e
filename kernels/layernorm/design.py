"""IRON design of the LayerNorm kernel for npu1 (Phoenix, 4 columns).

Rows are split in 4 equal column ranges; each compute tile streams its rows
in blocks of `rows_per_tile` and calls xdna_layernorm once per block. gamma,
beta and the scalar block {epsilon, in_scale, inv_out_scale, 0} (all fp32,
from KernelSpec.device_constants) arrive once per launch in WEIGHTS and are
broadcast to the 4 cores. Runtime sequence: IN, OUT, WEIGHTS, PARAMS
(runtime/layout.py). The runtime pads M to a multiple of 4 * rows_per_tile.

    python design.py [--rows M] [--channels C] [--in-dtype ..] [--out-dtype ..]
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
DTYPES = {"float32": np.float32, "int8": np.int8}


CORE_BUDGET = 64 * 1024 - 1024 - 2 * 4 * 1280  # data memory - stack - the kernel's row scratch


def pick_rows_per_tile(rows: int, channels: int, in_dtype: str, out_dtype: str) -> int:
    """The most rows per tile (<= 5, dividing rows / 4) whose double-buffered x and y
    blocks plus gamma/beta fit one core (64 KiB); large-v3 (C = 1280) gets 3."""
    if rows % COLUMNS:
        raise ValueError(f"rows ({rows}) must be a multiple of {COLUMNS}")
    row_bytes = channels * (np.dtype(DTYPES[in_dtype]).itemsize
                            + np.dtype(DTYPES[out_dtype]).itemsize)
    for r in range(5, 0, -1):
        if (rows // COLUMNS) % r == 0 and 2 * r * row_bytes + 8 * channels + 16 <= CORE_BUDGET:
            return r
    raise ValueError(f"a row of {channels} channels does not fit one core")


def layernorm_design(rows: int, channels: int, in_dtype: str, out_dtype: str,
                     rows_per_tile: int | None = None):
    if rows_per_tile is None:
        rows_per_tile = pick_rows_per_tile(rows, channels, in_dtype, out_dtype)
    if rows % (COLUMNS * rows_per_tile):
        raise ValueError(f"rows ({rows}) must be a multiple of 4 * rows_per_tile")
    if channels > 1280:
        raise ValueError("the AIE kernel's local scratch holds rows of at most 1280")
    xt, yt = DTYPES[in_dtype], DTYPES[out_dtype]
    mode = (1 if in_dtype == "int8" else 0) | (2 if out_dtype == "int8" else 0)
    rows_per_col = rows // COLUMNS
    blocks = rows_per_col // rows_per_tile
    block = rows_per_tile * channels

    x_ty = np.ndarray[(rows * channels,), np.dtype[xt]]
    y_ty = np.ndarray[(rows * channels,), np.dtype[yt]]
    xb_ty = np.ndarray[(block,), np.dtype[xt]]
    yb_ty = np.ndarray[(block,), np.dtype[yt]]
    gb_ty = np.ndarray[(2 * channels,), np.dtype[np.float32]]
    scal_ty = np.ndarray[(4,), np.dtype[np.float32]]
    w_ty = np.ndarray[(2 * channels + 4,), np.dtype[np.float32]]
    params_ty = np.ndarray[(PARAMS_WORDS,), np.dtype[np.uint32]]

    fn = Kernel("xdna_layernorm", "layernorm_aie.o",
                [xb_ty, gb_ty, yb_ty, scal_ty, np.int32, np.int32, np.int32])
    of_gb = ObjectFifo(gb_ty, name="gamma_beta", depth=1)
    of_scal = ObjectFifo(scal_ty, name="scalars", depth=1)
    of_x = [ObjectFifo(xb_ty, name=f"x{c}") for c in range(COLUMNS)]
    of_y = [ObjectFifo(yb_ty, name=f"y{c}") for c in range(COLUMNS)]

    def core(fx, fgb, fs, fy, k):
        gb = fgb.acquire(1)
        sc = fs.acquire(1)
        for _ in range_(blocks):
            x, y = fx.acquire(1), fy.acquire(1)
            k(x, gb, y, sc, rows_per_tile, channels, mode)
            fx.release(1)
            fy.release(1)
        fs.release(1)
        fgb.release(1)

    workers = [Worker(core, [of_x[c].cons(), of_gb.cons(), of_scal.cons(), of_y[c].prod(), fn])
               for c in range(COLUMNS)]
    per_col = rows_per_col * channels
    total = rows * channels
    taps = [TensorAccessPattern((1, total), c * per_col, [1, 1, 1, per_col], [0, 0, 0, 1])
            for c in range(COLUMNS)]
    n_w = 2 * channels + 4
    gb_tap = TensorAccessPattern((1, n_w), 0, [1, 1, 1, 2 * channels], [0, 0, 0, 1])
    sc_tap = TensorAccessPattern((1, n_w), 2 * channels, [1, 1, 1, 4], [0, 0, 0, 1])

    rt = Runtime()
    with rt.sequence(x_ty, y_ty, w_ty, params_ty) as (x_in, y_out, weights, _p):
        rt.start(*workers)
        rt.fill(of_gb.prod(), weights, gb_tap)
        rt.fill(of_scal.prod(), weights, sc_tap)
        tg = rt.task_group()
        for c in range(COLUMNS):
            rt.fill(of_x[c].prod(), x_in, taps[c], task_group=tg)
        for c in range(COLUMNS):
            rt.drain(of_y[c].cons(), y_out, taps[c], wait=True, task_group=tg)
        rt.finish_task_group(tg)
    return Program(NPU1(), rt).resolve_program(SequentialPlacer())


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # kernels/
    from whisper_shapes import size_case  # --size NAME [--case L]: the shared table

    case = size_case("layernorm", sys.argv[1:])
    if case is not None:
        print(globals()[case.fn](*case.args))
        return
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=1500)
    p.add_argument("--channels", type=int, default=384)
    p.add_argument("--in-dtype", choices=list(DTYPES), default="float32")
    p.add_argument("--out-dtype", choices=list(DTYPES), default="int8")
    p.add_argument("--rows-per-tile", type=int, default=None,
                   help="default: the most that fit one core (pick_rows_per_tile)")
    a = p.parse_args()
    print(layernorm_design(a.rows, a.channels, a.in_dtype, a.out_dtype, a.rows_per_tile))


if __name__ == "__main__":
    main()
