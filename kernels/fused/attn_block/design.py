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
[Mp, D] then o int8 [Mp, D] (scratch.OUT_ENTRIES); WEIGHTS = the out-projection's
constants as the host packs them (W int8 [D, Dp], fp32 epilogue words [2, Dp], the
(K, N) pair; Dp = D rounded up to 256: _stages.matmul_weight_blobs; attention has
no constants); PARAMS (the
attention cores read their int32 parameter words from its first 16 words, which
the host writes there: runtime/layout.py launch_words).

The dynamic (default-mode) form, `build_dynamic` (`--dynamic`), takes float32
q, k, v and reduces their scales and o's on the array (its docstring;
kernels/fused/README.md "attn_block's dynamic form").

    python design.py [--tq 1500] [--tk 1500] [--heads 6] [--head-dim 64] [--dynamic]
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


def fill_projection(rt, fa, fr, a_tap, out, out_total: int, o_o: int, x_in, in_total: int,
                    o_x: int, d: int, row0s: list[int], tg) -> None:
    """DMA of one out-projection core's inputs: per 32-row block (first rows `row0s`)
    and output tile, the K tiles of the attention output o in OUT (`a_tap`: int8
    S.a_tile_tap, or float32 S.a_tile_tap_f32 in the dynamic form, quantized on the
    core), then the [32, 64] fp32 residual tile of x from IN."""
    for row0 in row0s:
        for nt in range(d // S.TILE_N):
            for kt in range(d // S.TILE_K):
                rt.fill(fa.prod(), out, a_tap(out_total, o_o, d, row0, kt), task_group=tg)
            rt.fill(fr.prod(), x_in,
                    S.block_tap(in_total, 4 * d, 0, o_x + 4 * (row0 * d + S.TILE_N * nt),
                                S.TILE_M, 4 * S.TILE_N), task_group=tg)


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
    (o_w, o_p, _o_kn), w_total = S.aligned_offsets(S.matmul_weight_blobs(d, d, 2))
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
            fill_projection(rt, of_a[c], of_r[c], S.a_tile_tap, out, out_total, o_o, x_in,
                            in_total, o_x, d, [c * mc + b * S.TILE_M for b in range(blocks)], tg)
        S.stream_weight_tiles(rt, of_w, of_p, weights, w_total, o_w, o_p, S.padded_cols(d),
                              kt_n, nt_n, 2,
                              blocks, tg)
        S.drain_row_tiles(rt, of_y, out, out_total, o_y, d, 4, mc, blocks, nt_n, tg)
        rt.finish_task_group(tg)
    return Program(NPU1(), rt).resolve_program(Placer())


# ---- the dynamic (default-mode) form ------------------------------------------------
MM_CORES = 3        # out-projection cores of the dynamic form (12 attention + 1 reducer)
# The reductions of one launch, in the reducer's round order = the launch's order of its
# reducing stages (runtime/layout.py reductions; the SCALES entry holds their params in
# this order): the quantizes of q, k, v (IN), then the quantize of the attention output o.
REDUCTIONS = ("q", "k", "v", "o")


def shares(n: int, parts: int) -> list[tuple[int, int]]:
    """(start, count) of `parts` contiguous shares of n items, sizes differing by <= 1."""
    base, extra = divmod(n, parts)
    out, pos = [], 0
    for i in range(parts):
        cnt = base + (1 if i < extra else 0)
        out.append((pos, cnt))
        pos += cnt
    return out


def dynamic_attention_stage():
    """kernels/attention/design.py's fused_dynamic_stage hook (clear error if missing)."""
    att, _ = attention_stage()
    hook = getattr(att, "fused_dynamic_stage", None)
    if hook is None:
        raise NotImplementedError(
            "attn_block's dynamic form needs kernels/attention/design.py to expose "
            "fused_dynamic_stage(...) (float32 q/k/v quantized on the core)")
    return att, hook


def build_dynamic(tq: int, tk: int, heads: int, head_dim: int):
    """The dynamic form (manifest "dynamic_stages": quantize q, k, v -> attention ->
    quantize -> matmul -> add): every scale reduced on the array by ONE reducer core
    (_stages.ScaleReduction, rounds = 4: q, k, v, o; kernels/common/dynamic_scale.h).

    Cores (16): attention 3 columns x 4 (fused_dynamic_stage), the reducer, and
    MM_CORES = 3 out-projection cores, which are also the reducer's producers.
      0. the MM cores fold their share of the REAL rows of q, then k, then v (float32,
         from IN, one row of d floats per object) into partials; the reducer finishes
         each into params {scale, 1/scale, flag, 0}, broadcast to the 12 attention and
         3 MM cores and drained to SCALES[0..2];
      1. the attention phase: each core keeps the q/k/v params, makes its attention
         words from PARAMS and them (logit requant from q_s * k_s * softmax_scale,
         attn_block_aie.cc attn_dyn_words), quantizes float32 chunks of q, k, v into its
         int8 blocks and runs the attention kernel with float32 output -> o (OUT);
      2. the MM cores fold the real rows of o (streamed back from OUT) -> o's params
         (round 3, SCALES[3]); then each quantizes float32 A tiles of o with them
         (a_tile_tap_f32), runs the matmul tiles and the dynamic epilogue (a_scale *
         w_scale) followed by the residual add -> y.
    One reducer with four rounds rather than one per tensor: the 16-core budget holds
    12 attention cores and one reducer next to the projection, and the rounds are
    sequential anyway (o's scale needs the attention, which needs q, k and v's).

    Runtime sequence (bytes): IN = q fp32 [Mp, D], k, v fp32 [Tk_pad, D], x fp32
    [Mp, D] (64-byte aligned; Mp = Tq rounded up to 128, Tk_pad to 64); OUT = y fp32
    [Mp, D], o fp32 [Mp, D], SCALES (4 x 16 B) (scratch.DYNAMIC_OUT_ENTRIES); WEIGHTS
    = W int8 [D, Dp], words fp32 [2, Dp] (w_scale, bias), the (K, N) pair (Dp: D rounded
    up to 256); PARAMS = the attention words
    (kernels/attention/aie/attention_aie.cc enum Param: causal, past_len, Tk, groups
    per head), with softmax_scale's float64 bits in words 10 (low) and 11 (high): the
    first 16 words of PARAMS (runtime/layout.py launch_words)."""
    np, Kernel, ObjectFifo, Program, Runtime, Worker, range_, NPU1, Placer = S.iron()
    from aie.iron import Buffer

    att, hook = dynamic_attention_stage()
    d = heads * head_dim
    if d % S.TILE_N:
        raise ValueError("heads * head_dim must be a multiple of 64")
    red = S.ScaleReduction("sr", OBJ, MM_CORES, 0.0, rounds=len(REDUCTIONS))
    phase = hook(tq=tq, tk=tk, heads=heads, head_dim=head_dim, scales=red.params,
                 rounds=len(REDUCTIONS), obj=OBJ)
    mp = scratch.padded_rows("attn_block", tq)
    if phase.tq_pad != mp:  # both pad Tq to 128-row groups
        raise ValueError(f"attention pads Tq to {phase.tq_pad}, the projection to {mp}")
    tkp = phase.tk_pad
    kt_n = nt_n = d // 64
    (o_q, o_k, o_v, o_x), in_total = S.aligned_offsets(
        [4 * mp * d, 4 * tkp * d, 4 * tkp * d, 4 * mp * d])
    (o_y, o_o, o_sc), out_total = scratch.offsets([
        scratch.capacity("attn_block", tq, 4 * d), scratch.capacity("attn_block", tq, 4 * d),
        scratch.scales_bytes(len(REDUCTIONS))])
    (o_w, o_p, _o_kn), w_total = S.aligned_offsets(S.matmul_weight_blobs(d, d, 2))
    f32, i8 = np.float32, np.int8
    tile = S.TILE_M * S.TILE_N

    def ty(n, dt):
        return np.ndarray[(n,), np.dtype[dt]]

    # per MM core: its 32-row blocks of the projection, its real rows of each tensor
    blocks = shares(mp // S.TILE_M, MM_CORES)
    rows = {"q": shares(tq, MM_CORES), "k": shares(tk, MM_CORES), "v": shares(tk, MM_CORES),
            "o": shares(tq, MM_CORES)}
    folds = [tuple(rows[t][c][1] for t in REDUCTIONS) for c in range(MM_CORES)]

    zero = Kernel("matmul_zero_i32", OBJ, [])
    mm = Kernel("matmul_i8_i32", OBJ, [ty(tile, i8), ty(64 * 64, i8)])
    epi = Kernel("attn_epilogue_f32_dyn_add", OBJ, [ty(128, f32), ty(S.DYN_WORDS, f32),
                                                    ty(tile, f32), ty(tile, f32)])
    begin, fold, quant = S.dyn_kernels(OBJ, d, tile)
    of_x = [ObjectFifo(ty(d, f32), name=f"fx{c}") if sum(folds[c]) else None
            for c in range(MM_CORES)]
    # per-core weight streams: the cores' block counts differ (no broadcast)
    of_w = [ObjectFifo(ty(64 * 64, i8), name=f"wo{c}") for c in range(MM_CORES)]
    of_p = [ObjectFifo(ty(128, f32), name=f"po{c}") for c in range(MM_CORES)]
    # A, residual and output tiles single-buffered: 64 KiB with the fold rows at d = 1280
    of_a = [ObjectFifo(ty(tile, f32), name=f"ao{c}", depth=1) for c in range(MM_CORES)]
    of_r = [ObjectFifo(ty(tile, f32), name=f"r{c}", depth=1) for c in range(MM_CORES)]
    of_y = [ObjectFifo(ty(tile, f32), name=f"y{c}", depth=1) for c in range(MM_CORES)]

    def mm_core(fx, fpart, fs, fa, fw, fp, fr, fy, k_begin, k_fold, k_quant, k_zero, k_mm,
                k_epi, qbuf, counts, n_blocks):
        for r, n in enumerate(counts):   # the reducer's rounds: q, k, v, o
            S.dyn_producer(range_, n, fx, fpart, k_begin, k_fold, d)
            if r < len(counts) - 1:   # q, k, v params: the attention cores'
                fs.acquire(1)
                fs.release(1)
        s = fs.acquire(1)             # o's params: this core's A tiles
        for _ in range_(n_blocks * nt_n):
            k_zero()
            for _ in range_(kt_n):
                a, w = fa.acquire(1), fw.acquire(1)
                k_quant(a, s, qbuf, tile)
                k_mm(qbuf, w)
                fa.release(1)
                fw.release(1)
            p, res, y = fp.acquire(1), fr.acquire(1), fy.acquire(1)
            k_epi(p, s, res, y)
            fp.release(1)
            fr.release(1)
            fy.release(1)
        fs.release(1)

    workers = [red.worker] + list(phase.workers)
    for c in range(MM_CORES):
        workers.append(Worker(mm_core, [
            of_x[c].cons() if of_x[c] else None, red.partials[c].prod(), red.params.cons(),
            of_a[c].cons(), of_w[c].cons(), of_p[c].cons(), of_r[c].cons(), of_y[c].prod(),
            begin, fold, quant, zero, mm, epi, Buffer(ty(tile, i8), name=f"qo{c}"),
            folds[c], blocks[c][1]]))

    rt = Runtime()
    with rt.sequence(ty(in_total, i8), ty(out_total, i8), ty(w_total, i8),
                     ty(S.PARAMS_WORDS, np.uint32)) as (x_in, out, weights, params):
        rt.start(*workers)

        def fold_rows(tg, name, src, src_total, base):
            """Each MM core's share of the real rows of one tensor, row by row."""
            for c in range(MM_CORES):
                start, n = rows[name][c]
                if n:
                    rt.fill(of_x[c].prod(), src,
                            S.contiguous_tap(src_total, base + 4 * start * d, 4 * n * d),
                            task_group=tg)

        def scales_drain(tg, slot):   # the reducer's params of round `slot` -> SCALES
            rt.drain(red.params.cons(), out,
                     S.contiguous_tap(out_total, o_sc + 4 * S.DYN_WORDS * slot, 4 * S.DYN_WORDS),
                     wait=True, task_group=tg)

        # phase 0: the scales of q, k, v (rounds 0-2)
        tg = rt.task_group()
        for slot, (name, base) in enumerate(zip(REDUCTIONS[:3], (o_q, o_k, o_v), strict=True)):
            fold_rows(tg, name, x_in, in_total, base)
            scales_drain(tg, slot)
        rt.finish_task_group(tg)
        # phase 1: attention (float32 q/k/v quantized on the cores) -> o (OUT)
        phase.emit(rt, att.Operand(x_in, in_total, o_q), att.Operand(x_in, in_total, o_k),
                   att.Operand(x_in, in_total, o_v), params, att.Operand(out, out_total, o_o))
        # phase 2: o's scale (round 3), then quantize -> out-projection -> + x -> y
        tg = rt.task_group()
        fold_rows(tg, "o", out, out_total, o_o)
        scales_drain(tg, REDUCTIONS.index("o"))
        for c in range(MM_CORES):
            b0, nb = blocks[c]
            fill_projection(rt, of_a[c], of_r[c], S.a_tile_tap_f32, out, out_total, o_o, x_in,
                            in_total, o_x, d, [b * S.TILE_M for b in range(b0, b0 + nb)], tg)
            S.stream_weight_tiles(rt, of_w[c], of_p[c], weights, w_total, o_w, o_p,
                                  S.padded_cols(d), kt_n,
                                  nt_n, 2, nb, tg)
            for b in range(b0, b0 + nb):
                row0 = b * S.TILE_M
                for nt in range(nt_n):
                    rt.drain(of_y[c].cons(), out,
                             S.block_tap(out_total, 4 * d, 0, o_y + 4 * (row0 * d + 64 * nt),
                                         32, 4 * 64),
                             wait=(b == b0 + nb - 1 and nt == nt_n - 1), task_group=tg)
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
    p.add_argument("--dynamic", action="store_true",
                   help="the dynamic form (scales reduced on the array; float32 q/k/v in)")
    a = p.parse_args()
    fn = build_dynamic if a.dynamic else build
    print(fn(a.tq, a.tk, a.heads, a.head_dim))


if __name__ == "__main__":
    main()
