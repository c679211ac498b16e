"""The binary words at the start of PARAMS (runtime/layout.py, layout version 2): the
attention designs (one-stage attention, attn_block in both forms) read their words
from there (kernels/attention/aie/attention_aie.cc `enum Param`, attn_dynamic_aie.cc
words 10/11), from ONE host definition (kernel_specs/attention.py device_words). The
FAKE hardware (tests/fakes/fake_hardware.py, NOT XRT, no NPU) computes attention from
those words, so a host that writes a wrong word gets wrong bytes or a FAKE device
error, never the emulator's bytes by accident."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from npu_support import FakeNpu, npu_session, write_fake_designs
from plugin_support import one_stage_program, write_program_model
from synthetic.regions import encoder_layer
from test_plugin_stages import CASES

from xdna_ep.compile import CompileOptions, compile_plan
from xdna_ep.compile.program import Program
from xdna_ep.kernel_specs import attention as att
from xdna_ep.ort import npu_image
from xdna_ep.partition import partition_model
from xdna_ep.runtime import EmulatorDevice, XrtDevice
from xdna_ep.runtime import xrt as xrt_mod
from xdna_ep.runtime.errors import XdnaDeviceError
from xdna_ep.runtime.layout import WORDS, LaunchParams

from fakes.fake_pyxrt import make_fake_pyxrt  # isort: skip


def _case_program(case: str) -> tuple[Program, dict[str, np.ndarray]]:
    spec, feeds = CASES[case]
    return one_stage_program(case, **spec), feeds


def test_static_words_are_the_integers_prepare_call_derives() -> None:
    spec, feeds = CASES["attention_static_int8_mask"]
    attrs = spec["attrs"]
    c = att._stage_call(att._parse_attrs(attrs), [feeds[n] for n in ("q", "k", "v", "m")])
    w = att.device_words(attrs, feeds["q"].shape, feeds["k"].shape)
    assert w.dtype == np.int32 and w.shape == (WORDS,)
    assert list(w[:10]) == [c.logit_mult, c.logit_shift, 0, 0, 5, 0, c.out_mult, c.out_shift,
                            np.float32(0.04).view(np.int32), 1]
    assert w[10:12].view(np.float64)[0] == 0.5 and not w[12:].any()


def test_dynamic_words_leave_the_scale_words_to_the_array() -> None:
    spec, feeds = CASES["attention_dynamic_causal"]
    w = att.device_words(spec["attrs"], feeds["q"].shape, feeds["k"].shape)
    # causal, past_len = Tk - Tq = 3, Tk 6, one group per head, softmax_scale's bits
    assert list(w[:10]) == [0, 0, 1, 3, 6, 0, 0, 0, 0, 1]
    assert w[10:12].view(np.float64)[0] == 0.7
    tall = att.device_words(spec["attrs"], (1, 300, 8), (1, 300, 8))
    assert tall[att.W_GROUPS_PER_HEAD] == 3 and tall[att.W_PAST_LEN] == 0


def test_designs_without_words_get_zeros() -> None:
    """softmax (a design that reads its own params, not written: docs/RUNTIME.md)."""
    prog, feeds = _case_program("softmax_dynamic")
    fake = make_fake_pyxrt()
    _run(prog, feeds, fake)
    (up,) = fake.hub.uploads
    assert LaunchParams.decode(np.frombuffer(up.params, np.uint8)).words == (0,) * WORDS


_FAKE_DIRS: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def fake_designs(tmp_path_factory: pytest.TempPathFactory):
    """The FAKE xclbins of every manifest design, for the pyxrt runs below."""
    _FAKE_DIRS.append(write_fake_designs(tmp_path_factory.mktemp("params_words")))
    yield
    _FAKE_DIRS.pop()


def _run(prog: Program, feeds: dict[str, np.ndarray], fake=None) -> dict[str, np.ndarray]:
    """The program on the Python XrtDevice over the FAKE pyxrt."""
    fake = fake or make_fake_pyxrt()
    return XrtDevice(fake, xclbin_dirs=[_FAKE_DIRS[-1]]).load(prog).run(feeds)


@pytest.fixture
def corrupt(monkeypatch: pytest.MonkeyPatch):
    """corrupt(design, {word: value}): the pyxrt runtime (per run) and the payload's
    NPU image (at compile time, the plugin's path) write these words into the PARAMS
    of that design's launches instead of the host's."""
    def install(design: str, words: dict[int, int], where=(xrt_mod, npu_image)) -> None:
        plan = xrt_mod.plan_launch

        def wrong(launch, *a, **k):
            p = plan(launch, *a, **k)
            if launch.design != design:
                return p
            w = list(p.words)
            for i, v in words.items():
                w[i] = v
            return dataclasses.replace(p, words=tuple(w))
        for mod in where:
            monkeypatch.setattr(mod, "plan_launch", wrong)
    return install


@pytest.mark.parametrize("case", ["attention_static_int8_mask", "attention_dynamic_causal"])
def test_one_stage_attention_runs_from_its_words(case: str, corrupt) -> None:
    prog, feeds = _case_program(case)
    want = EmulatorDevice().load(prog).run(feeds)
    got = _run(prog, feeds)
    assert all(got[k].tobytes() == want[k].tobytes() for k in want)
    # a causal flag the host did not ask for: the FAKE computes a different result
    corrupt("attention", {att.W_CAUSAL: 0 if "causal" in case else 1})
    bad = _run(prog, feeds)
    assert bad["o"].tobytes() != want["o"].tobytes()


def test_words_that_contradict_the_shapes_are_a_device_error(corrupt) -> None:
    prog, feeds = _case_program("attention_static_int8_mask")
    corrupt("attention", {att.W_KEY_LEN: 64})
    fake = make_fake_pyxrt()
    with pytest.raises(XdnaDeviceError):
        _run(prog, feeds, fake)
    errors = [d["error"] for c, d in fake.hub.calls if c == "device.error"]
    assert errors and "PARAMS words say Tk 64" in errors[0]


@pytest.fixture(scope="module", params=["static", "dynamic"])
def layer(request) -> tuple[str, Program, dict[str, np.ndarray]]:
    sm = encoder_layer(d=128, heads=2, ffn=256, t=40, seed=2)
    samples = sm.samples(2, seed=3)
    plan = partition_model(sm.model, use_cost_model=False)
    progs = compile_plan(sm.model, plan, CompileOptions(request.param, samples, fuse_qkv=True))
    (prog,) = progs.values()
    assert "attn_block" in [ln.design for ln in prog.launches]
    return request.param, prog, samples[0]


def test_attn_block_runs_from_its_words(layer, corrupt) -> None:
    mode, prog, feeds = layer
    want = EmulatorDevice().load(prog).run(feeds)
    fake = make_fake_pyxrt()
    got = _run(prog, feeds, fake)
    assert all(got[k].tobytes() == want[k].tobytes() for k in want)
    (st,) = [s for ln in prog.launches if ln.design == "attn_block" for s in ln.stages
             if s.kernel == "attention"]
    up = next(u for u in fake.hub.uploads if u.design == "attn_block")
    words = LaunchParams.decode(np.frombuffer(up.params, np.uint8)).words
    per = 2 if mode == "dynamic" else 1
    shapes = {t.name: t.shape for t in prog.inputs}
    q = feeds[prog.inputs[0].name].shape
    assert words[att.W_KEY_LEN] == q[1] and words[att.W_GROUPS_PER_HEAD] == 1, shapes
    assert len(st.inputs) == 3 * per
    # the static form reads its logit multiplier from PARAMS; the dynamic form makes it on
    # the array from the reduced scales and softmax_scale's bits (words 10/11)
    ss = np.array([st.attrs["softmax_scale"] * 2], np.float64).view(np.int32)
    corrupt("attn_block", {att.W_LOGIT_MULT: words[att.W_LOGIT_MULT] // 2}
            if mode == "static" else {att.W_SOFTMAX_SCALE_LO: int(ss[0]),
                                      att.W_SOFTMAX_SCALE_HI: int(ss[1])})
    bad = _run(prog, feeds)
    assert any(bad[k].tobytes() != want[k].tobytes() for k in want)


def test_plugin_npu_path_runs_attention_from_the_image_words(corrupt, fake_npu: FakeNpu,
                                                              tmp_path: Path) -> None:
    """The plugin uploads the compile-time image's PARAMS as is (provider/npu_runner.cc;
    a run of another shape runs on the emulator), so its words are the image's: right
    ones give the emulator's bytes on the FAKE XRT backend, a wrong one does not."""
    prog, feeds = _case_program("attention_static_int8_mask")
    want = EmulatorDevice().load(prog).run(feeds)["o"]
    (got,) = npu_session(write_program_model(prog, tmp_path / "a.onnx"),
                         {"fallback": "error"}).run(None, feeds)
    assert got.tobytes() == want.tobytes()
    (up,) = fake_npu.hardware.uploads
    spec, _ = CASES["attention_static_int8_mask"]
    assert np.array_equal(LaunchParams.decode(np.frombuffer(up.params, np.uint8)).words,
                          att.device_words(spec["attrs"], feeds["q"].shape, feeds["k"].shape))
    corrupt("attention", {att.W_CAUSAL: 1}, where=(npu_image,))
    (bad,) = npu_session(write_program_model(prog, tmp_path / "b.onnx"),
                         {"fallback": "error"}).run(None, feeds)
    assert bad.tobytes() != want.tobytes()
    assert not fake_npu.calls("device.error")
