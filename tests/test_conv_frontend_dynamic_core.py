"""The dynamic conv_frontend's AIE core code (kernels/fused/conv_frontend/
conv_frontend_aie.cc, with the shared kernels/common/aie/dynamic_scale_aie.cc and
the conv1d/gelu/add stage sources it includes), compiled on the host with the
scalar aie_api stand-in and driven through build_dynamic's schedule (per column:
the pass chunks over the REAL elements, the reducers' combine of four partials,
the conv tiles and blocks), gives the emulator's bytes for the dynamic front end.
No NPU and no aiecc: this checks the core code and the schedule's arithmetic, not
the DMA (tests/test_design_shapes.py traces that)."""

from __future__ import annotations

import ctypes
import sys

import numpy as np
import pytest
from synthetic.regions import conv_frontend

from xdna_ep._kernels.fused import scratch
from xdna_ep.compile import CompileOptions, compile_region
from xdna_ep.runtime import EmulatorDevice

from aie_host import KERNELS, core_fixture, f32_bits, ptr  # isort: skip

COLS = scratch.CONV_COLUMNS
KW = scratch.CONV_KW


core = core_fixture("fused", "conv_frontend", "conv_frontend_aie.cc")
_p, _bits = ptr, f32_bits


def _design():
    sys.path.insert(0, str(KERNELS / "fused"))
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "xdna_design_cf_dyn", KERNELS / "fused" / "conv_frontend" / "design.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Schedule:
    """build_dynamic's per-core work, phase by phase, on the host-compiled core code."""

    def __init__(self, lib: ctypes.CDLL, mels: int, d: int, frames: int) -> None:
        self.lib, self.mels, self.d, self.frames = lib, mels, d, frames
        self.dims = scratch.conv_frontend_dims(mels, d, frames)
        self.p1 = _design().pass_chunk(frames)
        self.q2 = d // COLS
        self.t2_real = (frames + 2 - KW) // 2 + 1
        self.records: list[np.ndarray] = []

    def reduce(self, chunks_per_col: list[list[np.ndarray]], neg_limit: float,
               fold=None) -> np.ndarray:
        """Each column folds its chunks into a partial; the reducer combines the four."""
        parts = np.zeros((COLS, 4), np.float32)
        for c, chunks in enumerate(chunks_per_col):
            self.lib.xdna_dynscale_begin(_p(parts[c]))
            for x in chunks:
                (fold or self.lib.xdna_dynscale_fold)(_p(x), _p(parts[c]), x.size)
        params = np.zeros(4, np.float32)
        self.lib.xdna_dynscale_reduce(_p(parts), _p(params), COLS, _bits(neg_limit))
        self.records.append(params)
        return params

    def gelu_table(self, chunks_per_col: list[list[np.ndarray]], params: np.ndarray,
                   row: bool) -> np.ndarray:
        ranges = np.zeros((COLS, 4), np.int32)
        fold = self.lib.frontend_codes_fold_row if row else self.lib.xdna_gelu_codes_fold
        for c, chunks in enumerate(chunks_per_col):
            self.lib.xdna_gelu_codes_begin(_p(ranges[c]))
            for x in chunks:
                fold(_p(x), _p(params), _p(ranges[c]), x.size)
        gelu = np.zeros(272, np.int8)
        self.lib.xdna_gelu_table_reduce(_p(ranges), _p(params), _p(gelu), COLS, 0)
        return gelu

    def conv(self, src: np.ndarray, w: np.ndarray, ws: np.ndarray, bias: np.ndarray,
             params: np.ndarray, stride: int, tiling, tout: int) -> np.ndarray:
        """src [cin, row] zero-bordered; returns the raw blocks as [d, tout]."""
        nt, nco = tiling.nt, tiling.nco
        cin, k = src.shape[0], w.shape[1]
        win = (nt - 1) * stride + KW
        y = np.zeros((self.d, tout), np.float32)
        blk = np.zeros(nco * nt, np.float32)
        for t0 in range(0, tout, nt):
            window = np.ascontiguousarray(src[:, t0 * stride:t0 * stride + win])
            self.lib.xdna_conv1d_im2col(_p(window), _p(params), cin, win, KW, stride, nt)
            for j in range(self.d // nco):
                wb = np.ascontiguousarray(w[j * nco:(j + 1) * nco])
                self.lib.xdna_conv1d_block(_p(wb), _p(ws), _p(bias), _p(params), _p(blk), k,
                                           j * nco, nco, nt)
                y[j * nco:(j + 1) * nco, t0:t0 + nt] = blk.reshape(nco, nt)
        return y

    def col_chunks(self, rows: np.ndarray) -> list[list[np.ndarray]]:
        """A [n, frames] tensor's rows split over the columns, in pass chunks."""
        per = rows.shape[0] // COLS
        return [[np.ascontiguousarray(rows[r, i:i + self.p1])
                 for r in range(c * per, (c + 1) * per) for i in range(0, self.frames, self.p1)]
                for c in range(COLS)]

    def row_chunks(self, m: np.ndarray) -> list[list[np.ndarray]]:
        """A [t2_real, d] tensor: each column its quarter of every row."""
        return [[np.ascontiguousarray(m[t, c * self.q2:(c + 1) * self.q2])
                 for t in range(m.shape[0])] for c in range(COLS)]

    def run(self, mel: np.ndarray, c1w, c2w, pos: np.ndarray) -> np.ndarray:
        dims, d, frames, lib = self.dims, self.d, self.frames, self.lib
        mel_rows = np.zeros((self.mels, dims.tp1), np.float32)
        mel_rows[:, 1:1 + frames] = mel
        a0 = self.reduce(self.col_chunks(np.ascontiguousarray(mel)), 0.0)           # 1
        c1 = self.conv(mel_rows, *c1w, a0, 1, dims.c1, dims.t1)
        c1_real = np.ascontiguousarray(c1[:, :frames])
        b1 = self.reduce(self.col_chunks(c1_real), scratch.CONV_NEG_LIMIT)          # 2a
        g1 = self.gelu_table(self.col_chunks(c1_real), b1, row=False)               # 2b
        h = np.zeros((d, dims.tp2), np.float32)                                     # 2c
        parts = np.zeros((COLS, 4), np.float32)
        out = np.zeros(self.p1, np.float32)
        for c, chunks in enumerate(self.col_chunks(c1_real)):
            lib.xdna_dynscale_begin(_p(parts[c]))
            per = d // COLS
            for n, x in enumerate(chunks):
                lib.frontend_gelu_fold(_p(x), _p(b1), _p(g1), _p(out), _p(parts[c]), x.size)
                r, i = divmod(n, frames // self.p1)
                h[c * per + r, 1 + i * self.p1:1 + (i + 1) * self.p1] = out
        a1 = np.zeros(4, np.float32)
        lib.xdna_dynscale_reduce(_p(parts), _p(a1), COLS, 0)
        self.records.append(a1)
        c2 = self.conv(h, *c2w, a1, 2, dims.c2, dims.t2)                            # 3
        c2t = np.ascontiguousarray(c2.T[:self.t2_real])
        b2 = self.reduce(self.row_chunks(c2t), scratch.CONV_NEG_LIMIT,
                         fold=lib.frontend_fold_row)                                # 4a
        g2 = self.gelu_table(self.row_chunks(c2t), b2, row=True)                    # 4b
        y = np.zeros((self.t2_real, d), np.float32)                                 # 4c
        yc = np.zeros(self.q2, np.float32)
        for c, chunks in enumerate(self.row_chunks(c2t)):
            for t, x in enumerate(chunks):
                e = np.ascontiguousarray(pos[t, c * self.q2:(c + 1) * self.q2])
                lib.frontend_gelu_add_row(_p(x), _p(e), _p(b2), _p(g2), _p(yc), self.q2)
                y[t, c * self.q2:(c + 1) * self.q2] = yc
        return y


def _weights(prog, stage) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    w = prog.constants[stage.consts["weight"]]
    return (np.ascontiguousarray(w.reshape(w.shape[0], -1)),
            np.ascontiguousarray(prog.constants[stage.consts["w_scale"]], np.float32),
            np.ascontiguousarray(prog.constants[stage.consts["bias"]], np.float32))


@pytest.mark.parametrize(("d", "frames", "scale"), [(64, 22, 1.0), (96, 40, 30.0)])
def test_dynamic_core_schedule_gives_the_emulators_bytes(core: ctypes.CDLL, d: int,
                                                         frames: int, scale: float) -> None:
    sm = conv_frontend(n_mels=16, d=d, t=frames, seed=3, positions=True)
    prog, plan = compile_region(sm.model, sm.region, CompileOptions("dynamic"))
    assert prog is not None and [ln.design for ln in prog.launches] == ["conv_frontend"], \
        plan.fallbacks
    stages = prog.launches[0].stages
    x = (scale * sm.samples(1, seed=5)[0][sm.input_name]).astype(np.float32)
    want = EmulatorDevice().load(prog).run({sm.input_name: x})[prog.outputs[0].name]
    pos = prog.constants[stages[-1].consts["b"]]
    sched = Schedule(core, 16, d, frames)
    got = sched.run(np.ascontiguousarray(x[0]), _weights(prog, stages[0]),
                    _weights(prog, stages[4]), np.ascontiguousarray(pos, np.float32))
    assert got.shape == want.shape[1:]
    assert got.tobytes() == want[0].tobytes()
    assert [float(r[2]) for r in sched.records] == [0.0] * 4   # no reduction flagged


def test_a_nan_mel_is_flagged_by_the_first_reduction(core: ctypes.CDLL) -> None:
    sched = Schedule(core, 16, 64, 22)
    mel = np.ones((16, 22), np.float32)
    mel[3, 7] = np.nan
    params = sched.reduce(sched.col_chunks(mel), 0.0)
    assert params.tolist() == [1.0, 1.0, 1.0, 0.0]
