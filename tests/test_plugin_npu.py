"""The plugin's native NPU backend (provider/npu/, libxdna_ep_npu.so) through ONNX
Runtime, built against the FAKE XRT library (tests/fakes/fake_xrt, NOT XRT; no NPU
here): outputs bit-identical to the Python emulator, and the bytes it uploads equal
what the Python XrtDevice uploads through the FAKE pyxrt for the same program and
inputs (both fakes play the hardware with tests/fakes/fake_hardware.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
from npu_support import EP, FakeNpu, npu_session
from plugin_support import one_stage_program, plugin_session, write_program_model
from synthetic.graphs import encoder_layer
from test_plugin_stages import CASES

from xdna_ep.compile.program import Launch, Program, Stage, TensorSpec
from xdna_ep.ort.compile_cli import compile_to_epcontext
from xdna_ep.runtime import EmulatorDevice, XrtDevice
from xdna_ep.runtime.errors import XdnaDeviceError

from fakes.fake_pyxrt import make_fake_pyxrt  # isort: skip


def concrete(spec: dict, feeds: dict[str, np.ndarray]) -> dict:
    """The case with every symbolic dim sized from its feeds (an NPU image needs
    concrete shapes)."""
    sizes: dict[str, int] = {}
    for t in spec["inputs"]:
        for d, n in zip(t.shape, feeds[t.name].shape, strict=True):
            if isinstance(d, str):
                sizes[d] = int(n)

    def fix(ts: list[TensorSpec]) -> list[TensorSpec]:
        return [TensorSpec(t.name, t.dtype, tuple(sizes.get(d, d) if isinstance(d, str) else d
                                                  for d in t.shape)) for t in ts]

    return {**spec, "inputs": fix(spec["inputs"]), "outputs": fix(spec["outputs"])}


def pyxrt_run(program: Program, feeds: dict[str, np.ndarray], xclbin_dir: Path):
    """The Python XrtDevice on the FAKE pyxrt: (outputs, or why it refuses the program
    on the NPU, hardware)."""
    fake = make_fake_pyxrt()
    dev = XrtDevice(fake, xclbin_dirs=[xclbin_dir])
    try:
        return dev.load(program).run(feeds), fake.hub
    except (XdnaDeviceError, ValueError, NotImplementedError) as exc:
        return exc, fake.hub


# every one-stage kind, the broadcasting adds (b stored once, repeated by the add
# design's DMA pattern), the position form and dynamic scales included, runs on the NPU
REFUSED_ON_THE_NPU: set[str] = set()


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_stage_kind_on_the_npu_matches_emulator_and_pyxrt_bytes(case, fake_npu: FakeNpu,
                                                                   tmp_path: Path) -> None:
    spec, feeds = CASES[case]
    prog = one_stage_program(case, **concrete(spec, feeds))
    want = EmulatorDevice().load(prog).run(feeds)
    py_out, py_hw = pyxrt_run(prog, feeds, fake_npu.xclbin_dir)
    model = write_program_model(prog, tmp_path / f"{case}.onnx")
    assert isinstance(py_out, Exception) == (case in REFUSED_ON_THE_NPU), (case, py_out)
    if isinstance(py_out, Exception):
        # the pyxrt path refuses this program on the NPU: so does the plugin
        with pytest.raises(Exception, match="cannot run on the NPU"):
            npu_session(model, {"fallback": "error"})
        return
    sess = npu_session(model, {"fallback": "error"})
    got = sess.run(None, feeds)
    for t, g in zip(prog.outputs, got, strict=True):
        assert g.dtype == want[t.name].dtype and g.shape == want[t.name].shape, t.name
        assert g.tobytes() == want[t.name].tobytes(), f"{case}: output {t.name} differs"
        assert g.tobytes() == py_out[t.name].tobytes()
    ours, theirs = fake_npu.hardware.uploads, py_hw.uploads
    assert len(ours) == len(theirs) == len(prog.launches)
    for a, b in zip(ours, theirs, strict=True):
        assert a.design == b.design
        assert a.instructions == b.instructions
        assert a.weights == b.weights, f"{case}: WEIGHTS bytes differ"
        assert a.params == b.params, f"{case}: PARAMS bytes differ"
        assert a.inputs == b.inputs, f"{case}: IN bytes differ"
    assert not fake_npu.calls("device.error")


def test_every_run_goes_to_the_npu_and_uploads_weights_once(fake_npu: FakeNpu,
                                                            tmp_path: Path) -> None:
    spec, feeds = CASES["matmul_dynamic_f32"]
    prog = one_stage_program("mm", **concrete(spec, feeds))
    sess = npu_session(write_program_model(prog, tmp_path / "mm.onnx"), {"fallback": "error"})
    for _ in range(3):
        sess.run(None, feeds)
    groups = [c["group"] for c in fake_npu.calls("bo")]
    assert len(fake_npu.calls("device")) == 1
    assert len(fake_npu.calls("register_xclbin")) == 1
    assert groups.count(101) == 1          # instruction BO: once per design
    assert groups.count(105) == 1          # WEIGHTS: once per launch
    assert groups.count(103) == groups.count(104) == groups.count(106) == 1  # reused per run
    assert len(fake_npu.calls("device.completed")) == 3
    writes = [c["bo"] for c in fake_npu.calls("bo.write")]
    bo_ids = {c["group"]: c["id"] for c in fake_npu.calls("bo")}
    assert writes.count(bo_ids[105]) == 1 and writes.count(bo_ids[101]) == 1
    assert writes.count(bo_ids[103]) == 3 and writes.count(bo_ids[106]) == 3
    waits = fake_npu.calls("run.wait")
    assert len(waits) == 3 and all(w["timeout_ms"] == 10_000 for w in waits)


def test_two_launches_of_one_design_share_its_registration(fake_npu: FakeNpu,
                                                          tmp_path: Path) -> None:
    """A program of two gelu launches (y crosses from the first launch's OUT to the
    second's IN): the design is registered and its instruction BO written once, each
    launch gets its own WEIGHTS and PARAMS."""
    attrs = {"in_scale": 0.03, "out_scale": 0.02, "approximate": "tanh"}
    prog = Program("two", (TensorSpec("x", "int8", (6, 5)),), (TensorSpec("z", "int8", (6, 5)),),
                   (Launch("gelu", (Stage("gelu", ("x",), ("y",), {}, attrs),)),
                    Launch("gelu", (Stage("gelu", ("y",), ("z",), {},
                                          {**attrs, "out_offset": -0.1}),))))
    prog.validate()
    feeds = {"x": np.random.default_rng(2).integers(-127, 128, (6, 5), dtype=np.int8)}
    sess = npu_session(write_program_model(prog, tmp_path / "two.onnx"), {"fallback": "error"})
    (z,) = sess.run(None, feeds)
    assert z.tobytes() == EmulatorDevice().load(prog).run(feeds)["z"].tobytes()
    py_out, py_hw = pyxrt_run(prog, feeds, fake_npu.xclbin_dir)
    assert [u.params for u in fake_npu.hardware.uploads] == [u.params for u in py_hw.uploads]
    assert [u.inputs for u in fake_npu.hardware.uploads] == [u.inputs for u in py_hw.uploads]
    assert len(fake_npu.calls("register_xclbin")) == 1
    groups = [c["group"] for c in fake_npu.calls("bo")]
    assert groups.count(101) == 1 and groups.count(105) == 2
    assert len(fake_npu.calls("device.completed")) == 2


@pytest.mark.parametrize(("batch", "mode"), [(1, "static"), (2, "static"), (1, "dynamic"),
                                             (2, "dynamic")])
def test_conv_frontend_launch_bytes_equal_pyxrt(batch: int, mode: str, fake_npu: FakeNpu,
                                                tmp_path: Path) -> None:
    """The compiled front end as ONE conv_frontend launch, with calibrated scales and in
    the default dynamic mode (the scales reduced on the array): the mel goes into IN as
    the design's zero-bordered rows and y comes back from its padded rows per batch
    (framed slots packed and unpacked in C++), OUT starts zeroed (private scratch)."""
    from synthetic.regions import conv_frontend

    from xdna_ep.compile import CompileOptions, compile_region

    sm = conv_frontend(t=60, seed=7, positions=True, batch=batch)
    prog, plan = compile_region(sm.model, sm.region, CompileOptions(mode, sm.samples(2, seed=1)))
    assert prog is not None and [ln.design for ln in prog.launches] == ["conv_frontend"]
    feeds = {sm.input_name: sm.samples(1, seed=9)[0][sm.input_name]}
    want = EmulatorDevice().load(prog).run(feeds)
    prog = dataclasses.replace(   # the shapes of these feeds (an NPU image needs them)
        prog, inputs=tuple(TensorSpec(t.name, t.dtype, feeds[t.name].shape) for t in prog.inputs),
        outputs=tuple(TensorSpec(t.name, t.dtype, want[t.name].shape) for t in prog.outputs))
    sess = npu_session(write_program_model(prog, tmp_path / "cf.onnx"), {"fallback": "error"})
    got = sess.run(None, feeds)
    assert got[0].tobytes() == want[prog.outputs[0].name].tobytes()
    py_out, py_hw = pyxrt_run(prog, feeds, fake_npu.xclbin_dir)
    assert not isinstance(py_out, Exception)
    (ours,), (theirs,) = fake_npu.hardware.uploads, py_hw.uploads
    assert (ours.inputs, ours.weights, ours.params) == (theirs.inputs, theirs.weights,
                                                        theirs.params)
    out_bo = next(c["id"] for c in fake_npu.calls("bo") if c["group"] == 104)
    assert [c["bo"] for c in fake_npu.calls("bo.write")].count(out_bo) == 1   # zeroed once


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_dynamic_conv_frontend_non_finite_input_raises_the_quantize_error(
        bad: float, fake_npu: FakeNpu, tmp_path: Path) -> None:
    """A NaN/Inf mel under the dynamic front end: the design's scale reduction flags it
    (OUT FLAGS scratch, modelled by the FAKE hardware, which completes the launch) and
    both NPU paths raise the quantize contract's error, as the emulator does; it is
    bad input, not a device failure, so the plugin's region stays on the NPU."""
    from synthetic.regions import conv_frontend

    from xdna_ep.compile import CompileOptions, compile_region

    sm = conv_frontend(t=60, seed=7, positions=True)
    prog, _ = compile_region(sm.model, sm.region, CompileOptions("dynamic"))
    assert prog is not None and [ln.design for ln in prog.launches] == ["conv_frontend"]
    good = sm.samples(1, seed=9)[0][sm.input_name]
    bad_x = good.copy()
    bad_x[0, 5, 17] = bad
    with pytest.raises(ValueError, match="Inf or NaN"):   # the emulator's conv1d
        EmulatorDevice().load(prog).run({sm.input_name: bad_x})
    want = EmulatorDevice().load(prog).run({sm.input_name: good})[prog.outputs[0].name]
    prog = dataclasses.replace(
        prog, inputs=tuple(TensorSpec(t.name, t.dtype, good.shape) for t in prog.inputs),
        outputs=tuple(TensorSpec(t.name, t.dtype, want.shape) for t in prog.outputs))
    sess = npu_session(write_program_model(prog, tmp_path / "cf.onnx"))
    with pytest.raises(Exception, match="NaN or inf: no dynamic int8 scale exists"):
        sess.run(None, {sm.input_name: bad_x})
    assert fake_npu.calls("device.completed") and not fake_npu.calls("device.error")
    assert sess.run(None, {sm.input_name: good})[0].tobytes() == want.tobytes()
    assert len(fake_npu.calls("device.completed")) == 2      # still on the NPU
    py_out, py_hw = pyxrt_run(prog, {sm.input_name: bad_x}, fake_npu.xclbin_dir)
    assert isinstance(py_out, ValueError) and "NaN or inf" in str(py_out)
    assert sm.input_name in str(py_out)


# -- a compiled encoder layer (fused designs, framed slots) -----------------------------------
@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("enc_npu")
    onnx.save(encoder_layer(d=256, heads=4, ffn=1024, t=200, front_end=True, mels=80),
              str(d / "m.onnx"))
    x = np.random.default_rng(5).standard_normal((1, 80, 400)).astype(np.float32)
    return d, x


@pytest.mark.parametrize("quantization", ["dynamic", "static"])
def test_compiled_encoder_layer_on_the_npu_equals_the_emulator(encoder, quantization,
                                                               fake_npu: FakeNpu,
                                                               tmp_path: Path) -> None:
    d, x = encoder
    opts = {"cache_dir": str(d / "cache"), "quantization": quantization}
    if quantization == "static":
        np.savez(tmp_path / "calib.npz", input_features=x * 0.9)
        opts["calibration"] = str(tmp_path / "calib.npz")
    out = compile_to_epcontext(d / "m.onnx", tmp_path / "m_ctx.onnx", options=opts)
    want = plugin_session(out, {"device": "emulator"}).run(None, {"input_features": x})
    sess = npu_session(out, {"fallback": "error"})
    assert sess.get_providers() == [EP, "CPUExecutionProvider"]
    got = sess.run(None, {"input_features": x})
    assert all(g.tobytes() == w.tobytes() for g, w in zip(got, want, strict=True))
    designs = {u.design for u in fake_npu.hardware.uploads}
    if quantization == "static":   # fused designs: framed IN/OUT slots, zeroed scratch
        assert {"conv_frontend", "ffn_block", "attn_block"} <= designs
    else:   # dynamic: every scale reduced on the array, the front end included
        assert {"conv_frontend", "ln_matmul", "attn_block", "ffn_block"} <= designs
        assert not {"matmul", "attention", "conv1d"} & designs
    assert not fake_npu.calls("device.error") and not fake_npu.calls("device.reject")


@pytest.mark.parametrize("dims", [None, "batch_size=1,mel_frames=400"])
def test_encoder_layer_with_a_symbolic_batch_gets_images_for_the_calibrated_shape(
        dims: str | None, fake_npu: FakeNpu, tmp_path: Path) -> None:
    """Batch and frames symbolic, sized only by the calibration arrays (batch 1), or by
    provider option dims (xdna-ep compile --dims): every launch has the image of that
    shape, batch 1 runs on the FAKE NPU with fallback=error and equals the emulator;
    batch 2 is an error naming both shapes (calibration) or ONNX Runtime's error naming
    the fixed input dims (dims)."""
    onnx.save(encoder_layer(d=256, heads=4, ffn=1024, t=200, front_end=True, mels=80,
                            symbolic=True), str(tmp_path / "m.onnx"))
    x = np.random.default_rng(6).standard_normal((1, 80, 400)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", input_features=x * 0.9)
    opts = {"cache_dir": str(tmp_path / "cache"), "quantization": "static",
            "calibration": str(tmp_path / "calib.npz")}
    if dims is not None:
        opts["dims"] = dims
    out = compile_to_epcontext(tmp_path / "m.onnx", tmp_path / "m_ctx.onnx", options=opts)
    want = plugin_session(out, {"device": "emulator"}).run(None, {"input_features": x})
    sess = npu_session(out, {"fallback": "error"})       # a launch without image: an error
    got = sess.run(None, {"input_features": x})
    assert all(g.tobytes() == w.tobytes() for g, w in zip(got, want, strict=True))
    assert {"conv_frontend", "ffn_block", "attn_block"} <= {u.design for u in
                                                            fake_npu.hardware.uploads}
    # calibration sizes promise nothing about run shapes: the plugin names both shapes;
    # dims pin the compiled model (its Shape nodes may be folded): its inputs are fixed
    # and ONNX Runtime refuses batch 2 before any region runs
    other = (r"compiled for the NPU at shape input_features\[1,80,400\]; this run's shape "
             r"input_features\[2,80,400\]" if dims is None else
             r"invalid dimensions for input: input_features")
    with pytest.raises(Exception, match=other):
        sess.run(None, {"input_features": np.concatenate([x, x])})
