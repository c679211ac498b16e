"""XrtDevice driven through the FAKE pyxrt (tests/fakes): bytes, protocol, residency."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from xdna_ep.runtime import EmulatorDevice, XrtDevice
from xdna_ep.runtime.layout import ARG_IN, ARG_INSTR, ARG_OUT, ARG_PARAMS, ARG_WEIGHTS
from xdna_ep.runtime.xclbins import read_instructions

from fakes.fake_pyxrt import GROUP_BASE, make_fake_pyxrt  # isort: skip
from fakes.kernels_for_tests import (  # isort: skip
    INSTR, fake_kernels, make_npu_files, make_program)


@pytest.fixture()
def kernels():
    with fake_kernels():
        yield


@pytest.fixture()
def npu(tmp_path: Path, kernels):
    manifest, xdir = make_npu_files(tmp_path)
    fake = make_fake_pyxrt()
    dev = XrtDevice(fake, manifest=manifest, xclbin_dirs=[xdir], timeout_ms=1234)
    return fake, dev


def _x(m: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 3, (m, 8)).astype(np.float32)


def _calls(fake, name: str) -> list[dict]:
    return [d for n, d in fake.calls if n == name]


def test_xrt_through_fake_gives_the_emulators_bytes(npu) -> None:
    fake, dev = npu
    prog = make_program()
    emu = EmulatorDevice().load(prog)
    npu_prog = dev.load(prog)
    for m in (1, 5, 300, 2):                  # 300 forces the activation BOs to grow
        x = _x(m, m)
        got, want = npu_prog.run({"x": x}), emu.run({"x": x})
        assert set(got) == set(want)
        for k in want:
            assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape
            assert got[k].tobytes() == want[k].tobytes(), k
    assert len(_calls(fake, "device.completed")) == 4 * 3
    assert not _calls(fake, "device.error")


def test_protocol_order(npu) -> None:
    fake, dev = npu
    loaded = dev.load(make_program())
    n_load = len(fake.calls)
    loaded.run({"x": _x(4)})
    names = [n for n, _ in fake.calls[:n_load]]
    # load: device once, then per design xclbin -> kernels -> register -> context -> kernel
    assert names[0] == "device"
    first = names.index("xclbin")
    assert names[first:first + 5] == ["xclbin", "xclbin.get_kernels", "register_xclbin",
                                      "hw_context", "kernel"]
    # instruction BO: cacheable, group of argument 1, written then synced to the device
    bo_calls = _calls(fake, "bo")
    assert bo_calls[0]["flags"] == "cacheable" and bo_calls[0]["group"] == GROUP_BASE + ARG_INSTR
    assert bo_calls[0]["size"] == 4 * len(INSTR["d_sq"])
    instr_id = bo_calls[0]["id"]
    i_w = fake.calls.index(("bo.write", {"bo": instr_id, "nbytes": bo_calls[0]["size"],
                                         "seek": 0}))
    assert fake.calls[i_w + 1] == ("bo.sync", {"bo": instr_id,
                                               "direction": "XCL_BO_SYNC_BO_TO_DEVICE"})
    # one cacheable instruction BO per design; every data BO is host_only
    instr_bos = [b for b in bo_calls if b["group"] == GROUP_BASE + ARG_INSTR]
    assert [b["flags"] for b in instr_bos] == ["cacheable", "cacheable"]
    assert all(b["flags"] == "host_only" for b in bo_calls if b not in instr_bos)
    # run: per launch write+sync IN, write+sync PARAMS, call, wait, sync OUT back, read
    run_names = [n for n, _ in fake.calls[n_load:] if not n.startswith("device.")
                 and n != "kernel.group_id"]
    per_launch = ["bo.write", "bo.sync", "bo.write", "bo.sync", "kernel.call", "run.wait",
                  "bo.sync", "bo.read"]
    allocs = run_names.count("bo")
    assert [n for n in run_names if n != "bo"] == per_launch * 3
    assert allocs == 3 * 3                               # IN, OUT, PARAMS per launch, once
    call = _calls(fake, "kernel.call")[0]
    assert call["args"][0] == 3 and call["args"][1] == instr_id
    assert call["args"][2] == len(INSTR["d_sq"])
    groups = {b["id"]: b["group"] for b in bo_calls}
    assert [groups[i] - GROUP_BASE for i in call["args"][3:]] == \
        [ARG_IN, ARG_OUT, ARG_WEIGHTS, ARG_PARAMS]
    assert all(w["timeout_ms"] == 1234 for w in _calls(fake, "run.wait"))
    syncs_back = [d for n, d in fake.calls if n == "bo.sync"
                  and d["direction"] == "XCL_BO_SYNC_BO_FROM_DEVICE"]
    assert len(syncs_back) == 3


def test_instruction_words_reach_the_device(npu, tmp_path: Path) -> None:
    fake, dev = npu
    dev.load(make_program()).run({"x": _x(2)})
    seen = _calls(fake, "device.instructions")
    assert [s["n_words"] for s in seen] == [3, 2, 3]
    # .bin and .txt instruction files read to the same words the fake saw
    for name, fmt in (("d_sq", "bin"), ("d_da", "txt")):
        words = read_instructions(tmp_path / "xclbin" / f"{name}.insts.{fmt}")
        assert words.tolist() == INSTR[name]


def test_weights_uploaded_once_for_n_runs_and_contexts_reused(npu) -> None:
    fake, dev = npu
    loaded = dev.load(make_program())
    weight_bos = [b["id"] for b in _calls(fake, "bo")
                  if b["group"] == GROUP_BASE + ARG_WEIGHTS]
    assert len(weight_bos) == 3                       # one per launch
    for i in range(6):
        loaded.run({"x": _x(3, i)})
    for bo_id in weight_bos:
        assert len([d for d in _calls(fake, "bo.write") if d["bo"] == bo_id]) == 1
    # a second program on the same device reuses the registered designs and contexts
    dev.load(make_program(seed=1)).run({"x": _x(3)})
    assert len(_calls(fake, "hw_context")) == 2       # d_sq and d_da, once each
    assert len(_calls(fake, "register_xclbin")) == 2
    assert len(_calls(fake, "device")) == 1
    assert len(_calls(fake, "kernel.call")) == 7 * 3


def test_four_threads_on_the_npu_path(npu) -> None:
    fake, dev = npu
    prog = make_program()
    emu = EmulatorDevice().load(prog)
    loaded = dev.load(prog)
    xs = [_x(3 + i, i) for i in range(8)]
    got: dict[int, dict[str, np.ndarray]] = {}

    def work(t: int) -> None:
        for i in range(t, len(xs), 4):
            got[i] = loaded.run({"x": xs[i]})

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, x in enumerate(xs):
        want = emu.run({"x": x})
        for k in want:
            assert got[i][k].tobytes() == want[k].tobytes()


def test_invalid_timeout_is_rejected() -> None:
    with pytest.raises(ValueError, match="timeout_ms"):
        XrtDevice(make_fake_pyxrt(), timeout_ms=0)


def test_timeout_comes_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("XDNA_EP_NPU_TIMEOUT_MS", "2500")
    assert XrtDevice(make_fake_pyxrt()).timeout_ms == 2500
    assert XrtDevice(make_fake_pyxrt(), timeout_ms=7).timeout_ms == 7   # an argument wins
    monkeypatch.setenv("XDNA_EP_NPU_TIMEOUT_MS", "0")
    with pytest.raises(ValueError, match=r"\$XDNA_EP_NPU_TIMEOUT_MS='0' is not a command timeout"):
        XrtDevice(make_fake_pyxrt())
