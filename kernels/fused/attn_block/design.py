"""Fused design "attn_block": attention -> matmul -> add in one launch.

    out = x + out_proj(attention(q, k, v))      (Whisper self/cross attention)

Phase 1 is the attention kernel's own design body (kernels/attention/design.py
must expose `fused_stage(rt, workers, ...)`, see build()), writing the int8
attention output o [Mp, D] to a scratch slot of OUT. Phase 2, per column:
the out-projection core reads o in aie::mmul A order, runs the matmul tiles
and, on the same core, the fp32 epilogue followed by the residual add with x
(fused_epilogue_f32_add) -> OUT. One instruction stream, no host work between
the phases.

Runtime sequence: IN = q, k, v int8 then x fp32 [Mp, D] (64-byte aligned);
OUT = bytes: y fp32 [Mp, D] then o int8 [Mp, D]; WEIGHTS = attention
constants, then W int8 [D, D] and fp32 [2, D] epilogue words; PARAMS.

    python design.py [--tq 1500] [--tk 1500] [--heads 6] [--head-dim 64]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import _stages as S  # noqa: E402

OBJ = "attn_block_aie.o"


def attention_stage():
    """The attention kernel's fused-stage hook, or a clear NotImplementedError."""
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
            "attn_block needs kernels/attention/design.py to expose fused_stage(rt, ...) "
            "that adds the attention workers and emits its phase into a runtime sequence, "
            "writing int8 o [Mp, D] at a given OUT offset")
    return hook


def build(tq: int, tk: int, heads: int, head_dim: int):
    np, Kernel, ObjectFifo, Program, Runtime, Worker, range_, NPU1, Placer = S.iron()
    hook = attention_stage()
    d = heads * head_dim
    if d % S.TILE_N:
        raise ValueError("heads * head_dim must be a multiple of 64")
    mp = S.up(tq, S.COLUMNS * S.TILE_M)
    mc = mp // S.COLUMNS
    blocks = mc // S.TILE_M
    kt_n = nt_n = d // 64
    (o_q, o_k, o_v, o_x), in_total = S.aligned_offsets([mp * d, tk * d, tk * d, 4 * mp * d])
    (o_y, o_o), out_total = S.aligned_offsets([4 * mp * d, mp * d])
    att_bytes = int(getattr(hook, "weights_bytes", lambda *a: 0)(tq, tk, heads, head_dim))
    (o_att, o_w, o_p), w_total = S.aligned_offsets([att_bytes, d * d, 8 * d])
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
    of_r = [ObjectFifo(ty(tile, f32), name=f"r{c}") for c in range(S.COLUMNS)]
    of_y = [ObjectFifo(ty(tile, f32), name=f"y{c}") for c in range(S.COLUMNS)]

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
        att_workers = hook(rt, tq=tq, tk=tk, heads=heads, head_dim=head_dim, inputs=x_in,
                           q_offset=o_q, k_offset=o_k, v_offset=o_v, out=out, o_offset=o_o,
                           weights=weights, weights_offset=o_att, params=params)
        rt.start(*(list(att_workers) + workers))
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
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tq", type=int, default=1500)
    p.add_argument("--tk", type=int, default=1500)
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--head-dim", type=int, default=64)
    a = p.parse_args()
    print(build(a.tq, a.tk, a.heads, a.head_dim))


if __name__ == "__main__":
    main()
