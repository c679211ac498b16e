"""Fused design "attn_block": attention -> matmul -> add in one launch.

    out = x + out_proj(attention(q, k, v))      (Whisper self/cross attention)

Phase 1 is the attention kernel's own design body on 3 columns x 4 cores
(kernels/attention/design.py `fused_stage`: workers + `emit` into this runtime
sequence), writing the int8 attention output o [Mp, D] to OUT (its slot comes
from kernels/fused/scratch.py, shared with runtime/layout.py). Phase 2, on the
4 remaining cores, one per 32-row column share:
the out-projection core reads o in aie::mmul A order, runs the matmul tiles
and, on the same core, the fp32 epilogue followed by the residual add with x
(fused_epilogue_f32_add) -> OUT. One instruction stream, no host work between
the phases.

Runtime sequence: IN = q [Mp, D], k, v [Tk_pad, D] int8 then x fp32 [Mp, D]
(64-byte aligned; Mp = Tq rounded up to 128, Tk_pad to 64); OUT = y fp32
[Mp, D] then o int8 [Mp, D] (scratch.OUT_ENTRIES); WEIGHTS = W int8 [D, D]
and fp32 [2, D] epilogue words (attention has no constants); PARAMS (the
attention cores read their int32 parameter words from it).

    python design.py [--tq 1500] [--tk 1500] [--heads 6] [--head-dim 64]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import _stages as S  # noqa: E402
import scratch  # noqa: E402 - the OUT slots, shared with runtime/layout.py

OBJ = "attn_block_aie.o"


def attention_stage():
    """kernels/attention/design.py's fused_stage hook (a clear error if it is missing)."""
    S.add_kernel_paths()
    try:
        from attention import design as attention_design  # kernels/attention/design.py
    except ImportError as exc:
        raise NotImplementedError(
            "attn_block needs kernels/attention/design.py (not importable: "
            f"{exc})") from exc
    hook = getattr(attention_design, "fused_stage", None)
    if hook is None:
        raise NotImplementedError(
            "attn_block needs kernels/attention/design.py to expose fused_stage(...) "
            "returning the attention phase (workers + emit into a runtime sequence, "
            "writing int8 o [Mp, D] at a given OUT offset)")
    return attention_design, hook


def build(tq: int, tk: int, heads: int, head_dim: int):
    np, Kernel, ObjectFifo, Program, Runtime, Worker, range_, NPU1, Placer = S.iron()
    att, hook = attention_stage()

    d = heads * head_dim
    if d % S.TILE_N:
        raise ValueError("heads * head_dim must be a multiple of 64")
    phase = hook(tq=tq, tk=tk, heads=heads, head_dim=head_dim, obj=OBJ)
    mp = S.up(tq, S.COLUMNS * S.TILE_M)
    if phase.tq_pad != mp:  # both pad Tq to 128-row groups
        raise ValueError(f"attention pads Tq to {phase.tq_pad}, the projection to {mp}")
    mc = mp // S.COLUMNS
    blocks = mc // S.TILE_M
    kt_n = nt_n = d // 64
    (o_q, o_k, o_v, o_x), in_total = S.aligned_offsets(
        [mp * d, phase.tk_pad * d, phase.tk_pad * d, 4 * mp * d])
    (o_y, o_o), out_total = scratch.offsets([scratch.capacity("attn_block", tq, 4 * d),
                                             scratch.capacity("attn_block", tq, d)])
    (o_w, o_p), w_total = S.aligned_offsets([d * d, 8 * d])
    f32, i8 = np.float32, np.int8
    tile = S.TILE_M * S.TILE_N

    def ty(n, dt):
        return np.ndarray[(n,), np.dtype[dt]]

    zero = Kernel("matmul_zero_i32", OBJ, [])
    mm = Kernel("matmul_i8_i32", OBJ, [ty(tile, i8), ty(64 * 64, i8)])
    epi_add = Kernel("fused_epilogue_f32_add", OBJ, [ty(128, f32), ty(tile, f32), ty(tile, f32)])
    of_w = ObjectFifo(ty(64 * 64, i8), name="wo")
    of_p = ObjectFifo(ty(128, f32), name="po")
    of_a = [ObjectFifo(ty(tile, i8), name=f"ao{c}") for c in range(S.COLUMNS)]
    # residual and output tiles single-buffered: the core also holds the attention
    # object's static scratch (64 KiB budget, kernels/iron_check.py)
    of_r = [ObjectFifo(ty(tile, f32), name=f"r{c}", depth=1) for c in range(S.COLUMNS)]
    of_y = [ObjectFifo(ty(tile, f32), name=f"y{c}", depth=1) for c in range(S.COLUMNS)]

    def mm_core(fa, fw, fp, fr, fy, k_zero, k_mm, k_epi):
        for _ in range_(blocks * nt_n):
            k_zero()
            for _ in range_(kt_n):
                a, w = fa.acquire(1), fw.acquire(1)
                k_mm(a, w)
                fa.release(1)
                fw.release(1)
            p, r, y = fp.acquire(1), fr.acquire(1), fy.acquire(1)
            k_epi(p, r, y)
            fp.release(1)
            fr.release(1)
            fy.release(1)

    workers = [Worker(mm_core, [of_a[c].cons(), of_w.cons(), of_p.cons(), of_r[c].cons(),
                                of_y[c].prod(), zero, mm, epi_add]) for c in range(S.COLUMNS)]
    rt = Runtime()
    with rt.sequence(ty(in_total, i8), ty(out_total, i8), ty(w_total, i8),
                     ty(S.PARAMS_WORDS, np.uint32)) as (x_in, out, weights, params):
        rt.start(*(list(phase.workers) + workers))
        # phase 1: attention -> o (OUT scratch)
        phase.emit(rt, att.Operand(x_in, in_total, o_q), att.Operand(x_in, in_total, o_k),
                   att.Operand(x_in, in_total, o_v), params, att.Operand(out, out_total, o_o))
        # phase 2: out-projection (A = o from scratch) -> + x -> y
        tg = rt.task_group()
        for c in range(S.COLUMNS):
            for b in range(blocks):
                row0 = c * mc + b * 32
                for nt in range(nt_n):
                    for kt in range(kt_n):
                        rt.fill(of_a[c].prod(), out, S.a_tile_tap(out_total, o_o, d, row0, kt),
                                task_group=tg)
                    rt.fill(of_r[c].prod(), x_in,
                            S.block_tap(in_total, 4 * d, 0, o_x + 4 * (row0 * d + 64 * nt), 32,
                                        4 * 64), task_group=tg)
        S.stream_weight_tiles(rt, of_w, of_p, weights, w_total, o_w, o_p, d, kt_n, nt_n, 2,
                              blocks, tg)
        S.drain_row_tiles(rt, of_y, out, out_total, o_y, d, 4, mc, blocks, nt_n, tg)
        rt.finish_task_group(tg)
    return Program(NPU1(), rt).resolve_program(Placer())


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # kernels/
    from whisper_shapes import size_case  # --size NAME [--case L]: the shared table

    case = size_case("attn_block", sys.argv[1:])
    if case is not None:
        print(globals()[case.fn](*case.args))
        return
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tq", type=int, default=1500)
    p.add_argument("--tk", type=int, default=1500)
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--head-dim", type=int, default=64)
    a = p.parse_args()
    print(build(a.tq, a.tk, a.heads, a.head_dim))


if __name__ == "__main__":
    main()
