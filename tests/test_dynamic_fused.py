"""Default (dynamic) mode in fused launches: the dynamic quantizes between a design's
stages are reduced on the array (kernels/common/dynamic_scale.h), so a Whisper encoder
layer is 2 launches (attn_block, ffn_ln_matmul) instead of 19 one-stage launches.
Grouping changes, arithmetic does not: the Python XrtDevice on the FAKE pyxrt (NOT
XRT, no NPU) gives the emulator's bytes with the fused launch count, and a NaN that
reaches a reduction raises the quantize contract's error from the flag the design
writes to OUT (tests/fakes/fake_hardware.py models the reducer with the host build
of the AIE code)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from npu_support import FakeNpu, npu_session, write_fake_designs
from plugin_support import plugin_session
from synthetic.graphs import encoder_layer

from xdna_ep._kernels.fused.scratch import DYNAMIC_OUT_ENTRIES
from xdna_ep.compile.api import CompileOptions, compile_plan
from xdna_ep.compile.build import group_launches
from xdna_ep.compile.program import Program
from xdna_ep.kernel_specs import manifest
from xdna_ep.ort.compile_cli import compile_to_epcontext
from xdna_ep.partition import partition_model
from xdna_ep.runtime import EmulatorDevice, XrtDevice
from xdna_ep.runtime.layout import LaunchParams, dynamic_form, reductions, scales_slot

from fakes.fake_pyxrt import make_fake_pyxrt  # isort: skip

FRONT = ["conv1d", "quantize", "gelu", "dequantize"] * 2 + ["add"]   # conv_frontend's dynamic form


def _program(layers: int, front_end: bool) -> Program:
    model = encoder_layer(d=384, heads=6, ffn=1536, t=64, layers=layers, front_end=front_end,
                          mels=80, seed=3)
    plan = partition_model(model, use_cost_model=False)
    progs = compile_plan(model, plan, CompileOptions(quantization="dynamic",
                                                     measure_sqnr=False))
    assert len(progs) == 1, plan
    return next(iter(progs.values()))


@pytest.fixture(scope="module")
def two_layers() -> Program:
    return _program(2, front_end=True)


def test_two_layer_encoder_is_two_launches_per_layer(two_layers: Program) -> None:
    designs = [ln.design for ln in two_layers.launches]
    assert designs[0] == "conv_frontend"     # the front end: ONE launch in dynamic mode too
    assert [st.kernel for st in two_layers.launches[0].stages] == FRONT
    assert designs[1:] == ["ln_matmul", "attn_block", "ffn_ln_matmul", "attn_block",
                                    "ffn_block", "layernorm"]      # + the final LayerNorm
    fused = two_layers.launches[1:-1]
    assert all(dynamic_form(ln.stages) for ln in fused)
    # one reduction per dynamic quantize: ln_matmul 1, attn_block 4 (q, k, v, o),
    # ffn_ln_matmul 3 (a, fc1 out with neg_limit, the next layer's a), ffn_block 2
    assert [len(reductions(ln.stages)) for ln in fused] == [1, 4, 3, 4, 2]
    assert [st.attrs.get("neg_limit", 0.0) for st in reductions(fused[2].stages)] == \
        [0.0, 4.0, 0.0]
    # the stages themselves, and their order, are what one-stage launches would run
    singles = group_launches(two_layers.stages(), None)
    assert [s for ln in singles for s in ln.stages] == list(two_layers.stages())
    assert len(singles) == len(FRONT) + 2 * 17 + 1       # 17 one-stage launches per layer


def test_fused_dynamic_launches_on_the_fake_npu_equal_the_emulator(
        two_layers: Program, tmp_path: Path) -> None:
    x = np.random.default_rng(11).standard_normal((1, 80, 128)).astype(np.float32)
    name = two_layers.inputs[0].name
    want = EmulatorDevice().load(two_layers).run({name: x})
    fake = make_fake_pyxrt()
    got = XrtDevice(fake, xclbin_dirs=[write_fake_designs(tmp_path / "x")]) \
        .load(two_layers).run({name: x})
    assert want.keys() == got.keys()
    assert all(got[k].tobytes() == want[k].tobytes() for k in want)
    assert [u.design for u in fake.hub.uploads] == [ln.design for ln in two_layers.launches]
    assert not [c for c, _ in fake.hub.calls if c in ("device.error", "device.reject")]
    # OUT of each dynamic form: the reducers' params slot (4 words per reduction), and in
    # the MLP designs the float32 fc1 output f, reserved for the padded rows
    for up, ln in zip(fake.hub.uploads, two_layers.launches, strict=True):
        if ln.design not in DYNAMIC_OUT_ENTRIES:
            continue
        out = {s.name: s for s in LaunchParams.decode(np.frombuffer(up.params, np.uint8))
               .outputs.slots}
        assert out[scales_slot(ln.design)].nbytes == 16 * len(reductions(ln.stages))
        if ln.design.startswith("ffn"):
            fc1 = next(st for st in ln.stages if st.kernel == "matmul")
            f = out[fc1.outputs[0]]
            assert f.dtype == "float32" and f.shape[-1] == 1536


def test_nan_reaching_a_reduction_raises_the_quantize_contract_error(tmp_path: Path) -> None:
    """A NaN in a fused launch's input: the reducer flags it, the design stops, the host
    reads the flag from OUT and raises what the emulator raises (no device error)."""
    prog = _program(1, front_end=False)
    assert [ln.design for ln in prog.launches][:2] == ["ln_matmul", "attn_block"]
    name = prog.inputs[0].name
    x = np.random.default_rng(2).standard_normal((1, 64, 384)).astype(np.float32)
    x[0, 17, 5] = np.nan
    with pytest.raises(ValueError, match="NaN or inf") as emu:
        EmulatorDevice().load(prog).run({name: x})
    fake = make_fake_pyxrt()
    dev = XrtDevice(fake, xclbin_dirs=[write_fake_designs(tmp_path / "x")]).load(prog)
    with pytest.raises(ValueError, match="NaN or inf: no dynamic int8 scale exists") as npu:
        dev.run({name: x})
    assert "ln_matmul" in str(npu.value) and "NaN or inf" in str(emu.value)
    assert [u.design for u in fake.hub.uploads] == ["ln_matmul"]
    assert not [c for c, _ in fake.hub.calls if c in ("device.error", "device.reject")]
    # the program stays usable: a finite input runs through every launch afterwards
    x[0, 17, 5] = 0.25
    want = EmulatorDevice().load(prog).run({name: x})
    got = dev.run({name: x})
    assert all(got[k].tobytes() == want[k].tobytes() for k in want)


def test_every_grouped_chain_is_a_design_form() -> None:
    """What grouping put into each fused launch is exactly that design's dynamic form."""
    prog = _program(2, front_end=False)
    m = manifest.load()
    for ln in prog.launches:
        if ln.design in m.designs:
            assert tuple(st.kernel for st in ln.stages) == m.designs[ln.design].dynamic_stages


