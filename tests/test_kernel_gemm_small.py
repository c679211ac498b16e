"""Few-row int8 GEMM paths: the unpacked NT GEMM (attention over a KV cache,
decoder steps) and the packed matmul's 1..4-row blocks (decoder per-token
matmuls, the lm head). Exact int32 / bit-exact outputs on every kernel path,
against numpy int64 products."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdna_ep import _emulator
from xdna_ep.kernel_specs import registry

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _nt(a: np.ndarray, bt: np.ndarray) -> None:
    c = _emulator.gemm_s8s8s32_nt(a, bt)
    assert c.dtype == np.int32 and c.shape == (a.shape[0], bt.shape[0])
    assert (c.astype(np.int64) == a.astype(np.int64) @ bt.astype(np.int64).T).all()


@SETTINGS
@given(M=st.integers(1, 40), N=st.sampled_from([1, 5, 63, 64, 65, 128, 129, 448]),
       K=st.sampled_from([1, 3, 4, 31, 32, 33, 63, 64, 65, 127, 448, 1000]),
       seed=st.integers(0, 2**32 - 1))
def test_gemm_nt_few_rows_exact(kernel_path: str, M: int, N: int, K: int, seed: int) -> None:
    """Covers the unpacked rows (M < 8; N <= 128 and M <= 32), the packed path
    beyond them, whole and partial 32/64-byte k chunks and 1..4-row blocks."""
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (M, K), dtype=np.int8)
    a[0, 0] = -128
    _nt(a, rng.integers(-127, 128, (N, K), dtype=np.int8))


@pytest.mark.parametrize("M", [1, 3, 4, 7])
def test_gemm_nt_few_rows_extremes(kernel_path: str, M: int) -> None:
    """Largest magnitudes (a = -128, b = +-127) over a long k: int16 pair sums and
    the u8 offset correction at their limits; a long row takes the heap buffer."""
    K = 5000
    a = np.full((M, K), -128, np.int8)
    for bt in (np.full((9, K), 127, np.int8), np.full((9, K), -127, np.int8)):
        _nt(a, bt)
    rng = np.random.default_rng(M)
    _nt(rng.integers(-128, 128, (M, 65536), dtype=np.int8),
        rng.integers(-127, 128, (3, 65536), dtype=np.int8))


@pytest.mark.parametrize("M", [1, 2, 3, 4])
@pytest.mark.parametrize("N", [1, 64, 100, 1000, 51864])
def test_packed_matmul_few_rows(kernel_path: str, M: int, N: int) -> None:
    """Decoder per-token shapes (K = 384), including the tiny.en lm head (N = 51864),
    int8 and float32 outputs: emulator == numpy reference, bit for bit."""
    rng = np.random.default_rng(M * 100003 + N)
    K = 384
    consts = {"weight": rng.integers(-127, 128, (K, N), dtype=np.int8),
              "w_scale": rng.uniform(1e-3, 2e-2, N).astype(np.float32),
              "bias": rng.normal(0, 1, N).astype(np.float32)}
    a = rng.integers(-128, 128, (M, K), dtype=np.int8)
    spec = registry.get("matmul")
    for attrs in ({"out": "int8", "in_scale": 0.02, "out_scale": 0.5},
                  {"out": "float32", "in_scale": 0.02}):
        got = spec.run(spec.prepare(consts, attrs), [a], attrs)[0]
        want = spec.reference(consts, [a], attrs)[0]
        assert got.tobytes() == want.tobytes()


def test_gemm_nt_rejects_int8_min_in_bt() -> None:
    bt = np.zeros((5, 70), np.int8)
    bt[4, 69] = -128  # the very last byte: the vectorised check must see it
    with pytest.raises(ValueError, match="bt"):
        _emulator.gemm_s8s8s32_nt(np.zeros((1, 70), np.int8), bt)
