"""The on-device dynamic scale (kernels/common/dynamic_scale.h): the host build of the
functions the AIE cores run (partial per tile, reducer) gives the quantize contract's
scale bit for bit (kernel_specs/quantize.py numpy reference), however the tensor is
tiled and in whatever order partials are combined; NaN/inf set the flag. Its IRON
helper (kernels/fused/_stages.py ScaleReduction) traces under the FAKE IRON."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from xdna_ep.kernel_specs import quantize as qz

KERNELS = Path(__file__).resolve().parent.parent / "kernels"
sys.path.insert(0, str(KERNELS))
import build_xclbins  # noqa: E402
import iron_check as IC  # noqa: E402

F32 = np.float32


def _bits(a) -> np.ndarray:
    return np.asarray(a, dtype=F32).view(np.uint32)


def _tiles(x: np.ndarray, n: int) -> list[np.ndarray]:
    """x split into n contiguous tiles of uneven sizes (the producers' shares)."""
    flat = x.reshape(-1)
    cuts = sorted({max(1, flat.size * i * i // (n * n)) for i in range(1, n)} - {flat.size})
    return [t for t in np.split(flat, cuts) if t.size]


def _on_device(x: np.ndarray, n: int, neg_limit: float = 0.0, seed: int = 0) -> np.ndarray:
    parts = np.stack([qz.dynamic_scale_partial(np.ascontiguousarray(t)) for t in _tiles(x, n)])
    np.random.default_rng(seed).shuffle(parts)       # the join order is not fixed
    return qz.dynamic_scale_reduce(parts, neg_limit)


rng = np.random.default_rng(7)
CASES = {
    "normal": rng.standard_normal((37, 64)).astype(F32) * F32(3.5),
    "all_zero": np.zeros((5, 64), F32),
    "negative_zero": np.full((3, 8), -0.0, F32),
    "denormal_range": (rng.standard_normal((4, 64)) * 1e-40).astype(F32),   # 1/scale overflows
    "scale_denormal": (rng.standard_normal((4, 64)) * 1e-37).astype(F32),   # max/127 subnormal
    "huge": np.array([3.4e38, -3.4028235e38, 1.0, 0.0], F32),
    "gelu_like": np.concatenate([rng.uniform(-16.5, 8.2, 4000)]).astype(F32),
    "all_negative": -np.abs(rng.standard_normal(300)).astype(F32) * F32(9.0),
    "one_value": np.array([[-2.75]], F32),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("tiles", [1, 3, 7])
@pytest.mark.parametrize("neg_limit", [0.0, 4.0, 0.5])
def test_reduced_scale_is_the_contract_scale(case: str, tiles: int, neg_limit: float) -> None:
    x = CASES[case]
    params = _on_device(x, tiles, neg_limit, seed=tiles)
    want = qz.dynamic_scale_reference(x, neg_limit)
    assert _bits(params[0]) == _bits(want), (case, params, want)
    assert _bits(params[1]) == _bits(F32(1.0) / want)
    assert params[2] == 0.0 and params[3] == 0.0
    # the host kernel's whole-tensor pass chooses the same scale (one rule, finish())
    q, s = qz.quantize_dynamic(x, neg_limit)
    assert _bits(s) == _bits(params[0])
    # and a consumer quantizing with the broadcast 1/scale gives the contract's bytes
    np.testing.assert_array_equal(q, qz.quantize_reference(x, params[0]))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [0, 150, 299])
def test_nan_or_inf_anywhere_sets_the_flag(bad: float, where: int) -> None:
    x = rng.standard_normal(300).astype(F32)
    x[where] = bad
    for neg_limit in (0.0, 4.0):
        params = _on_device(x, 4, neg_limit)
        assert params[2] == 1.0, params
        assert params[0] == 1.0 and params[1] == 1.0
        with pytest.raises(ValueError, match="NaN or inf"):
            qz.dynamic_scale_reference(x, neg_limit)
        with pytest.raises(ValueError, match="NaN or inf"):
            qz.quantize_dynamic(x, neg_limit)


def test_partial_words_and_identity() -> None:
    x = np.array([1.5, -7.25, 3.0], F32)
    p = qz.dynamic_scale_partial(x)
    np.testing.assert_array_equal(p, np.array([7.25, 3.0, 0.0, 0.0], F32))
    # combining with the partial of an all-negative tile keeps max x from the other one
    q = qz.dynamic_scale_partial(np.array([-9.0], F32))
    r = qz.dynamic_scale_reduce(np.stack([q, p]), 4.0)
    assert _bits(r[0]) == _bits(qz.dynamic_scale_reference(np.concatenate(
        [np.array([-9.0], F32), x]), 4.0))


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
        qz.dynamic_scale_reduce(np.zeros((2, 3), F32))
    with pytest.raises(ValueError, match="neg_limit"):
        qz.dynamic_scale_reduce(np.zeros((1, 4), F32), -1.0)
    with pytest.raises(TypeError, match="float32"):
        qz.dynamic_scale_partial(np.zeros(4, np.float64))


# --- the IRON side ----------------------------------------------------------------
def _trace(fn: str, *args) -> IC.Report:
    return IC.trace(lambda: build_xclbins.load_design("quantize/design.py"), fn, *args)


@pytest.mark.parametrize("n,neg_limit", [(1500 * 384, 0.0), (1500 * 5120, 4.0), (100, 0.0)])
def test_one_launch_dynamic_quantize_traces(n: int, neg_limit: float) -> None:
    rep = _trace("build_dynamic", n, neg_limit)
    assert rep.workers == 9            # 4 producers + reducer + 4 consumers
    assert rep.max_memtile >= 4 * 4 * 4   # the joined partials sit on a memory tile
    # the host drains exactly the reducer's 4 params words into P
    params = IC.touched(rep.moves, 1, "drain", rep.arg_bytes[1])
    assert params[:16].tolist() == [1] * 16 and not params[16:].any()


def test_reduction_volumes_are_checked() -> None:
    """A consumer that takes the params more often than the reducer makes them fails."""
    sys.path.insert(0, str(KERNELS / "fused"))

    def broken():
        import _stages as S
        from aie.helpers.taplib import TensorAccessPattern
        from aie.iron import Kernel, ObjectFifo, Program, Runtime, Worker

        t = np.ndarray[(64,), np.dtype[np.float32]]
        red = S.ScaleReduction("r", "x.o", 2, rounds=1)
        src = [ObjectFifo(t, name=f"s{i}") for i in range(2)]
        begin, fold, _quant = S.dyn_kernels("x.o", 64)
        noop = Kernel("noop", "x.o", [np.ndarray[(4,), np.dtype[np.float32]]])

        def prod(fx, fp, kb, kf):
            S.dyn_producer(range, 1, fx, fp, kb, kf, 64)

        def cons(fs, k):
            for _ in range(2):            # takes two params objects, one is made
                k(fs.acquire(1))
                fs.release(1)

        ws = [red.worker, Worker(cons, [red.params.cons(), noop])]
        ws += [Worker(prod, [src[i].cons(), red.partials[i].prod(), begin, fold])
               for i in range(2)]
        rt = Runtime()
        with rt.sequence(np.ndarray[(128,), np.dtype[np.float32]]) as (x,):
            rt.start(*ws)
            for i in range(2):
                rt.fill(src[i].prod(), x, TensorAccessPattern((1, 128), 64 * i, [1, 1, 1, 64],
                                                              [0, 0, 0, 1]))
        return Program(None, rt).resolve_program(None)

    mod = type(sys)("broken_design")
    mod.build = broken
    with pytest.raises(IC.TraceError, match="r_s"):
        IC.trace(lambda: mod, "build")


def test_iron_helper_names_the_aie_entry_points() -> None:
    sys.path.insert(0, str(KERNELS / "fused"))
    import _stages as S

    src = (KERNELS / "common" / "aie" / "dynamic_scale_aie.cc").read_text()
    defined = set(re.findall(r"^void (\w+)\(", src, flags=re.M))
    assert set(S.DYN_SYMBOLS) == defined
    assert S.neg_limit_bits(4.0) == 0x40800000 and S.neg_limit_bits(0.0) == 0
