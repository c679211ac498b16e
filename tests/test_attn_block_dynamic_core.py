"""The dynamic attn_block's attention-core code (kernels/fused/attn_block/
attn_dynamic_aie.cc with the attention and dynamic-scale AIE sources it sits on),
compiled on the host with the scalar aie_api stand-in and driven through
build_dynamic's schedule: three producers fold their shares of the real rows, the
reducer finishes the params of q, k and v, every attention core keeps them, makes
its attention words from PARAMS and them, quantizes float32 chunks of 8 rows into
its int8 blocks and runs the attention passes over 3 columns. It must give the
emulator's bytes for the default-mode chain quantize(q, k, v) -> attention (float32
out). No NPU and no aiecc: this checks the core code and the schedule's arithmetic,
not the DMA (tests/test_design_shapes.py traces that)."""

from __future__ import annotations

import ctypes
import math
import shutil
import struct
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from xdna_ep.kernel_specs import attention as A
from xdna_ep.kernel_specs import quantize as qz
from xdna_ep.kernel_specs.softmax import logit_requant

KERNELS = Path(__file__).resolve().parents[1] / "kernels"
SOURCES = ("attention/aie/attention_aie.cc", "common/aie/dynamic_scale_aie.cc",
           "fused/attn_block/attn_dynamic_aie.cc")   # attn_block_aie.cc's include order
PRODUCERS = 3          # design.py MM_CORES: the reducer's producers
COLS = 3               # attention columns inside attn_block
CHUNK_ROWS = 8


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    cxx = shutil.which(sysconfig.get_config_var("CXX") or "") or shutil.which("c++")
    assert cxx, "a C++ compiler is needed (it also builds xdna_ep._emulator)"
    tmp = tmp_path_factory.mktemp("attn_dyn")
    tu = tmp / "attn_dynamic_core.cc"
    tu.write_text("".join(f'#include "{KERNELS / s}"\n' for s in SOURCES))
    so = tmp / "attn_dynamic_core.so"
    subprocess.run([cxx, "-std=c++17", "-O1", "-ffp-contract=off", "-shared", "-fPIC", "-I",
                    str(KERNELS / "attention" / "aie" / "host_stub"), "-o", str(so), str(tu)],
                   check=True)
    return ctypes.CDLL(str(so))


def _p(a: np.ndarray) -> ctypes.c_void_p:
    assert a.flags.c_contiguous
    return a.ctypes.data_as(ctypes.c_void_p)


def host_words(tk: int, groups_per_head: int, softmax_scale: float) -> np.ndarray:
    """PARAMS of the dynamic form as the host writes them (kernel_specs/attention.py
    device_words, what runtime/layout.py puts at the start of PARAMS): the attention
    words the host knows (causal 0, past_len 0, Tk, groups per head) and
    softmax_scale's float64 bits in words 10-11."""
    attrs = {"dynamic": True, "num_heads": 1, "softmax_scale": softmax_scale,
             "out": "float32"}
    par = A.device_words(attrs, (1, groups_per_head * 128, 64), (1, tk, 64))
    assert list(par[[4, 9]]) == [tk, groups_per_head] and not par[:4].any()
    assert struct.unpack("<d", par[10:12].tobytes())[0] == softmax_scale
    return par


def reduce_params(lib: ctypes.CDLL, x: np.ndarray) -> np.ndarray:
    """build_dynamic phase 0 for one tensor: each producer folds its share of the real
    rows (row by row, d floats each), the reducer combines the partials."""
    rows = x.reshape(-1, x.shape[-1])
    parts = np.zeros((PRODUCERS, 4), np.float32)
    base, extra = divmod(rows.shape[0], PRODUCERS)
    start = 0
    for c in range(PRODUCERS):
        n = base + (c < extra)
        lib.xdna_dynscale_begin(_p(parts[c]))
        for r in rows[start:start + n]:
            lib.xdna_dynscale_fold(_p(np.ascontiguousarray(r)), _p(parts[c]), r.size)
        start += n
    out = np.zeros(4, np.float32)
    lib.xdna_dynscale_reduce(_p(parts), _p(out), PRODUCERS, 0)
    return out


