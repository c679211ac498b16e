"""IRON design of the attention kernel for npu1 (Phoenix): 4 columns x 4 compute rows.

Emits the MLIR module of one shape (B, H, Tq, Tk, Dh = 64). Run by
kernels/build_xclbins.py when the MLIR-AIE toolchain is installed:

    python design.py --batch 1 --heads 6 --tq 1500 --tk 1500 [--masked] [--float-out]

The whole op is one launch. Work is cut into column groups: 128 query rows
(four 32-row core blocks, i.e. two of the contract's 64-row query tiles) of one
(batch, head). Groups go round-robin over the 4 columns. Per group, a column's
memory tile splits the Q rows over its four cores and broadcasts the head's key
blocks (64 keys x 64) to all four -- twice, once per pass -- and the value
blocks once (aie/attention_aie.cc: pass 1 finds each row's logit maximum,
pass 2 accumulates the exact weighted sums); the cores' output rows are joined
back. Q, K, V and O stay in the ONNX layout [B, T, H*Dh]: the DMA picks a
head's columns with a row stride of H*Dh, so the host never transposes.

Launch arguments: q int8 [B*Tq_pad*H*Dh], k int8 [B*Tk_pad*H*Dh], v (same),
params int32 [16], (mask f32 [Tq_pad*Tk_pad], one [Tq, Tk] mask broadcast over
batch and heads, if masked), out int8 or f32 [B*Tq_pad*H*Dh]. The host pads Tq
to a multiple of 128 (extra rows dropped) and Tk to a multiple of 64 (the
kernel excludes keys >= params[4] = Tk). params: logit m, logit e, causal,
past_len, Tk, out_float, out m, out e, fp32 bits of v_scale, groups per head.
Masks of other broadcast shapes, and Dh != 64, run on the emulator.

The body (fifos, workers, DMA tasks) is `attention_phase` / `AttentionPhase`,
shared with the fused attn_block design through `fused_stage`: there it runs on
3 columns (xdna_attn_begin_cols takes the column count) so attn_block keeps 4
cores for its out-projection, reading q, k, v from the fused design's IN and
writing o into its OUT (operand offsets via `Operand`). Its dynamic form takes
`fused_dynamic_stage`: float32 q, k, v chunks quantized on the cores with the
scales attn_block reduces on the array, float32 o.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from aie.helpers.taplib import TensorAccessPattern
from aie.iron import Buffer, Kernel, ObjectFifo, Program, Runtime, Worker
from aie.iron.controlflow import range_
from aie.iron.device import NPU1Col4, Tile
from aie.iron.placers import SequentialPlacer

N_COLS = 4
N_ROWS = 4
ROWS = 32  # query rows per core (aie kRows)
KEYS = 64  # keys per block (aie kKeys)
DH = 64  # head dim (aie kDh)
GROUP_ROWS = ROWS * N_ROWS  # 128 query rows per column group
PARAMS_LEN = 16


def ceil_to(x: int, m: int) -> int:
    return (x + m - 1) // m * m


@dataclass(frozen=True)
class Operand:
    """Where one operand lives: a runtime-sequence tensor of `total` elements,
    the operand starting at element `base` (0 for the standalone design's own
    arguments; an offset into IN / OUT inside a fused design)."""

    tensor: Any
    total: int
    base: int = 0


@dataclass
class AttentionPhase:
    """The attention body's cores and fifos, built outside the runtime sequence;
    `emit` writes its DMA tasks into one (the standalone design, or a fused one)."""

    batch: int
    heads: int
    tq_pad: int
    tk_pad: int
    n_cols: int
    masked: bool
    fifos: dict[str, list]
    workers: list

    @property
    def n_groups(self) -> int:
        return self.batch * self.heads * (self.tq_pad // GROUP_ROWS)

    def rows_tap(self, op: Operand, t_pad: int, b: int, h: int, row0: int, n_rows: int):
        """n_rows rows of head h (DH columns, row stride H*DH) of a [B, T_pad, H*DH]
        operand, as 64-row blocks so no DMA dimension is long (n_rows % 64 == 0)."""
        hd = self.heads * DH
        return TensorAccessPattern((1, op.total), op.base + (b * t_pad + row0) * hd + h * DH,
                                   [1, n_rows // KEYS, KEYS, DH], [0, KEYS * hd, hd, 1])

    def emit(self, rt, q: Operand, k: Operand, v: Operand, params, out: Operand,
             mask: Operand | None = None) -> None:
        """The phase's DMA tasks: params to every column, then per round one query
        group per column (keys twice, values once), the output group drained."""
        groups_per_head = self.tq_pad // GROUP_ROWS
        n_kb = self.tk_pad // KEYS
        tg = rt.task_group()
        for col in range(self.n_cols):
            rt.fill(self.fifos["par"][col].prod(), params, placement=Tile(col, 0), task_group=tg)
        rt.finish_task_group(tg)
        rounds = (self.n_groups + self.n_cols - 1) // self.n_cols
        for rnd in range(rounds):
            tg = rt.task_group()
            for col in range(self.n_cols):
                g = col + self.n_cols * rnd
                if g >= self.n_groups:
                    continue
                b, rest = divmod(g, self.heads * groups_per_head)
                h, gr = divmod(rest, groups_per_head)
                row0 = gr * GROUP_ROWS
                place = Tile(col, 0)
                rt.fill(self.fifos["q"][col].prod(), q.tensor,
                        tap=self.rows_tap(q, self.tq_pad, b, h, row0, GROUP_ROWS),
                        placement=place, task_group=tg)
                for _ in range(2):  # keys once per pass
                    rt.fill(self.fifos["k"][col].prod(), k.tensor,
                            tap=self.rows_tap(k, self.tk_pad, b, h, 0, self.tk_pad),
                            placement=place, task_group=tg)
                    if mask is not None:
                        rt.fill(self.fifos["m"][col].prod(), mask.tensor,
                                tap=TensorAccessPattern(
                                    (1, mask.total), mask.base + row0 * self.tk_pad,
                                    [1, n_kb, GROUP_ROWS, KEYS], [0, KEYS, self.tk_pad, 1]),
                                placement=place, task_group=tg)
                rt.fill(self.fifos["v"][col].prod(), v.tensor,
                        tap=self.rows_tap(v, self.tk_pad, b, h, 0, self.tk_pad),
                        placement=place, task_group=tg)
                rt.drain(self.fifos["o"][col].cons(), out.tensor,
                         tap=self.rows_tap(out, self.tq_pad, b, h, row0, GROUP_ROWS),
                         wait=True, placement=place, task_group=tg)
            rt.finish_task_group(tg)


def attention_phase(batch: int, heads: int, tq_pad: int, tk_pad: int, masked: bool = False,
                    float_out: bool = False, n_cols: int = N_COLS,
                    obj: str = "attention_aie.o") -> AttentionPhase:
    """Fifos and workers of the attention body on `n_cols` columns x 4 cores
    (placed at Tile(col, 2..5)); tq_pad a multiple of 128, tk_pad of 64."""
    if tq_pad % GROUP_ROWS or tk_pad % KEYS or not 1 <= n_cols <= N_COLS:
        raise ValueError(f"attention phase: Tq_pad {tq_pad} (multiple of {GROUP_ROWS}), "
                         f"Tk_pad {tk_pad} (multiple of {KEYS}), 1..{N_COLS} columns")
    n_groups = batch * heads * (tq_pad // GROUP_ROWS)
    n_kb = tk_pad // KEYS
    depth = 1 if masked else 2  # local-memory budget (README)
    out_dt = np.float32 if float_out else np.int8
    par_ty = np.ndarray[(PARAMS_LEN,), np.dtype[np.int32]]
    qb_ty = np.ndarray[(ROWS * DH,), np.dtype[np.int8]]
    qg_ty = np.ndarray[(GROUP_ROWS * DH,), np.dtype[np.int8]]
    kb_ty = np.ndarray[(KEYS * DH,), np.dtype[np.int8]]
    mb_ty = np.ndarray[(ROWS * KEYS,), np.dtype[np.float32]]
    mg_ty = np.ndarray[(GROUP_ROWS * KEYS,), np.dtype[np.float32]]
    ob_ty = np.ndarray[(ROWS * DH,), np.dtype[out_dt]]
    og_ty = np.ndarray[(GROUP_ROWS * DH,), np.dtype[out_dt]]
    cnt_ty = np.ndarray[(1,), np.dtype[np.int32]]

    k_begin = Kernel("xdna_attn_begin_cols", obj, [cnt_ty, par_ty, np.int32, np.int32, np.int32])
    k_rewind = Kernel("xdna_attn_rewind", obj, [])
    k_end = Kernel("xdna_attn_end_f32" if float_out else "xdna_attn_end_i8", obj, [ob_ty, par_ty])
    if masked:
        k_p1 = Kernel("xdna_attn_pass1_masked", obj, [qb_ty, kb_ty, mb_ty, par_ty])
        k_p2 = Kernel("xdna_attn_pass2_masked", obj, [qb_ty, kb_ty, kb_ty, mb_ty, par_ty])
    else:
        k_p1 = Kernel("xdna_attn_pass1", obj, [qb_ty, kb_ty, par_ty])
        k_p2 = Kernel("xdna_attn_pass2", obj, [qb_ty, kb_ty, kb_ty, par_ty])

    q_off = [ROWS * DH * r for r in range(N_ROWS)]
    o_off = [ROWS * DH * r for r in range(N_ROWS)]
    fifos: dict[str, list] = {n: [] for n in ("q", "k", "v", "m", "o", "par")}
    core: dict[tuple[str, int, int], object] = {}
    for col in range(n_cols):
        qf = ObjectFifo(qg_ty, name=f"q_{col}", depth=depth)
        qs = qf.cons().split(q_off, obj_types=[qb_ty] * N_ROWS,
                             names=[f"q_{col}_{r}" for r in range(N_ROWS)],
                             placement=Tile(col, 1))
        kf = ObjectFifo(kb_ty, name=f"k_{col}", depth=depth)
        kl1 = kf.cons().forward(name=f"k_{col}_l1", placement=Tile(col, 1), depth=depth)
        vf = ObjectFifo(kb_ty, name=f"v_{col}", depth=depth)
        vl1 = vf.cons().forward(name=f"v_{col}_l1", placement=Tile(col, 1), depth=depth)
        of = ObjectFifo(og_ty, name=f"o_{col}", depth=1)
        os_ = of.prod().join(o_off, obj_types=[ob_ty] * N_ROWS,
                             names=[f"o_{col}_{r}" for r in range(N_ROWS)],
                             placement=Tile(col, 1))
        pf = ObjectFifo(par_ty, name=f"par_{col}", depth=1)
        pl1 = pf.cons().forward(name=f"par_{col}_l1", placement=Tile(col, 1))
        for name, f in (("q", qf), ("k", kf), ("v", vf), ("o", of), ("par", pf)):
            fifos[name].append(f)
        if masked:
            mf = ObjectFifo(mg_ty, name=f"m_{col}", depth=1)
            ms = mf.cons().split([ROWS * KEYS * r for r in range(N_ROWS)],
                                 obj_types=[mb_ty] * N_ROWS,
                                 names=[f"m_{col}_{r}" for r in range(N_ROWS)],
                                 placement=Tile(col, 1))
            fifos["m"].append(mf)
        for r in range(N_ROWS):
            core["q", col, r], core["o", col, r] = qs[r], os_[r]
            core["k", col, r], core["v", col, r], core["par", col, r] = kl1, vl1, pl1
            if masked:
                core["m", col, r] = ms[r]

    # One worker per core; the body runs once per launch (default while_true).
    def core_fn(of_q, of_k, of_v, of_m, of_o, of_par, begin, rewind, p1, p2, end, rnd, col,
                row, n_rounds):
        par = of_par.acquire(1)
        rnd[0] = 0
        for _ in range_(n_rounds):
            qb = of_q.acquire(1)
            begin(rnd, par, col, row, n_cols)
            for _ in range_(n_kb):  # pass 1: row maxima
                kb = of_k.acquire(1)
                if of_m is not None:
                    mb = of_m.acquire(1)
                    p1(qb, kb, mb, par)
                    of_m.release(1)
                else:
                    p1(qb, kb, par)
                of_k.release(1)
            rewind()
            for _ in range_(n_kb):  # pass 2: weights and exact weighted sums
                kb = of_k.acquire(1)
                vb = of_v.acquire(1)
                if of_m is not None:
                    mb = of_m.acquire(1)
                    p2(qb, kb, vb, mb, par)
                    of_m.release(1)
                else:
                    p2(qb, kb, vb, par)
                of_k.release(1)
                of_v.release(1)
            ob = of_o.acquire(1)
            end(ob, par)
            of_o.release(1)
            of_q.release(1)
        of_par.release(1)

    workers = []
    for col in range(n_cols):
        n_rounds = len(range(col, n_groups, n_cols))
        for r in range(N_ROWS):
            rnd = Buffer(cnt_ty, name=f"round_{col}_{r}", initial_value=np.zeros(1, np.int32))
            m_cons = core["m", col, r].cons() if masked else None
            workers.append(Worker(core_fn, [
                core["q", col, r].cons(), core["k", col, r].cons(), core["v", col, r].cons(),
                m_cons, core["o", col, r].prod(), core["par", col, r].cons(), k_begin, k_rewind,
                k_p1, k_p2, k_end, rnd, col, r, n_rounds], placement=Tile(col, 2 + r),
                stack_size=0xD00))
    return AttentionPhase(batch, heads, tq_pad, tk_pad, n_cols, masked, fifos, workers)


def attention_design(batch: int, heads: int, tq: int, tk: int, masked: bool = False,
                     float_out: bool = False):
    tq_pad, tk_pad = ceil_to(tq, GROUP_ROWS), ceil_to(tk, KEYS)
    n_q, n_kv = batch * tq_pad * heads * DH, batch * tk_pad * heads * DH
    phase = attention_phase(batch, heads, tq_pad, tk_pad, masked, float_out)
    out_dt = np.float32 if float_out else np.int8
    arg_types = [np.ndarray[(n_q,), np.dtype[np.int8]], np.ndarray[(n_kv,), np.dtype[np.int8]],
                 np.ndarray[(n_kv,), np.dtype[np.int8]],
                 np.ndarray[(PARAMS_LEN,), np.dtype[np.int32]]]
    if masked:
        arg_types.append(np.ndarray[(tq_pad * tk_pad,), np.dtype[np.float32]])
    arg_types.append(np.ndarray[(n_q,), np.dtype[out_dt]])
    rt = Runtime()
    with rt.sequence(*arg_types) as args:
        q, k, v, params = args[:4]
        rt.start(*phase.workers)
        phase.emit(rt, Operand(q, n_q), Operand(k, n_kv), Operand(v, n_kv), params,
                   Operand(args[-1], n_q),
                   Operand(args[4], tq_pad * tk_pad) if masked else None)
    return Program(NPU1Col4(), rt).resolve_program(SequentialPlacer())


# --- the fused attn_block's hook (kernels/fused/attn_block/design.py) ----------------
FUSED_COLUMNS = 3  # attn_block: attention on 3 columns x 4 cores, out-projection on 4 cores


def fused_tq_pad(tq: int) -> int:
    """Query rows the fused phase computes (its q and o slots hold this many rows)."""
    return ceil_to(tq, GROUP_ROWS)


def fused_stage(*, tq: int, tk: int, heads: int, head_dim: int = DH,
                obj: str = "attn_block_aie.o") -> AttentionPhase:
    """The attention phase of a fused design (int8 output, no mask, batch 1):
    its workers go into the fused design's rt.start and `emit` writes the phase
    into its runtime sequence, reading q, k, v from IN and writing int8 o
    [Tq_pad, H*64] into an OUT scratch slot (Operand offsets in bytes). Uses
    FUSED_COLUMNS columns so the fused design keeps 4 cores for its own stages."""
    if head_dim != DH:
        raise ValueError(f"the attention design supports head_dim {DH}, got {head_dim}")
    return attention_phase(1, heads, fused_tq_pad(tq), ceil_to(tk, KEYS),
                           n_cols=FUSED_COLUMNS, obj=obj)


# --- the dynamic (default-mode) form of the fused attn_block ------------------------
# q, k and v arrive as float32 (IN of attn_block's dynamic form) and are quantized
# on the core with the scales the fused design reduces on the array before this
# phase (kernels/common/dynamic_scale.h): the reducer's params of q, k, v (its first
# three rounds) are broadcast to every attention core, which keeps them, derives
# the attention words that depend on them (logit requant from q_s * k_s *
# softmax_scale, v_scale for the float32 output: attn_block_aie.cc attn_dyn_words)
# and quantizes each float32 chunk into its int8 q / k / v block. A 64-key float32
# block (16 KiB) does not fit next to the attention state, so the DMA delivers
# chunks of CHUNK_ROWS rows (2 KiB) that the core quantizes into place.
CHUNK_ROWS = 8                 # rows (query rows or keys) of one float32 chunk
CHUNK = CHUNK_ROWS * DH        # floats per chunk (attn_block_aie.cc kAttnChunk)
PARAMS_WORDS = 4               # floats of one reducer params object (dynamic_scale.h)
DYN_QKV = 3                    # reductions the attention cores take: q, k, v
# PARAMS words of the dynamic form (enum Param of aie/attention_aie.cc, plus these two):
# the float64 bits of softmax_scale, low word then high word (attn_dyn_words)
SOFTMAX_SCALE_LO, SOFTMAX_SCALE_HI = 10, 11


@dataclass
class DynamicAttentionPhase:
    """The dynamic attention body's cores and fifos; `emit` writes its DMA tasks
    (float32 q/k/v chunks in bytes of a byte-typed IN, float32 o out)."""

    heads: int
    tq_pad: int
    tk_pad: int
    n_cols: int
    fifos: dict[str, list]
    workers: list

    @property
    def n_groups(self) -> int:
        return self.heads * (self.tq_pad // GROUP_ROWS)

    def keys_tap(self, op: Operand, h: int, row0: int, n_rows: int):
        """n_rows float32 rows of head h (256 bytes each, row stride 4*H*DH bytes) of a
        [T, H*DH] float32 operand in a byte-typed buffer, as 64-row blocks."""
        rb = 4 * self.heads * DH
        return TensorAccessPattern((1, op.total), op.base + row0 * rb + 4 * h * DH,
                                   [1, n_rows // KEYS, KEYS, 4 * DH], [0, KEYS * rb, rb, 1])

    def q_group_tap(self, op: Operand, h: int, row0: int):
        """The float32 q rows of one column group in chunk order: chunk i of core r is
        rows row0 + 32 r + 8 i .. + 8, the memory tile object of chunk i holding the
        four cores' chunks (split to the cores by the memory tile)."""
        rb = 4 * self.heads * DH
        return TensorAccessPattern((1, op.total), op.base + row0 * rb + 4 * h * DH,
                                   [ROWS // CHUNK_ROWS, N_ROWS, CHUNK_ROWS, 4 * DH],
                                   [CHUNK_ROWS * rb, ROWS * rb, rb, 1])

    def emit(self, rt, q: Operand, k: Operand, v: Operand, params, out: Operand) -> None:
        """PARAMS (the attention words) to every column, then per round one query group
        per column: its q chunks, the head's keys twice (one per pass) and values once
        as float32 chunks, the float32 output group drained."""
        groups_per_head = self.tq_pad // GROUP_ROWS
        tg = rt.task_group()
        for col in range(self.n_cols):
            rt.fill(self.fifos["par"][col].prod(), params, placement=Tile(col, 0), task_group=tg)
        rt.finish_task_group(tg)
        for rnd in range((self.n_groups + self.n_cols - 1) // self.n_cols):
            tg = rt.task_group()
            for col in range(self.n_cols):
                g = col + self.n_cols * rnd
                if g >= self.n_groups:
                    continue
                h, gr = divmod(g, groups_per_head)
                row0, place = gr * GROUP_ROWS, Tile(col, 0)
                rt.fill(self.fifos["q"][col].prod(), q.tensor, tap=self.q_group_tap(q, h, row0),
                        placement=place, task_group=tg)
                for _ in range(2):  # keys once per pass
                    rt.fill(self.fifos["k"][col].prod(), k.tensor,
                            tap=self.keys_tap(k, h, 0, self.tk_pad), placement=place,
                            task_group=tg)
                rt.fill(self.fifos["v"][col].prod(), v.tensor,
                        tap=self.keys_tap(v, h, 0, self.tk_pad), placement=place, task_group=tg)
                rt.drain(self.fifos["o"][col].cons(), out.tensor,
                         tap=self.keys_tap(out, h, row0, GROUP_ROWS), wait=True,
                         placement=place, task_group=tg)
            rt.finish_task_group(tg)


def fused_dynamic_stage(*, tq: int, tk: int, heads: int, scales, rounds: int,
                        head_dim: int = DH, obj: str = "attn_block_aie.o"
                        ) -> DynamicAttentionPhase:
    """The attention phase of attn_block's dynamic form (float32 q/k/v in, float32 o
    out, no mask, batch 1) on FUSED_COLUMNS columns x 4 cores. `scales` is the fused
    design's reducer params fifo (an ObjectFifo of 4 floats, broadcast): each core
    takes its first three objects (q, k, v) and, after its last group, the remaining
    `rounds - 3` ones (the out-projection's), so the broadcast can advance."""
    if head_dim != DH:
        raise ValueError(f"the attention design supports head_dim {DH}, got {head_dim}")
    if rounds < DYN_QKV:
        raise ValueError(f"the reducer must produce q, k and v params first ({rounds} rounds)")
    n_cols = FUSED_COLUMNS
    tq_pad, tk_pad = fused_tq_pad(tq), ceil_to(tk, KEYS)
    n_groups = heads * (tq_pad // GROUP_ROWS)
    n_kb, kv_chunks, q_chunks = tk_pad // KEYS, KEYS // CHUNK_ROWS, ROWS // CHUNK_ROWS
    f32, i8, i32 = np.float32, np.int8, np.int32

    def ty(n, dt):
        return np.ndarray[(n,), np.dtype[dt]]

    par_ty, keep_ty, ch_ty = ty(PARAMS_LEN, i32), ty(DYN_QKV * PARAMS_WORDS, f32), ty(CHUNK, f32)
    qb_ty, kb_ty, ob_ty = ty(ROWS * DH, i8), ty(KEYS * DH, i8), ty(ROWS * DH, f32)
    cnt_ty = ty(1, i32)
    k_begin = Kernel("xdna_attn_begin_cols", obj, [cnt_ty, par_ty, i32, i32, i32])
    k_rewind = Kernel("xdna_attn_rewind", obj, [])
    k_end = Kernel("xdna_attn_end_f32", obj, [ob_ty, par_ty])
    k_p1 = Kernel("xdna_attn_pass1", obj, [qb_ty, kb_ty, par_ty])
    k_p2 = Kernel("xdna_attn_pass2", obj, [qb_ty, kb_ty, kb_ty, par_ty])
    k_keep = Kernel("attn_dyn_keep", obj, [ty(PARAMS_WORDS, f32), keep_ty, i32])
    k_words = Kernel("attn_dyn_words", obj, [par_ty, keep_ty, par_ty])
    k_qq = Kernel("attn_dyn_quantize_q", obj, [ch_ty, keep_ty, qb_ty, i32])
    k_qkv = Kernel("attn_dyn_quantize_kv", obj, [ch_ty, keep_ty, kb_ty, i32, i32])

    fifos: dict[str, list] = {n: [] for n in ("q", "k", "v", "o", "par")}
    core: dict[tuple[str, int, int], object] = {}
    for col in range(n_cols):
        qf = ObjectFifo(ty(N_ROWS * CHUNK, f32), name=f"dq_{col}")
        qs = qf.cons().split([CHUNK * r for r in range(N_ROWS)], obj_types=[ch_ty] * N_ROWS,
                             names=[f"dq_{col}_{r}" for r in range(N_ROWS)],
                             placement=Tile(col, 1))
        kf = ObjectFifo(ch_ty, name=f"dk_{col}")
        kl1 = kf.cons().forward(name=f"dk_{col}_l1", placement=Tile(col, 1))
        vf = ObjectFifo(ch_ty, name=f"dv_{col}")
        vl1 = vf.cons().forward(name=f"dv_{col}_l1", placement=Tile(col, 1))
        of = ObjectFifo(ty(GROUP_ROWS * DH, f32), name=f"do_{col}", depth=1)
        os_ = of.prod().join([ROWS * DH * r for r in range(N_ROWS)], obj_types=[ob_ty] * N_ROWS,
                             names=[f"do_{col}_{r}" for r in range(N_ROWS)],
                             placement=Tile(col, 1))
        pf = ObjectFifo(par_ty, name=f"dpar_{col}", depth=1)
        pl1 = pf.cons().forward(name=f"dpar_{col}_l1", placement=Tile(col, 1))
        for name, f in (("q", qf), ("k", kf), ("v", vf), ("o", of), ("par", pf)):
            fifos[name].append(f)
        for r in range(N_ROWS):
            core["q", col, r], core["o", col, r] = qs[r], os_[r]
            core["k", col, r], core["v", col, r], core["par", col, r] = kl1, vl1, pl1

    def load_block(of_x, keep, dst, which, k_q):
        """One 64-key int8 block of k (which 1) or v (2) from its float32 chunks."""
        for i in range(kv_chunks):
            x = of_x.acquire(1)
            k_q(x, keep, dst, which, i)
            of_x.release(1)

    def core_fn(of_q, of_k, of_v, of_o, of_par, of_s, begin, rewind, p1, p2, end, keep_k,
                words_k, qq, qkv, rnd, qloc, kloc, vloc, keep, words, col, row, n_rounds):
        for slot in range(DYN_QKV):   # the reducer's rounds 0-2: q, k, v params
            s = of_s.acquire(1)
            keep_k(s, keep, slot)
            of_s.release(1)
        par = of_par.acquire(1)
        words_k(par, keep, words)     # the attention words from PARAMS and the scales
        of_par.release(1)
        rnd[0] = 0
        for _ in range_(n_rounds):
            for i in range(q_chunks):  # this core's 32 query rows, quantized with q's params
                x = of_q.acquire(1)
                qq(x, keep, qloc, i)
                of_q.release(1)
            begin(rnd, words, col, row, n_cols)
            for _ in range_(n_kb):  # pass 1: row maxima
                load_block(of_k, keep, kloc, 1, qkv)
                p1(qloc, kloc, words)
            rewind()
            for _ in range_(n_kb):  # pass 2: weights and exact weighted sums
                load_block(of_k, keep, kloc, 1, qkv)
                load_block(of_v, keep, vloc, 2, qkv)
                p2(qloc, kloc, vloc, words)
            ob = of_o.acquire(1)
            end(ob, words)
            of_o.release(1)
        for _ in range(rounds - DYN_QKV):   # later rounds (o's params): not this core's
            of_s.acquire(1)
            of_s.release(1)

    workers = []
    for col in range(n_cols):
        n_rounds = len(range(col, n_groups, n_cols))
        for r in range(N_ROWS):
            workers.append(Worker(core_fn, [
                core["q", col, r].cons(), core["k", col, r].cons(), core["v", col, r].cons(),
                core["o", col, r].prod(), core["par", col, r].cons(), scales.cons(), k_begin,
                k_rewind, k_p1, k_p2, k_end, k_keep, k_words, k_qq, k_qkv,
                Buffer(cnt_ty, name=f"dround_{col}_{r}", initial_value=np.zeros(1, np.int32)),
                Buffer(qb_ty, name=f"dql_{col}_{r}"), Buffer(kb_ty, name=f"dkl_{col}_{r}"),
                Buffer(kb_ty, name=f"dvl_{col}_{r}"), Buffer(keep_ty, name=f"dkeep_{col}_{r}"),
                Buffer(par_ty, name=f"dwords_{col}_{r}"), col, r, n_rounds],
                placement=Tile(col, 2 + r), stack_size=0xD00))
    return DynamicAttentionPhase(heads, tq_pad, tk_pad, n_cols, fifos, workers)



def main(argv: list[str] | None = None) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # kernels/
    from whisper_shapes import size_case  # --size NAME [--case L]: the shared table

    case = size_case("attention", sys.argv[1:])
    if case is not None:
        print(globals()[case.fn](*case.args))
        return
    ap = argparse.ArgumentParser(description="xdna-ep attention IRON design (npu1, 4 columns)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--heads", type=int, required=True)
    ap.add_argument("--tq", type=int, required=True)
    ap.add_argument("--tk", type=int, required=True)
    ap.add_argument("--masked", action="store_true", help="stream a [Tq, Tk] f32 mask")
    ap.add_argument("--float-out", action="store_true", help="float32 output")
    a = ap.parse_args(argv if argv is not None else sys.argv[1:])
    print(attention_design(a.batch, a.heads, a.tq, a.tk, a.masked, a.float_out))


if __name__ == "__main__":
    main()
