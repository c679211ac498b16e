"""The region op: array result path in use, many arities, errors, threads."""

from __future__ import annotations

import threading

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from xdna_ep.ort import region_op
from xdna_ep.ort.provider import LoadedRegion
from xdna_ep.rewrite import DOMAIN, op_type_for


class Affine:
    """A LoadedProgram stand-in computing a*x+c per input, exact in float32."""

    def __init__(self, names_in, names_out):
        self.names_in, self.names_out = names_in, names_out

    def run(self, inputs):
        total = sum(inputs[n].astype(np.float32) for n in self.names_in)
        return {n: (total * np.float32(i + 2)).astype(np.float32)
                for i, n in enumerate(self.names_out)}


def _model(n_in: int, n_out: int, token: str, ref: str = "p.xdp", shape=("M", 384)):
    ins = [f"i{k}" for k in range(n_in)]
    outs = [f"o{k}" for k in range(n_out)]
    node = helper.make_node(op_type_for(n_in, n_out), ins, outs, name="r", domain=DOMAIN,
                            program=ref, digest="0" * 64, session=token, region="0")
    g = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(shape))
                      for n in ins],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(shape)) for n in outs])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                            helper.make_opsetid(DOMAIN, 1)])
    onnx.checker.check_model(m)
    return m, ins, outs


def _session(n_in, n_out, ref="p.xdp"):
    table = region_op.ProgramTable()
    m, ins, outs = _model(n_in, n_out, table.token, ref)
    table.add(ref, LoadedRegion(Affine(ins, outs), tuple(ins), tuple(outs), 0))
    so = ort.SessionOptions()
    region_op.register_library(so)
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess, table, ins, outs


def test_fast_array_path_is_the_one_in_use():
    sess, table, ins, _ = _session(1, 1)
    x = np.random.default_rng(0).standard_normal((1500, 384)).astype(np.float32)
    before = (region_op.STATS.body_calls, region_op.STATS.fast_calls)
    (y,) = sess.run(None, {"i0": x})
    assert region_op.STATS.body_calls - before[0] == 1
    assert region_op.STATS.fast_calls - before[1] == 1  # answered by our invoker
    np.testing.assert_array_equal(y, x * 2)


def test_counters_tell_the_stock_list_path_apart():
    """The mechanism check is meaningful: with the library's own invoker the body
    still runs (result equal, via lists) but fast_calls does not move."""
    sess, table, *_ = _session(1, 2)
    x = np.arange(3 * 384, dtype=np.float32).reshape(3, 384)
    try:
        region_op.install_stock_invoker()
        before = (region_op.STATS.body_calls, region_op.STATS.fast_calls)
        y, z = sess.run(None, {"i0": x})
        assert region_op.STATS.body_calls - before[0] == 1
        assert region_op.STATS.fast_calls == before[1]
        np.testing.assert_array_equal(y, x * 2)
        np.testing.assert_array_equal(z, x * 3)
    finally:
        region_op.ensure_registered()
    before = region_op.STATS.fast_calls
    sess.run(None, {"i0": x})
    assert region_op.STATS.fast_calls == before + 1


@pytest.mark.parametrize("n_in,n_out", [(1, 1), (2, 3), (3, 1), (16, 16)])
def test_one_op_family_serves_every_arity(n_in, n_out):
    sess, table, ins, outs = _session(n_in, n_out)
    rng = np.random.default_rng(n_in * 10 + n_out)
    feeds = {n: rng.standard_normal((5, 384)).astype(np.float32) for n in ins}
    got = sess.run(None, feeds)
    total = sum(feeds.values())
    for i, arr in enumerate(got):
        np.testing.assert_array_equal(arr, total * np.float32(i + 2))


def test_non_contiguous_device_output_is_copied_correctly():
    class Transposed:
        def run(self, inputs):
            return {"o0": np.asfortranarray(inputs["i0"] * 2)}

    table = region_op.ProgramTable()
    m, _, _ = _model(1, 1, table.token)
    table.add("p.xdp", LoadedRegion(Transposed(), ("i0",), ("o0",), 0))
    so = ort.SessionOptions()
    region_op.register_library(so)
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    x = np.arange(6 * 384, dtype=np.float32).reshape(6, 384)
    np.testing.assert_array_equal(sess.run(None, {"i0": x})[0], x * 2)


def test_failure_never_crosses_into_cpp_and_is_recorded(caplog):
    """An exception inside a region call would abort the process in the library's
    kernel; the op logs it, records it for the owning session's run() and returns
    empty outputs (never numbers)."""
    class Broken:
        def run(self, inputs):
            raise ValueError("device exploded")

    table = region_op.ProgramTable()
    m, _, _ = _model(1, 1, table.token)
    table.add("p.xdp", LoadedRegion(Broken(), ("i0",), ("o0",), 0))
    so = ort.SessionOptions()
    region_op.register_library(so)
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    table.begin_run()
    (out,) = sess.run(None, {"i0": np.ones((2, 384), np.float32)})
    assert out.size == 0
    err = table.end_run()
    assert err is not None and "device exploded" in err
    assert table.end_run() is None  # reported once
    assert "device exploded" in caplog.text


def test_unknown_session_token_is_logged(caplog):
    m, _, _ = _model(1, 1, "no-such-session")
    so = ort.SessionOptions()
    region_op.register_library(so)
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {"i0": np.ones((2, 384), np.float32)})
    assert out.size == 0
    assert "no live xdna_ep session" in caplog.text


def test_table_released_with_its_owner():
    table = region_op.ProgramTable()
    token = table.token
    assert token in region_op._TABLES
    del table
    assert token not in region_op._TABLES


def test_register_library_twice_on_same_options_is_harmless():
    so = ort.SessionOptions()
    region_op.register_library(so)
    region_op.register_library(so)  # would make ORT reject (or crash) on a 2nd registration
    sess, *_ = _session(1, 1)
    assert sess.run(None, {"i0": np.ones((1, 384), np.float32)})[0][0, 0] == 2


def test_four_threads_one_session():
    sess, *_ = _session(2, 2)
    rng = np.random.default_rng(3)
    feeds = [{"i0": rng.standard_normal((50, 384)).astype(np.float32),
              "i1": rng.standard_normal((50, 384)).astype(np.float32)} for _ in range(4)]
    errors: list[BaseException] = []

    def work(f):
        try:
            for _ in range(25):
                a, b = sess.run(None, f)
                s = f["i0"] + f["i1"]
                np.testing.assert_array_equal(a, s * 2)
                np.testing.assert_array_equal(b, s * 3)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f,)) for f in feeds]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
