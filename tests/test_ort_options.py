"""Provider options: every key validated, errors list what is valid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_ort_support import big_linear_model

from xdna_ep.ort import InferenceSession, ProviderOptionError, parse_options
from xdna_ep.ort.errors import XDNAPlacementWarning
from xdna_ep.ort.options import OPTION_HELP, read_calibration

EP = "XDNAExecutionProvider"


def test_defaults():
    o = parse_options(None)
    assert (o.device, o.quantization, o.fallback, o.report, o.num_threads) == (
        "auto", "dynamic", "allow", None, None)
    assert o.exclude_ops == () and o.exclude_nodes == ()


def test_unknown_key_lists_every_valid_option():
    with pytest.raises(ProviderOptionError) as ei:
        parse_options({"quantisation": "static"})
    msg = str(ei.value)
    assert "quantisation" in msg
    for key in OPTION_HELP:
        assert key in msg


@pytest.mark.parametrize("key,good,bad", [
    ("device", ["auto", "npu", "emulator", "NPU"], ["gpu", "", 1]),
    ("quantization", ["dynamic"], ["int4", None]),
    ("fallback", ["allow", "error"], ["ignore", True]),
])
def test_choices(key, good, bad):
    for v in good:
        assert getattr(parse_options({key: v}), key) == v.lower()
    for v in bad:
        with pytest.raises(ProviderOptionError, match=f"{key}=.*expected one of"):
            parse_options({key: v})


def test_static_needs_calibration(tmp_path):
    with pytest.raises(ProviderOptionError, match="needs calibration"):
        parse_options({"quantization": "static"})
    for i in range(3):
        np.savez(tmp_path / f"cal{i}.npz", x=np.full((4, 384), i, np.float32))
    o = parse_options({"quantization": "static", "calibration": str(tmp_path / "cal1.npz")})
    assert o.calibration == tmp_path / "cal1.npz"
    (one,) = read_calibration(o)
    np.testing.assert_array_equal(one["x"], np.ones((4, 384), np.float32))
    samples = read_calibration(parse_options({"calibration": tmp_path}))
    assert [float(s["x"][0, 0]) for s in samples] == [0.0, 1.0, 2.0]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProviderOptionError, match="no .npz"):
        parse_options({"calibration": str(tmp_path / "empty")})


def test_calibration_values(tmp_path):
    with pytest.raises(ProviderOptionError, match=r"\.npz"):
        parse_options({"calibration": str(tmp_path / "cal.txt")})
    with pytest.raises(ProviderOptionError, match="not found"):
        parse_options({"calibration": str(tmp_path / "missing.npz")})
    with pytest.raises(ProviderOptionError, match="CalibrationDataReader"):
        parse_options({"calibration": 3.5})

    class Reader:
        def __init__(self):
            self.items = [{"x": np.ones((1, 384), np.float32)}] * 2

        def get_next(self):
            return self.items.pop() if self.items else None

    o = parse_options({"calibration": Reader()})
    assert len(read_calibration(o)) == 2
    empty = Reader()
    empty.items = []
    with pytest.raises(ProviderOptionError, match="no samples"):
        read_calibration(parse_options({"calibration": empty}))


def test_paths(tmp_path):
    o = parse_options({"cache_dir": str(tmp_path / "c"), "report": str(tmp_path / "r.html")})
    assert o.cache_dir == tmp_path / "c" and o.report == tmp_path / "r.html"
    with pytest.raises(ProviderOptionError, match="suffix"):
        parse_options({"report": str(tmp_path / "r.pdf")})
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ProviderOptionError, match="not a directory"):
        parse_options({"cache_dir": str(f)})
    with pytest.raises(ProviderOptionError, match="expected a path"):
        parse_options({"cache_dir": 5})


def test_name_lists():
    o = parse_options({"exclude_ops": "Gelu, Softmax", "exclude_nodes": ["a", "b"]})
    assert o.exclude_ops == ("Gelu", "Softmax") and o.exclude_nodes == ("a", "b")
    with pytest.raises(ProviderOptionError, match="non-empty string"):
        parse_options({"exclude_ops": ["Gelu", 3]})
    with pytest.raises(ProviderOptionError, match="list of names"):
        parse_options({"exclude_nodes": 7})


@pytest.mark.parametrize("value,ok", [("4", 4), (2, 2), (0, None), ("two", None),
                                      (1.5, None), (True, None)])
def test_num_threads(value, ok):
    if ok is None:
        with pytest.raises(ProviderOptionError, match="num_threads"):
            parse_options({"num_threads": value})
    else:
        assert parse_options({"num_threads": value}).num_threads == ok


def test_exclude_nodes_keeps_them_on_cpu(tmp_path):
    lm = big_linear_model(two_regions=True)
    # half the MACs excluded: said in proportion, with the reason
    with pytest.warns(XDNAPlacementWarning, match=r"50\.0% of MACs.*top reasons: excluded"):
        sess = InferenceSession(lm.model.SerializeToString(), providers=[EP],
                                provider_options=[{"cache_dir": str(tmp_path),
                                                   "exclude_nodes": "mm1"}])
    assert sess.xdna_start.regions == 1  # only mm0+add0 left on the NPU
    sess2 = InferenceSession(lm.model.SerializeToString(), providers=[EP],
                             provider_options=[{"cache_dir": str(tmp_path)}])
    assert sess2.xdna_start.regions == 2 and sess2.xdna_start.source == "compiled"
    assert Path(sess.xdna_start.cache_entry) != Path(sess2.xdna_start.cache_entry)


def test_static_quantization_session(tmp_path):
    lm = big_linear_model()
    rng = np.random.default_rng(9)
    cal = tmp_path / "cal"
    cal.mkdir()
    for i in range(4):
        np.savez(cal / f"s{i}.npz", x=rng.standard_normal((256, 384)).astype(np.float32))
    sess = InferenceSession(lm.model.SerializeToString(), providers=[EP],
                            provider_options=[{"cache_dir": str(tmp_path),
                                               "quantization": "static",
                                               "calibration": str(cal)}])
    assert sess.xdna_start.regions == 1
    x = rng.standard_normal((256, 384)).astype(np.float32)
    got, want = sess.run(None, {"x": x})[0], lm.fp32(x)["y"]
    cos = float(np.dot(got.ravel(), want.ravel()) / (np.linalg.norm(got) * np.linalg.norm(want)))
    assert cos > 0.99


def test_num_threads_reaches_the_emulator(tmp_path):
    from xdna_ep import _emulator

    lm = big_linear_model()
    before = _emulator.num_threads()
    try:
        want = 1 if before != 1 else 2
        InferenceSession(lm.model.SerializeToString(), providers=[EP],
                         provider_options=[{"cache_dir": str(tmp_path), "num_threads": want,
                                            "device": "emulator"}])
        assert _emulator.num_threads() == want
    finally:
        _emulator.set_num_threads(before)
