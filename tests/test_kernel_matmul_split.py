"""matmul split outputs (fused q/k/v) and prepare_device: every kernel path,
bit for bit against the numpy reference and against independent unsplit
matmuls of each column block."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdna_ep.kernel_specs import matmul as mm
from xdna_ep.kernel_specs import registry
from xdna_ep.runtime.shapes import BufferSpec, output_specs

SETTINGS = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
MODES = ("int8", "float32", "dynamic")


def _consts(rng: np.random.Generator, K: int, N: int) -> dict[str, np.ndarray]:
    return {"weight": rng.integers(-127, 128, (K, N), dtype=np.int8),
            "w_scale": rng.uniform(1e-3, 5e-2, N).astype(np.float32),
            "bias": rng.normal(0, 2, N).astype(np.float32)}


def _attrs(mode: str, split: list[int], out_scales: list[float]) -> dict:
    if mode == "dynamic":
        return {"dynamic": True, "out": "float32", "split": split}
    attrs = {"out": mode, "in_scale": 0.02, "split": split}
    if mode == "int8":
        attrs["out_scales"] = out_scales
    return attrs


def _inputs(a: np.ndarray, mode: str) -> list[np.ndarray]:
    return [a, np.array([0.02], np.float32)] if mode == "dynamic" else [a]


def _block_attrs(attrs: dict, j: int) -> dict:
    """The unsplit stage computing block j alone (its own out_scale)."""
    b = {k: v for k, v in attrs.items() if k not in ("split", "out_scales")}
    if "out_scales" in attrs:
        b["out_scale"] = attrs["out_scales"][j]
    return b


def _check_split(consts: dict, a: np.ndarray, mode: str, split: list[int],
                 out_scales: list[float]) -> list[np.ndarray]:
    spec = registry.get("matmul")
    attrs = _attrs(mode, split, out_scales)
    inputs = _inputs(a, mode)
    got = spec.run(spec.prepare(consts, attrs), inputs, attrs)
    want = spec.reference(consts, inputs, attrs)
    assert len(got) == len(want) == len(split)
    lo = 0
    for j, (g, w, n) in enumerate(zip(got, want, split, strict=True)):
        assert g.shape == w.shape == (*a.shape[:-1], n)
        assert g.dtype == w.dtype and g.flags.c_contiguous
        assert g.tobytes() == w.tobytes()
        # independent: the unsplit kernel on this block's columns and scale
        block = {k: np.ascontiguousarray(v[..., lo:lo + n]) if k == "weight"
                 else np.ascontiguousarray(v[lo:lo + n]) for k, v in consts.items()}
        battrs = _block_attrs(attrs, j)
        alone = spec.reference(block, inputs, battrs)[0]
        assert alone.tobytes() == g.tobytes()
        lo += n
    return got


@st.composite
def _case(draw):
    parts = draw(st.lists(st.integers(1, 90), min_size=1, max_size=4))
    return (draw(st.integers(1, 60)), draw(st.integers(1, 130)), parts,
            draw(st.sampled_from(MODES)), draw(st.integers(0, 2**32 - 1)))


@SETTINGS
@given(case=_case())
def test_split_bit_exact(kernel_path: str, case) -> None:
    M, K, split, mode, seed = case
    rng = np.random.default_rng(seed)
    consts = _consts(rng, K, sum(split))
    a = rng.integers(-128, 128, (M, K), dtype=np.int8)
    _check_split(consts, a, mode, split, list(rng.uniform(0.05, 5.0, len(split))))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("M,split", [(1, [384, 384, 384]), (100, [384, 384, 384]),
                                     (7, [30, 100, 70]), (13, [1, 64, 1, 127]), (5, [200])])
def test_split_panel_straddles(kernel_path: str, mode: str, M: int, split: list[int]) -> None:
    """Blocks that start/end inside a 64-column panel, 1-wide blocks, the q/k/v
    shape of tiny.en, and the GEMV (M=1) column split of the thread pool."""
    rng = np.random.default_rng(M * 31 + len(split))
    consts = _consts(rng, 384 if split[0] == 384 else 77, sum(split))
    a = rng.integers(-128, 128, (2, M, consts["weight"].shape[0]), dtype=np.int8)
    got = _check_split(consts, a, mode, split, [0.3 + 0.2 * j for j in range(len(split))])
    assert [g.shape for g in got] == [(2, M, n) for n in split]


def test_split_equal_scales_is_the_unsplit_output(kernel_path: str) -> None:
    rng = np.random.default_rng(8)
    consts = _consts(rng, 64, 192)
    a = rng.integers(-128, 128, (9, 64), dtype=np.int8)
    spec = registry.get("matmul")
    whole = {"out": "int8", "in_scale": 0.02, "out_scale": 0.4}
    y = spec.run(spec.prepare(consts, whole), [a], whole)[0]
    for split_attrs in ({**whole, "split": [64, 64, 64]},
                        {"out": "int8", "in_scale": 0.02, "split": [64, 64, 64],
                         "out_scales": [0.4, 0.4, 0.4]}):
        parts = spec.run(spec.prepare(consts, split_attrs), [a], split_attrs)
        assert np.concatenate(parts, axis=1).tobytes() == y.tobytes()


def test_split_output_specs_match_run() -> None:
    rng = np.random.default_rng(9)
    consts = _consts(rng, 32, 48)
    spec = registry.get("matmul")
    for mode in MODES:
        attrs = _attrs(mode, [16, 8, 24], [0.1, 0.2, 0.3])
        a = rng.integers(-128, 128, (2, 5, 32), dtype=np.int8)
        outs = spec.run(spec.prepare(consts, attrs), _inputs(a, mode), attrs)
        ins = [BufferSpec.of(x) for x in _inputs(a, mode)]
        specs = output_specs("matmul", spec, ins, consts, attrs)
        assert specs == [BufferSpec.of(o) for o in outs]


@pytest.mark.parametrize("change, exc, name", [
    ({"split": [8, 7]}, ValueError, "split"),
    ({"split": [8, 0, 8]}, ValueError, "split"),
    ({"split": [8, "8"]}, TypeError, "split"),
    ({"split": 16}, TypeError, "split"),
    ({"split": [8, 8], "out_scales": [0.1]}, ValueError, "out_scales"),
    ({"split": [8, 8], "out_scales": [0.1, -1.0]}, ValueError, "out_scales"),
    ({"out_scales": [0.1, 0.2]}, ValueError, "split"),
])
def test_bad_split_attrs(change: dict, exc: type, name: str) -> None:
    rng = np.random.default_rng(10)
    consts = _consts(rng, 8, 16)
    attrs = {"out": "int8", "in_scale": 0.1, **change}
    if "out_scales" not in change:
        attrs["out_scale"] = 0.2
    a = rng.integers(-127, 128, (3, 8), dtype=np.int8)
    with pytest.raises(exc, match=name):
        mm.run(mm.prepare(consts, attrs), [a], attrs)
    with pytest.raises(exc, match=name):
        mm.reference(consts, [a], attrs)


def test_native_split_rejects_bad_blocks() -> None:
    from xdna_ep import _emulator
    w = _emulator.matmul_pack(np.ones((8, 4), np.int8))
    a = np.ones((2, 8), np.int8)
    f = np.ones(4, np.float32)
    for bad in ([2, 1], [2, 3], [0, 4], [4, -1]):
        with pytest.raises(ValueError, match="split"):
            _emulator.matmul_f32(a, w, f, f, bad)
    with pytest.raises(TypeError, match="split"):
        _emulator.matmul_f32(a, w, f, f, [2.0, 2.0])


# ------------------------------------------------------------ prepare_device
@pytest.mark.parametrize("mode", MODES)
def test_prepare_device_runs_from_the_blobs(kernel_path: str, mode: str) -> None:
    """prepare() == prepare_device(device_constants()); and the state really comes
    from the blob bytes: changing a weight byte in the blob changes the output."""
    rng = np.random.default_rng(11)
    consts = _consts(rng, 70, 100)
    attrs = _attrs(mode, [40, 60], [0.2, 0.5])
    a = rng.integers(-128, 128, (6, 70), dtype=np.int8)
    spec = registry.get("matmul")
    blobs = spec.device_constants(consts, attrs)
    from_blobs = spec.run(spec.prepare_device(blobs, attrs), _inputs(a, mode), attrs)
    want = spec.reference(consts, _inputs(a, mode), attrs)
    assert [x.tobytes() for x in from_blobs] == [x.tobytes() for x in want]
    changed = [b.copy() for b in blobs]
    changed[0][0, :] = np.where(changed[0][0, :] == 0, 5, 0)
    got = spec.run(spec.prepare_device(changed, attrs), _inputs(a, mode), attrs)
    assert any(x.tobytes() != y.tobytes() for x, y in zip(got, want, strict=True))


def test_prepare_device_rejects_bad_blobs() -> None:
    rng = np.random.default_rng(12)
    consts = _consts(rng, 16, 8)
    attrs = {"out": "int8", "in_scale": 0.1, "out_scale": 0.2}
    w, words, dims = mm.device_constants(consts, attrs)
    with pytest.raises(ValueError, match="blobs"):
        mm.prepare_device([w, words], attrs)
    with pytest.raises(ValueError, match="dims"):
        mm.prepare_device([w, words, np.array([999, 8], np.int32)], attrs)
    with pytest.raises(TypeError, match="params"):
        mm.prepare_device([w, words.view(np.float32), dims], attrs)
    with pytest.raises(TypeError, match="params"):
        mm.prepare_device([w, words, dims], {"out": "float32", "in_scale": 0.1})
    with pytest.raises(ValueError, match="params"):
        mm.prepare_device([w, words[:2].copy(), dims], attrs)


# ------------------------------------------------------------ float32 input
@pytest.mark.parametrize("out", ["int8", "float32"])
def test_float32_input_equals_quantize_then_matmul(kernel_path: str, out: str) -> None:
    """Static matmul on a float32 input == the quantize stage followed by the int8
    matmul (same bytes), with and without split outputs."""
    rng = np.random.default_rng(13)
    consts = _consts(rng, 96, 150)
    x = (rng.standard_normal((3, 11, 96)) * 2).astype(np.float32)
    qspec, spec = registry.get("quantize"), registry.get("matmul")
    q = qspec.run(qspec.prepare({}, {"out_scale": 0.03}), [x], {"out_scale": 0.03})[0]
    for extra in ({}, {"split": [50, 100]}):
        attrs = {"out": out, "in_scale": 0.03, **extra}
        if out == "int8":
            attrs["out_scale"] = 0.5
        state = spec.prepare(consts, attrs)
        via_f32 = spec.run(state, [x], attrs)
        via_q = spec.run(state, [q], attrs)
        ref = spec.reference(consts, [x], attrs)
        assert [a.tobytes() for a in via_f32] == [b.tobytes() for b in via_q] == \
            [c.tobytes() for c in ref]


def test_float32_input_needs_static_mode() -> None:
    rng = np.random.default_rng(14)
    consts = _consts(rng, 8, 4)
    attrs = {"dynamic": True, "out": "float32"}
    x = np.ones((2, 8), np.float32)
    with pytest.raises(TypeError, match="a must have dtype int8"):
        mm.run(mm.prepare(consts, attrs), [x, np.ones(1, np.float32)], attrs)
    with pytest.raises(TypeError, match="a must have dtype"):
        mm.run(mm.prepare(consts, {"out": "float32", "in_scale": 0.1}), [x.astype(np.float64)],
               {"out": "float32", "in_scale": 0.1})
