"""IRON design of the int8 matmul for npu1 (Phoenix: 4 columns x 4 compute rows).

    y[M, N] = epilogue(a[M, K] x w[K, N])      (kernels/matmul/README.md)

One launch computes the whole product: the runtime sequence walks every
output tile (any M, K, N after padding to the tile grid), so the host never
loops over tiles. Work split: compute row r of the array handles row block r
of each group of 4 * TILE_M output rows; compute column c handles column
block c of each group of 4 * TILE_N output columns. A row blocks are
broadcast along an array row, weight column blocks (and their per-channel
epilogue words) down an array column; each core keeps its int32 accumulator
in its own data memory (aie/matmul_aie.cc) and writes finished int8 (or
float32) tiles, which the column's memory tile joins and the shim DMA drains.

Buffers of the runtime sequence, in order: a int8 [Mp, Kp], weight int8
[Kp, Np], params ([3, Np] int32 mult/shift/bias for out="int8"; [2, Np]
float32 scale/bias for out="float32"), y [Mp, Np]. Mp, Kp, Np are M, K, N
rounded up by `padded_shape`; the host runtime pads a with zeros and crops y
(weight/params come padded from xdna_ep.kernel_specs.matmul.device_constants).

Needs the MLIR-AIE toolchain (the `aie` Python package); importing this file
without it is fine, calling build() is not. Emit MLIR with
    python design.py -M 1500 -K 384 -N 384 --out int8 > matmul.mlir
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

TILE_M, TILE_K, TILE_N = 32, 64, 64  # must match aie/matmul_aie.cc
ROWS, COLS = 4, 4  # npu1: 4 compute rows x 4 columns
MMUL_R, MMUL_S, MMUL_T = 4, 8, 8  # aie::mmul<4, 8, 8, int8, int8>
KERNEL_OBJECT = "matmul_aie.o"


def padded_shape(M: int, K: int, N: int) -> tuple[int, int, int]:
    """(Mp, Kp, Np): M to whole groups of ROWS*TILE_M rows, K to TILE_K,
    N to whole groups of COLS*TILE_N columns."""
    if min(M, K, N) < 1:
        raise ValueError(f"matmul shape must be positive, got M={M} K={K} N={N}")

    def up(x: int, q: int) -> int:
        return -(-x // q) * q

    return up(M, ROWS * TILE_M), up(K, TILE_K), up(N, COLS * TILE_N)


def build(M: int, K: int, N: int, out: str = "int8"):
    """Returns the MLIR module of the design for an [M, K] x [K, N] matmul."""
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

    if out not in ("int8", "float32"):
        raise ValueError(f"out must be 'int8' or 'float32', got {out!r}")
    Mp, Kp, Np = padded_shape(M, K, N)
    m_groups, n_groups, k_tiles = Mp // (ROWS * TILE_M), Np // (COLS * TILE_N), Kp // TILE_K
    y_dtype = np.int8 if out == "int8" else np.float32
    p_dtype = np.int32 if out == "int8" else np.float32
    p_rows = 3 if out == "int8" else 2

    a_ty = np.ndarray[(Mp * Kp,), np.dtype[np.int8]]
    w_ty = np.ndarray[(Kp * Np,), np.dtype[np.int8]]
    p_ty = np.ndarray[(p_rows * Np,), np.dtype[p_dtype]]
    y_ty = np.ndarray[(Mp * Np,), np.dtype[y_dtype]]
    a_tile = np.ndarray[(TILE_M, TILE_K), np.dtype[np.int8]]
    w_tile = np.ndarray[(TILE_K, TILE_N), np.dtype[np.int8]]
    p_tile = np.ndarray[(p_rows * TILE_N,), np.dtype[p_dtype]]
    y_tile = np.ndarray[(TILE_M, TILE_N), np.dtype[y_dtype]]
    y_column = np.ndarray[(ROWS * TILE_M, TILE_N), np.dtype[y_dtype]]

    zero = Kernel("matmul_zero_i32", KERNEL_OBJECT, [])
    mac = Kernel("matmul_i8_i32", KERNEL_OBJECT, [a_tile, w_tile])
    epilogue = Kernel("matmul_epilogue_i8" if out == "int8" else "matmul_epilogue_f32",
                      KERNEL_OBJECT, [p_tile, y_tile])

    # Memory-tile -> core re-layout into the blocks aie::mmul consumes.
    r, s, t = MMUL_R, MMUL_S, MMUL_T
    a_blocking = [(TILE_M // r, r * TILE_K), (TILE_K // s, s), (r, TILE_K), (s, 1)]
    w_blocking = [(TILE_K // s, s * TILE_N), (TILE_N // t, t), (s, TILE_N), (t, 1)]

    a_l3, a_l1, w_l3, w_l1, p_fifo, y_l2 = [], [], [], [], [], []
    y_l1: list[list] = [[None] * COLS for _ in range(ROWS)]
    for i in range(ROWS):  # shim/memory tile column i feeds array row i with A
        a_l3.append(ObjectFifo(a_tile, name=f"a_l3_{i}", default_depth=2))
        a_l1.append(a_l3[i].cons().forward(obj_type=a_tile, name=f"a_l1_{i}",
                                           dims_to_stream=a_blocking, placement=Tile(i, 1)))
    for c in range(COLS):
        w_l3.append(ObjectFifo(w_tile, name=f"w_l3_{c}", default_depth=2))
        w_l1.append(w_l3[c].cons().forward(obj_type=w_tile, name=f"w_l1_{c}",
                                           dims_to_stream=w_blocking, placement=Tile(c, 1)))
        p_fifo.append(ObjectFifo(p_tile, name=f"params_{c}", default_depth=1))
        y_l2.append(ObjectFifo(y_column, name=f"y_l2_{c}", default_depth=2))
        joined = y_l2[c].prod().join(
            [TILE_M * TILE_N * i for i in range(ROWS)], obj_types=[y_tile] * ROWS,
            names=[f"y_l1_{c}_{i}" for i in range(ROWS)], placement=Tile(c, 1))
        for i in range(ROWS):
            y_l1[i][c] = joined[i]

    def core(a_in, w_in, p_in, y_out, zero_k, mac_k, epi_k):
        for _ in range_(n_groups):
            p = p_in.acquire(1)
            for _ in range_(m_groups):
                zero_k()
                for _ in range_(k_tiles):
                    a = a_in.acquire(1)
                    w = w_in.acquire(1)
                    mac_k(a, w)
                    a_in.release(1)
                    w_in.release(1)
                y = y_out.acquire(1)
                epi_k(p, y)
                y_out.release(1)
            p_in.release(1)

    workers = [
        Worker(core, [a_l1[i].cons(), w_l1[c].cons(), p_fifo[c].cons(), y_l1[i][c].prod(),
                      zero, mac, epilogue], placement=Tile(c, 2 + i))
        for i in range(ROWS) for c in range(COLS)
    ]

    rt = Runtime()
    with rt.sequence(a_ty, w_ty, p_ty, y_ty) as (A, W, P, Y):
        rt.start(*workers)
        for ng in range(n_groups):
            tg = rt.task_group()
            for c in range(COLS):
                col0 = (ng * COLS + c) * TILE_N
                # this column block's epilogue words, once per column group
                rt.fill(p_fifo[c].prod(), P, task_group=tg, placement=Tile(c, 0),
                        tap=TensorAccessPattern((p_rows, Np), col0, [1, 1, p_rows, TILE_N],
                                                [0, 0, Np, 1]))
            for g in range(m_groups):
                for c in range(COLS):
                    # the column block's weight tiles down K, once per row group
                    col0 = (ng * COLS + c) * TILE_N
                    rt.fill(w_l3[c].prod(), W, task_group=tg, placement=Tile(c, 0),
                            tap=TensorAccessPattern((Kp, Np), col0, [1, k_tiles, TILE_K, TILE_N],
                                                    [0, TILE_K * Np, Np, 1]))
                for i in range(ROWS):
                    row0 = (g * ROWS + i) * TILE_M
                    rt.fill(a_l3[i].prod(), A, task_group=tg, placement=Tile(i, 0),
                            tap=TensorAccessPattern((Mp, Kp), row0 * Kp,
                                                    [1, k_tiles, TILE_M, TILE_K],
                                                    [0, TILE_K, Kp, 1]))
                for c in range(COLS):
                    col0 = (ng * COLS + c) * TILE_N
                    rt.drain(y_l2[c].cons(), Y, task_group=tg, wait=True,
                             placement=Tile(c, 0),
                             tap=TensorAccessPattern((Mp, Np), g * ROWS * TILE_M * Np + col0,
                                                     [1, 1, ROWS * TILE_M, TILE_N],
                                                     [0, 0, Np, 1]))
                # bound the number of outstanding DMA descriptors per shim
                rt.finish_task_group(tg)
                tg = rt.task_group()
            rt.finish_task_group(tg)

    return Program(NPU1Col4(), rt).resolve_program(SequentialPlacer())


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # kernels/
    from whisper_shapes import size_case  # --size NAME [--case L]: the shared table

    case = size_case("matmul", sys.argv[1:])
    if case is not None:
        print(globals()[case.fn](*case.args))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-M", type=int, required=True)
    ap.add_argument("-K", type=int, required=True)
    ap.add_argument("-N", type=int, required=True)
    ap.add_argument("--out", choices=("int8", "float32"), default="int8")
    args = ap.parse_args()
    print(build(args.M, args.K, args.N, args.out))


if __name__ == "__main__":
    main()