def core_words(lib: ctypes.CDLL, params: list[np.ndarray], par: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    keep = np.zeros(12, np.float32)
    for slot, p in enumerate(params):
        lib.attn_dyn_keep(_p(p), _p(keep), slot)
    words = np.zeros(16, np.int32)
    lib.attn_dyn_words(_p(par), _p(keep), _p(words))
    return keep, words


def run_dynamic_attention(lib: ctypes.CDLL, qf: np.ndarray, kf: np.ndarray, vf: np.ndarray,
                          heads: int, softmax_scale: float) -> tuple[np.ndarray, list]:
    """build_dynamic's attention cores on the host: float32 [1, T, H*64] in, o out."""
    _, tq, hd = qf.shape
    tk, dh = kf.shape[1], 64
    tqp, tkp = -(-tq // 128) * 128, -(-tk // 64) * 64
    qp = np.zeros((tqp, hd), np.float32)
    qp[:tq] = qf[0]
    kp = np.zeros((tkp, hd), np.float32)
    kp[:tk] = kf[0]
    vp = np.zeros((tkp, hd), np.float32)
    vp[:tk] = vf[0]
    params = [reduce_params(lib, t) for t in (qf, kf, vf)]
    gph = tqp // 128
    keep, words = core_words(lib, params, host_words(tk, gph, softmax_scale))
    out = np.zeros((tqp, hd), np.float32)
    qloc, kloc, vloc = (np.zeros((n, dh), np.int8) for n in (32, 64, 64))

    def block(src, dst, which, keys, cols):
        for i in range(64 // CHUNK_ROWS):
            rows = slice(keys.start + CHUNK_ROWS * i, keys.start + CHUNK_ROWS * (i + 1))
            lib.attn_dyn_quantize_kv(_p(np.ascontiguousarray(src[rows, cols])), _p(keep),
                                     _p(dst), which, i)

    for g in range(heads * gph):
        col, rnd = g % COLS, g // COLS
        h, gr = divmod(g, gph)
        cols = slice(h * dh, (h + 1) * dh)
        for r in range(4):
            row0 = gr * 128 + r * 32
            for i in range(32 // CHUNK_ROWS):
                chunk = np.ascontiguousarray(qp[row0 + CHUNK_ROWS * i:row0 + CHUNK_ROWS * (i + 1),
                                                cols])
                lib.attn_dyn_quantize_q(_p(chunk), _p(keep), _p(qloc), i)
            lib.xdna_attn_begin_cols(_p(np.array([rnd], np.int32)), _p(words), col, r, COLS)
            for pas in (1, 2):
                if pas == 2:
                    lib.xdna_attn_rewind()
                for kb in range(tkp // 64):
                    keys = slice(kb * 64, (kb + 1) * 64)
                    block(kp, kloc, 1, keys, cols)
                    if pas == 1:
                        lib.xdna_attn_pass1(_p(qloc), _p(kloc), _p(words))
                    else:
                        block(vp, vloc, 2, keys, cols)
                        lib.xdna_attn_pass2(_p(qloc), _p(kloc), _p(vloc), _p(words))
            ob = np.zeros((32, dh), np.float32)
            lib.xdna_attn_end_f32(_p(ob), _p(words))
            out[row0:row0 + 32, cols] = ob
    return out[None, :tq], params


def emulator_chain(qf, kf, vf, heads: int, softmax_scale: float) -> np.ndarray:
    """The default-mode chain on the emulator: dynamic quantize of q, k, v, then the
    dynamic attention with float32 output (kernel_specs: the stages' own code)."""
    (q, qs), (k, ks), (v, vs) = (qz.quantize_dynamic(t) for t in (qf, kf, vf))
    return A.attention(q, k, v, num_heads=heads, q_scale=float(qs), k_scale=float(ks),
                       v_scale=float(vs), softmax_scale=softmax_scale, out="float32")


# torch's SDPA export: q and k each scaled by float32(Dh^-0.25): their product in double
SDPA_SCALE = float(np.float32(64 ** -0.25)) ** 2


@pytest.mark.parametrize("tq,tk,heads,ss", [(70, 50, 2, 0.125), (200, 131, 1, SDPA_SCALE),
                                             (129, 200, 2, 0.125)])
def test_dynamic_attention_cores_match_the_emulator(core, tq: int, tk: int, heads: int,
                                                    ss: float) -> None:
    rng = np.random.default_rng(tq * 7 + tk)
    hd = heads * 64
    qf = (rng.normal(size=(1, tq, hd)) * 2.5).astype(np.float32)
    kf = (rng.normal(size=(1, tk, hd)) * 0.7).astype(np.float32)
    vf = (rng.standard_t(3, size=(1, tk, hd))).astype(np.float32)
    got, params = run_dynamic_attention(core, qf, kf, vf, heads, ss)
    for p, t in zip(params, (qf, kf, vf), strict=True):   # the reducer is the host's rule
        assert p[0] == qz.quantize_dynamic(t)[1] and p[2] == 0.0
    np.testing.assert_array_equal(got, emulator_chain(qf, kf, vf, heads, ss))


def test_dynamic_words_follow_the_host_logit_requant(core) -> None:
    """attn_dyn_words: logit multiplier/shift = the host's logit_requant(q_s * k_s *
    softmax_scale) (double), float output, v_scale's bits; PARAMS' own words kept."""
    rng = np.random.default_rng(5)
    for ss in (0.125, SDPA_SCALE, 1.0 / math.sqrt(80.0), 1.0):
        for _ in range(200):
            qs, ks, vs = (np.float32(10.0 ** rng.uniform(-5, 1)) for _ in range(3))
            params = [np.array([s, np.float32(1) / s, 0, 0], np.float32) for s in (qs, ks, vs)]
            par = host_words(1500, 12, ss)
            _, words = core_words(core, params, par)
            m, e = logit_requant(float(qs) * float(ks) * ss)
            assert (int(words[0]), int(words[1])) == (m, e), (qs, ks, ss)
            assert words[5] == 1 and words[8] == np.array([vs], np.float32).view(np.int32)[0]
            keep = np.r_[2:5, 6:8, 9:16]
            np.testing.assert_array_equal(words[keep], par[keep])


def test_dynamic_chunks_quantize_with_their_tensors_params(core) -> None:
    """Chunk i of q lands at rows 8i..8i+7 of the q block, quantized with q's params;
    a k/v chunk with k's (which 1) or v's (2): the contract's quantize, never another
    tensor's scale; a flagged tensor (NaN/inf seen by the reducer) quantizes to zeros."""
    rng = np.random.default_rng(9)
    x = rng.normal(size=(CHUNK_ROWS, 64)).astype(np.float32)
    scales = (np.float32(0.01), np.float32(0.02), np.float32(0.04))
    params = [np.array([s, np.float32(1) / s, 0, 0], np.float32) for s in scales]
    keep, _ = core_words(core, params, host_words(64, 1, 0.125))
    for which, (n, fn) in enumerate(((32, "q"), (64, "kv"), (64, "kv"))):
        blk = np.zeros((n, 64), np.int8)
        for i in range(n // CHUNK_ROWS):
            if fn == "q":
                core.attn_dyn_quantize_q(_p(x), _p(keep), _p(blk), i)
            else:
                core.attn_dyn_quantize_kv(_p(x), _p(keep), _p(blk), which, i)
        want = qz.quantize(x, float(scales[which]))
        np.testing.assert_array_equal(blk, np.tile(want, (n // CHUNK_ROWS, 1)))
    flagged = np.array([1, 1, 1, 0], np.float32)
    keep, _ = core_words(core, [params[0], flagged, params[2]], host_words(64, 1, 0.125))
    blk = np.ones((64, 64), np.int8)
    core.attn_dyn_quantize_kv(_p(x), _p(keep), _p(blk), 1, 0)
    assert not blk[:CHUNK_ROWS].any() and (blk[CHUNK_ROWS:] == 1).all()