def test_plugin_runs_the_fused_dynamic_launches_and_raises_on_the_flag(
        fake_npu: FakeNpu, tmp_path: Path) -> None:
    """The plugin's native NPU backend on the FAKE XRT library: a 2-layer encoder (no
    front end, so a NaN input reaches the first reduction) in default mode is 2
    launches per layer, equal to the emulator; a NaN input raises the quantize
    contract's error from the flag in OUT, not a device failure or a fallback."""
    onnx.save(encoder_layer(d=384, heads=6, ffn=1536, t=256, layers=2, seed=4),
              str(tmp_path / "m.onnx"))
    out = compile_to_epcontext(tmp_path / "m.onnx", tmp_path / "m_ctx.onnx",
                               options={"cache_dir": str(tmp_path / "cache"),
                                        "quantization": "dynamic"})
    x = np.random.default_rng(8).standard_normal((1, 256, 384)).astype(np.float32)
    want = plugin_session(out, {"device": "emulator"}).run(None, {"hidden_states": x})
    sess = npu_session(out, {"fallback": "error"})
    got = sess.run(None, {"hidden_states": x})
    assert all(g.tobytes() == w.tobytes() for g, w in zip(got, want, strict=True))
    assert [u.design for u in fake_npu.hardware.uploads] == [
        "ln_matmul", "attn_block", "ffn_ln_matmul", "attn_block", "ffn_block", "layernorm"]
    x[0, 9, 100] = np.nan
    fake_npu.reset()
    with pytest.raises(Exception, match="NaN or inf: no dynamic int8 scale exists"):
        sess.run(None, {"hidden_states": x})
    assert [u.design for u in fake_npu.hardware.uploads] == ["ln_matmul"]
    assert not fake_npu.calls("device.error") and not fake_npu.calls("device.reject")


def test_a_dynamic_form_runs_from_its_own_xclbin_never_the_static_one(
        two_layers: Program, tmp_path: Path) -> None:
    """A fused launch in dynamic mode loads its design's dynamic-form files
    (manifest dynamic_xclbin / dynamic_instructions: another runtime sequence); with
    only the static files present the load names the missing dynamic form instead of
    handing a dynamic launch to a static xclbin."""
    from xdna_ep.runtime import XdnaDeviceError

    fake = make_fake_pyxrt()
    folder = write_fake_designs(tmp_path / "all")
    XrtDevice(fake, xclbin_dirs=[folder]).load(two_layers)
    loaded = {Path(d["xclbin"]).name for c, d in fake.hub.calls if c == "kernel"}
    assert {"conv_frontend_dynamic.xclbin", "ln_matmul_dynamic.xclbin",
            "attn_block_dynamic.xclbin", "ffn_ln_matmul_dynamic.xclbin"} <= loaded
    assert not loaded & {"conv_frontend.xclbin", "ln_matmul.xclbin", "attn_block.xclbin"}
    static_only = write_fake_designs(tmp_path / "static", skip=(
        "conv_frontend.dynamic", "ln_matmul.dynamic", "attn_block.dynamic",
        "ffn_block.dynamic", "ffn_ln_matmul.dynamic"))
    with pytest.raises(XdnaDeviceError, match=r"missing xclbin for design "
                                              r"'conv_frontend\.dynamic'.*conv_frontend_dynamic"):
        XrtDevice(make_fake_pyxrt(), xclbin_dirs=[static_only]).load(two_layers)
