"""IRON design of the add kernel for npu1 (Phoenix, 4 columns).

fp32 (residual stream) or int8-with-rescale elementwise add in one launch, `b`
equal to `a` or broadcast over a's leading dims (kernels/add/geometry.py: the
PERIOD, b's size, is split in 4 column ranges; each column streams its range of
every period of a and the same range of b, repeated by a zero-stride DMA
dimension, in `tile`-element blocks, so b is stored once). The position form
reads a [B, D, T] transposed through its DMA pattern (columns split at rows).
Runtime sequence arguments follow runtime/layout.py: IN (a, then b when it is an
activation; dynamic int8: a, a_scale, b, b_scale; each 64-byte aligned), OUT
(c; dynamic int8: then c_scale), WEIGHTS (static int8: int32 {ma, mb, shift};
a constant b: b itself, float32), PARAMS. The period must be a multiple of
4 * tile (position form: each column's T/4 rows of D a whole number of tiles).

    python design.py [--dtype float32|int8] [--elements N] [--period P] [--tile T]
                     [--b in|weights] [--dynamic] [--transposed-rows T]  > add.mlir
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import geometry as G  # noqa: E402 - the reads/writes, shared with runtime/layout.py

COLUMNS = G.COLUMNS
PARAMS_WORDS = 16


def add_design(dtype: str, elements: int, tile: int, period: int | None = None,
               b_source: str = G.B_IN, dynamic: bool = False, a_rows: int = 0):
    """`period`: b's elements (default a's); `a_rows`: T of the position form's
    a [B, D, T], read transposed (period = T * D)."""
    period = elements if period is None else period
    if dynamic and dtype != "int8":
        raise ValueError("dynamic scales are an int8 form")
    if b_source == G.B_WEIGHTS and dtype != "float32":
        raise ValueError("a constant b is a float32 form (kernels/STAGES.md)")
    dt = np.float32 if dtype == "float32" else np.int8
    item = np.dtype(dt).itemsize
    if b_source == G.B_WEIGHTS:
        ins = [("a", elements * item)]
    elif dynamic:
        ins = [("a", elements), ("a_scale", 4), ("b", period), ("b_scale", 4)]
    else:
        ins = [("a", elements * item), ("b", period * item)]
    geo = G.plan(ins, "a", None if b_source == G.B_WEIGHTS else "b", elements, period, item,
                 ("a_scale", "b_scale") if dynamic else None, a_rows)
    spans = {hi - lo for lo, hi in geo.columns()}
    if len(spans) != 1 or min(spans) % tile or tile % 16 or not min(spans):
        raise ValueError(f"each column's range of the period must be one whole number of "
                         f"tiles (ranges {sorted(spans)}, tile {tile}, a multiple of 16)")
    blocks = geo.reps * spans.pop() // tile                  # per column
    in_bytes = G.packed_offsets([n for _, n in ins])[-1] + ins[-1][1]
    in_ty = np.ndarray[(in_bytes // item,), np.dtype[dt]]
    out_bytes = geo.out_scale_offset + 4 if dynamic else elements * item
    out_ty = np.ndarray[(out_bytes // item,), np.dtype[dt]]
    tile_ty = np.ndarray[(tile,), np.dtype[dt]]
    rq_ty = np.ndarray[(3,), np.dtype[np.int32]]
    w_ty = np.ndarray[(period,), np.dtype[np.float32]] if b_source == G.B_WEIGHTS else rq_ty
    sc_ty = np.ndarray[(8,), np.dtype[np.int8]]       # two float32 scales, as bytes
    cs_ty = np.ndarray[(4,), np.dtype[np.int8]]       # c_scale, as bytes
    params_ty = np.ndarray[(PARAMS_WORDS,), np.dtype[np.uint32]]

    if dtype == "float32":
        fn = Kernel("xdna_add_f32", "add_aie.o", [tile_ty, tile_ty, tile_ty, np.int32])
    elif dynamic:
        fn = Kernel("xdna_add_i8_dynamic", "add_aie.o",
                    [tile_ty, tile_ty, tile_ty, sc_ty, np.int32])
    else:
        fn = Kernel("xdna_add_i8", "add_aie.o", [tile_ty, tile_ty, tile_ty, rq_ty, np.int32])
    fn_cs = Kernel("xdna_add_out_scale", "add_aie.o", [sc_ty, cs_ty]) if dynamic else None
    of_rq = ObjectFifo(rq_ty, name="rq", depth=1) if dtype == "int8" and not dynamic else None
    of_sc = ObjectFifo(sc_ty, name="scales", depth=1) if dynamic else None
    of_cs = ObjectFifo(cs_ty, name="cs", depth=1) if dynamic else None
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
        # static: frq holds {ma, mb, shift}; dynamic: the two scales (the core
        # derives {ma, mb, shift} with add.h's make_add_requant)
        rq = frq.acquire(1)
        for _ in range_(blocks):
            a, b, c = fa.acquire(1), fb.acquire(1), fc.acquire(1)
            k(a, b, c, rq, tile)
            fa.release(1)
            fb.release(1)
            fc.release(1)
        frq.release(1)

    def core_i8_first(fa, fb, fc, fsc, fcs, k, kcs):
        # column 0 of the dynamic form also writes c_scale = a_scale + b_scale
        sc = fsc.acquire(1)
        cs = fcs.acquire(1)
        kcs(sc, cs)
        fcs.release(1)
        for _ in range_(blocks):
            a, b, c = fa.acquire(1), fb.acquire(1), fc.acquire(1)
            k(a, b, c, sc, tile)
            fa.release(1)
            fb.release(1)
            fc.release(1)
        fsc.release(1)

    workers = []
    for c in range(COLUMNS):
        args = [of_a[c].cons(), of_b[c].cons(), of_c[c].prod()]
        if dtype == "float32":
            workers.append(Worker(core_f32, args + [fn]))
        elif dynamic and c == 0:
            workers.append(Worker(core_i8_first, args + [of_sc.cons(), of_cs.prod(), fn, fn_cs]))
        else:
            workers.append(Worker(core_i8, args + [(of_sc or of_rq).cons(), fn]))

    def tap(total: int, p: G.Pattern) -> TensorAccessPattern:
        return TensorAccessPattern((1, total), p.offset, list(p.sizes), list(p.strides))

    n_in, n_out = in_bytes // item, out_bytes // item
    rt = Runtime()
    with rt.sequence(in_ty, out_ty, w_ty, params_ty) as (src, out, weights, _p):
        rt.start(*workers)
        if of_rq is not None:
            rt.fill(of_rq.prod(), weights)
        if of_sc is not None:
            rt.fill(of_sc.prod(), src, tap(n_in, geo.scales_pattern()))
        b_src, n_b = (weights, period) if b_source == G.B_WEIGHTS else (src, n_in)
        tg = rt.task_group()
        for c in range(COLUMNS):
            rt.fill(of_a[c].prod(), src, tap(n_in, geo.a_pattern(c)), task_group=tg)
            rt.fill(of_b[c].prod(), b_src, tap(n_b, geo.b_pattern(c)), task_group=tg)
        if of_cs is not None:
            rt.drain(of_cs.cons(), out, tap(n_out, G.Pattern(geo.out_scale_offset, (1, 1, 1, 4),
                                                             (0, 0, 0, 1))), task_group=tg)
        for c in range(COLUMNS):
            rt.drain(of_c[c].cons(), out, tap(n_out, geo.c_pattern(c)), wait=True,
                     task_group=tg)
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
    p.add_argument("--period", type=int, default=None, help="b's elements (default: a's)")
    p.add_argument("--tile", type=int, default=1200)
    p.add_argument("--b", choices=[G.B_IN, G.B_WEIGHTS], default=G.B_IN)
    p.add_argument("--dynamic", action="store_true")
    p.add_argument("--transposed-rows", type=int, default=0,
                   help="position form: T of a [B, D, T] read transposed")
    a = p.parse_args()
    print(add_design(a.dtype, a.elements, a.tile, a.period, a.b, a.dynamic,
                     a.transposed_rows))


if __name__ == "__main__":
    main()
