"""IRON design of the softmax kernel for npu1 (Phoenix): 4 columns x 4 compute rows.

Emits the MLIR module for one shape (M rows of N int8 scores). Run by
kernels/build_xclbins.py when the MLIR-AIE toolchain is installed:

    python design.py --rows M --n N [--masked] > softmax_MxN.mlir

Data movement: rows are cut into blocks of `rows_per_block` rows; four
consecutive blocks form a group that one column's memory tile splits over its
four cores; groups go round-robin over the 4 columns. Every core therefore sees
blocks 4*(col + 4k) + row, k = 0, 1, ..., and keeps the global index of its
current block's first row in a small local buffer (the causal rule needs it).

Run-time parameters (the logit requant pair, causal, query_len, past_len) come
in a 8 x int32 `params` buffer, the third launch argument, broadcast to every
core once per launch -- so one xclbin serves every scale and every past_len.

Launch arguments: x int8 [Mp*N], params int32 [8], (mask f32 [Mp*N] if masked:
the broadcast mask materialised to x's shape by the host), p int8 [Mp*N], with
Mp = padded_rows(M) = M rounded up to a multiple of 16 * rows_per_block (the
host pads with zero rows and drops their outputs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from aie.helpers.taplib import TensorAccessPattern
from aie.iron import Buffer, Kernel, ObjectFifo, Program, Runtime, Worker
from aie.iron.controlflow import range_
from aie.iron.device import NPU1Col4, Tile
from aie.iron.placers import SequentialPlacer

N_COLS = 4
N_ROWS = 4
N_CORES = N_COLS * N_ROWS
PARAMS_LEN = 8  # logit_mult, logit_shift, causal, query_len, past_len, 0, 0, 0
MAX_N = 2048  # aie/softmax_aie.cc scratch size (2 x 8 KiB)
BLOCK_BYTES = 4096  # int8 bytes of x per block (x and p double-buffered: 16 KiB)
MAX_ROWS_PER_BLOCK = 256  # keeps every DMA dimension of the row taps small


def rows_per_block(n: int, masked: bool) -> int:
    """Rows per core block: x, p (and f32 mask) double-buffered in 16-40 KiB."""
    budget = BLOCK_BYTES // 4 if masked else BLOCK_BYTES
    return max(1, min(MAX_ROWS_PER_BLOCK, budget // n))


def padded_rows(m_rows: int, n: int, masked: bool) -> int:
    """M rounded up to a whole number of rounds of 16 blocks (the launch buffer rows)."""
    step = N_CORES * rows_per_block(n, masked)
    return (m_rows + step - 1) // step * step


def softmax_design(m_rows: int, n: int, masked: bool = False):
    if not 1 <= n <= MAX_N:
        raise ValueError(f"N={n} outside 1..{MAX_N}")
    rpb = rows_per_block(n, masked)
    group = N_ROWS * rpb  # rows per column group
    # launch buffers hold M padded to the block grid (the host pads, drops the extra rows)
    m_rows = padded_rows(m_rows, n, masked)
    groups_per_col = m_rows // (N_COLS * group)
    blocks_per_core = groups_per_col

    x_ty = np.ndarray[(m_rows * n,), np.dtype[np.int8]]
    mask_ty = np.ndarray[(m_rows * n,), np.dtype[np.float32]]
    params_ty = np.ndarray[(PARAMS_LEN,), np.dtype[np.int32]]
    blk_ty = np.ndarray[(rpb * n,), np.dtype[np.int8]]
    grp_ty = np.ndarray[(group * n,), np.dtype[np.int8]]
    mblk_ty = np.ndarray[(rpb * n,), np.dtype[np.float32]]
    mgrp_ty = np.ndarray[(group * n,), np.dtype[np.float32]]
    idx_ty = np.ndarray[(1,), np.dtype[np.int32]]

    if masked:
        kernel = Kernel("xdna_softmax_i8_masked", "softmax_aie.o",
                        [blk_ty, mblk_ty, blk_ty, params_ty, idx_ty, np.int32, np.int32])
    else:
        kernel = Kernel("xdna_softmax_i8", "softmax_aie.o",
                        [blk_ty, blk_ty, params_ty, idx_ty, np.int32, np.int32])

    offsets = [rpb * n * r for r in range(N_ROWS)]
    x_in, p_out, m_in, par_in = [], [], [], []
    x_core, p_core, m_core, par_core = {}, {}, {}, {}
    for col in range(N_COLS):
        xf = ObjectFifo(grp_ty, name=f"x_{col}", depth=2)
        parts = xf.cons().split(offsets, obj_types=[blk_ty] * N_ROWS,
                                names=[f"x_{col}_{r}" for r in range(N_ROWS)],
                                placement=Tile(col, 1))
        pf = ObjectFifo(grp_ty, name=f"p_{col}", depth=2)
        outs = pf.prod().join(offsets, obj_types=[blk_ty] * N_ROWS,
                              names=[f"p_{col}_{r}" for r in range(N_ROWS)],
                              placement=Tile(col, 1))
        parf = ObjectFifo(params_ty, name=f"params_{col}", depth=1)
        par_fwd = parf.cons().forward(name=f"params_{col}_l1", placement=Tile(col, 1))
        x_in.append(xf)
        p_out.append(pf)
        par_in.append(parf)
        if masked:
            mf = ObjectFifo(mgrp_ty, name=f"m_{col}", depth=2)
            mparts = mf.cons().split([rpb * n * r for r in range(N_ROWS)],
                                     obj_types=[mblk_ty] * N_ROWS,
                                     names=[f"m_{col}_{r}" for r in range(N_ROWS)],
                                     placement=Tile(col, 1))
            m_in.append(mf)
        for r in range(N_ROWS):
            x_core[col, r] = parts[r]
            p_core[col, r] = outs[r]
            par_core[col, r] = par_fwd
            if masked:
                m_core[col, r] = mparts[r]

    stride_rows = N_CORES * rpb  # rows between a core's consecutive blocks

    # Worker bodies repeat once per launch (Worker's default while_true): each
    # launch re-seeds the row index, then walks the core's blocks.
    def core_plain(of_x, of_p, of_par, kern, row_idx, first_row):
        par = of_par.acquire(1)
        row_idx[0] = first_row
        for _ in range_(blocks_per_core):
            xb = of_x.acquire(1)
            pb = of_p.acquire(1)
            kern(xb, pb, par, row_idx, rpb, n)
            of_x.release(1)
            of_p.release(1)
            row_idx[0] = row_idx[0] + stride_rows
        of_par.release(1)

    def core_masked(of_x, of_m, of_p, of_par, kern, row_idx, first_row):
        par = of_par.acquire(1)
        row_idx[0] = first_row
        for _ in range_(blocks_per_core):
            xb = of_x.acquire(1)
            mb = of_m.acquire(1)
            pb = of_p.acquire(1)
            kern(xb, mb, pb, par, row_idx, rpb, n)
            of_x.release(1)
            of_m.release(1)
            of_p.release(1)
            row_idx[0] = row_idx[0] + stride_rows
        of_par.release(1)

    workers = []
    for col in range(N_COLS):
        for r in range(N_ROWS):
            idx = Buffer(idx_ty, name=f"row_idx_{col}_{r}",
                         initial_value=np.zeros(1, dtype=np.int32))
            first = (N_ROWS * col + r) * rpb  # block 4*col + r of the first round
            if masked:
                args = [x_core[col, r].cons(), m_core[col, r].cons(), p_core[col, r].prod(),
                        par_core[col, r].cons(), kernel, idx, first]
                workers.append(Worker(core_masked, args, placement=Tile(col, 2 + r)))
            else:
                args = [x_core[col, r].cons(), p_core[col, r].prod(), par_core[col, r].cons(),
                        kernel, idx, first]
                workers.append(Worker(core_plain, args, placement=Tile(col, 2 + r)))

    def col_tap(col: int) -> TensorAccessPattern:
        """Groups col, col+4, col+8, ... of the flattened [M, N] tensor, as
        (round, core block, row, column) so no DMA dimension is long."""
        return TensorAccessPattern((1, m_rows * n), col * group * n,
                                   [groups_per_col, N_ROWS, rpb, n],
                                   [N_COLS * group * n, rpb * n, n, 1])

    rt = Runtime()
    arg_types = [x_ty, params_ty] + ([mask_ty] if masked else []) + [x_ty]
    with rt.sequence(*arg_types) as args:
        x, params = args[0], args[1]
        mask = args[2] if masked else None
        p = args[-1]
        rt.start(*workers)
        tg = rt.task_group()
        for col in range(N_COLS):
            rt.fill(par_in[col].prod(), params, placement=Tile(col, 0), task_group=tg)
            rt.fill(x_in[col].prod(), x, tap=col_tap(col), placement=Tile(col, 0), task_group=tg)
            if masked:
                rt.fill(m_in[col].prod(), mask, tap=col_tap(col), placement=Tile(col, 0),
                        task_group=tg)
        for col in range(N_COLS):
            rt.drain(p_out[col].cons(), p, tap=col_tap(col), wait=True, placement=Tile(col, 0),
                     task_group=tg)
        rt.finish_task_group(tg)

    return Program(NPU1Col4(), rt).resolve_program(SequentialPlacer())


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # kernels/
    from whisper_shapes import size_case  # --size NAME [--case L]: the shared table

    case = size_case("softmax", sys.argv[1:])
    if case is not None:
        print(globals()[case.fn](*case.args))
        return
    ap = argparse.ArgumentParser(description="xdna-ep softmax IRON design (npu1, 4 columns)")
    ap.add_argument("--rows", type=int, required=True, help="M (padded here to the block grid)")
    ap.add_argument("--n", type=int, required=True, help="row length N")
    ap.add_argument("--masked", action="store_true", help="stream an f32 mask alongside x")
    a = ap.parse_args()
    print(softmax_design(a.rows, a.n, a.masked))


if __name__ == "__main__":
    main()
