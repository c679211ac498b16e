"""The on-array dynamic GELU table (kernels/common/aie/gelu_table_aie.cc, with the
dynamic_scale_aie.cc and gelu_aie.cc it includes), compiled on the host with the
scalar aie_api stand-in and driven through the MLP designs' pass schedule
(kernels/fused/ffn_block/design.py build_dynamic, phase 4: per column, chunks of the
REAL rows of the float32 fc1 output f folded into a partial -> the reducer with
neg_limit 4; the same chunks quantized with the broadcast params, their code ranges
folded -> the table reducer; EVERY row quantized -> table -> h), gives the emulator's
bytes for quantize (dynamic, neg_limit 4) -> gelu (dynamic): h, its scale and the
quantize's scale. No NPU and no aiecc: this checks the core code and the schedule's
arithmetic, not the DMA (tests/test_design_shapes.py traces that)."""

from __future__ import annotations

import ctypes
import math
import sys

import numpy as np
import pytest

from xdna_ep._kernels.fused import scratch
from xdna_ep.kernel_specs import gelu as gl
from xdna_ep.kernel_specs import quantize as qz

from aie_host import KERNELS, core_fixture, f32_bits, ptr  # isort: skip

sys.path.insert(0, str(KERNELS / "fused"))
import _stages as S  # noqa: E402

COLS = S.COLUMNS


core = core_fixture("common", "aie", "gelu_table_aie.cc")
_p, _bits = ptr, f32_bits


def _mlp_pass(lib: ctypes.CDLL, f: np.ndarray, rows: int, channels: int):
    """build_dynamic's phase 4 over f [Mp, F] (rows real): (params, gelu object, h)."""
    mp, width = f.shape
    mc = mp // COLS
    ch = S.pass_chunk(math.gcd(channels, width))
    real = [max(0, min(rows - c * mc, mc)) for c in range(COLS)]

    def chunks(c: int, n_rows: int) -> list[np.ndarray]:
        block = f[c * mc:c * mc + n_rows].reshape(-1)
        return [np.ascontiguousarray(block[i:i + ch]) for i in range(0, block.size, ch)]

    parts = np.zeros((COLS, S.DYN_WORDS), np.float32)
    for c in range(COLS):                                     # fold the real rows -> SF
        lib.xdna_dynscale_begin(_p(parts[c]))
        for x in chunks(c, real[c]):
            lib.xdna_dynscale_fold(_p(x), _p(parts[c]), ch)
    params = np.zeros(S.DYN_WORDS, np.float32)
    lib.xdna_dynscale_reduce(_p(parts), _p(params), COLS, _bits(scratch.CONV_NEG_LIMIT))
    ranges = np.zeros((COLS, S.DYN_WORDS), np.int32)
    for c in range(COLS):                                     # code ranges -> G
        lib.xdna_gelu_codes_begin(_p(ranges[c]))
        for x in chunks(c, real[c]):
            lib.xdna_gelu_codes_fold(_p(x), _p(params), _p(ranges[c]), ch)
    gelu = np.zeros(S.GELU_BYTES, np.int8)
    lib.xdna_gelu_table_reduce(_p(ranges), _p(params), _p(gelu), COLS, 0)
    h = np.zeros(mp * width, np.int8)                         # every row -> table -> h
    pos = 0
    for c in range(COLS):
        for x in chunks(c, mc):
            out = np.zeros(ch, np.int8)
            lib.xdna_gelu_table_apply(_p(x), _p(params), _p(gelu), _p(out), ch)
            h[pos:pos + ch] = out
            pos += ch
    return params, gelu, h.reshape(mp, width)


@pytest.mark.parametrize(("rows", "channels", "scale", "shift"),
                         [(90, 64, 1.0, 0.0), (200, 192, 30.0, 0.0), (130, 64, 3.0, -2.5),
                          (128, 320, 0.01, 0.0)])
def test_array_gelu_table_gives_the_emulators_bytes(core: ctypes.CDLL, rows: int,
                                                     channels: int, scale: float,
                                                     shift: float) -> None:
    width = 4 * channels
    mp = scratch.padded_rows("ffn_block", rows)
    rng = np.random.default_rng(rows + channels)
    f = np.empty((mp, width), np.float32)
    f[:rows] = (scale * rng.standard_normal((rows, width)) + shift).astype(np.float32)
    f[rows:] = 1e4          # padding rows (fc1 of beta): must not reach any reduction
    params, gelu, h = _mlp_pass(core, f, rows, channels)
    q, s = qz.quantize_dynamic(f[:rows], scratch.CONV_NEG_LIMIT)
    want, s_out = gl.gelu_dynamic(q, float(s), "none")
    assert params[2] == 0.0
    assert params[:1].view(np.uint32)[0] == np.float32(s).view(np.uint32)
    assert gelu[256:260].view(np.float32)[0] == np.float32(s_out)   # s_out at byte 256
    assert h[:rows].tobytes() == np.asarray(want, np.int8).tobytes()


def test_a_flagged_input_quantizes_to_zeros(core: ctypes.CDLL) -> None:
    """NaN in f: the reducer flags it and every code is quantized as 0, so h is the
    table's entry for 0 everywhere (the host raises on the flag before reading h)."""
    f = np.ones((128, 256), np.float32)
    f[5, 7] = np.nan
    params, gelu, h = _mlp_pass(core, f, 128, 64)
    assert params.tolist() == [1.0, 1.0, 1.0, 0.0]
    assert (h == gelu[gl.TABLE_OFFSET]).all()
