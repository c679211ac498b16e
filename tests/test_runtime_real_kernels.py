"""The runtime with the project's real kernels through the FAKE pyxrt.

This checks the runtime's STAGES.md output rules against what the kernels
actually emit, and the xrt path's bytes against the emulator's, on every
kernel path this CPU supports (the `kernel_path` fixture of tests/conftest.py).
Kernels with packed device constants (matmul, layernorm, conv1d, static gelu,
static int8 add) run in the fake from the weights BO bytes alone, through
their prepare_device hooks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xdna_ep.compile.program import Launch, Program, Stage, TensorSpec
from xdna_ep.kernel_specs import registry
from xdna_ep.runtime import EmulatorDevice, XrtDevice

from fakes.fake_hardware import write_fake_designs_for  # isort: skip
from fakes.fake_pyxrt import make_fake_pyxrt  # isort: skip
from fakes.real_chain import ffn_chain_program  # isort: skip


def _program() -> Program:
    return ffn_chain_program("real_kernels")


def _reference(prog: Program, x: np.ndarray) -> dict[str, np.ndarray]:
    """The chain through each kernel's numpy integer reference (not the emulator)."""
    env = {"x": x}
    for st in prog.stages():
        outs = registry.get(st.kernel).reference({}, [env[b] for b in st.inputs], st.attrs)
        env.update(zip(st.outputs, outs, strict=True))
    return {"out": env["out"], "gs": env["gs"]}


@pytest.fixture()
def npu(tmp_path: Path):
    d = tmp_path / "xclbin"
    manifest = write_fake_designs_for(d, ("quantize", "gelu_dequantize", "add"))
    fake = make_fake_pyxrt()
    return fake, XrtDevice(fake, manifest=manifest, xclbin_dirs=[d])


def test_real_kernels_xrt_through_fake_equals_emulator_and_reference(npu, kernel_path) -> None:
    fake, dev = npu
    prog = _program()
    emu, on_npu = EmulatorDevice().load(prog), dev.load(prog)
    rng = np.random.default_rng(3)
    for shape in ((1, 1, 384), (2, 37, 384)):
        x = rng.normal(0, 2, shape).astype(np.float32)
        got, want, ref = on_npu.run({"x": x}), emu.run({"x": x}), _reference(prog, x)
        for k in ("out", "gs"):
            assert got[k].shape == want[k].shape == ref[k].shape
            assert got[k].tobytes() == want[k].tobytes() == ref[k].tobytes(), k
    assert not [d for n, d in fake.calls if n == "device.error"]


def test_packed_constants_run_through_prepare_device_in_the_fake(npu, tmp_path: Path) -> None:
    """matmul packs its weights for the NPU; the FAKE runs them through prepare_device
    (without it, it says plainly that it cannot: see docs/RUNTIME.md)."""
    fake, _ = npu
    d = tmp_path / "mm"
    manifest = write_fake_designs_for(d, ("matmul",))
    rng = np.random.default_rng(0)
    consts = {"w": rng.integers(-127, 128, (64, 32), dtype=np.int8),
              "ws": np.full(32, 0.01, np.float32)}
    prog = Program("mm", (TensorSpec("a", "int8", ("M", 64)),),
                   (TensorSpec("y", "float32", ("M", 32)),),
                   (Launch("matmul", (Stage("matmul", ("a",), ("y",),
                                            {"weight": "w", "w_scale": "ws"},
                                            {"out": "float32", "in_scale": 0.05}),)),), consts)
    spec = registry.get("matmul")
    loaded = XrtDevice(make_fake_pyxrt(), manifest=manifest, xclbin_dirs=[d]).load(prog)
    a = rng.integers(-127, 128, (4, 64), dtype=np.int8)
    assert spec.prepare_device is not None
    got = loaded.run({"a": a})["y"]
    assert got.tobytes() == EmulatorDevice().load(prog).run({"a": a})["y"].tobytes()


_PACKED = ("conv1d", "layernorm", "matmul", "gelu", "add")


def _packed_program() -> Program:
    """conv1d -> layernorm(int8) -> split matmul (two int8 blocks) -> static gelu ->
    static int8 add -> float32 matmul; plus a float32-input matmul on the conv output."""
    from xdna_ep.kernel_specs.gelu import build_table

    rng = np.random.default_rng(21)
    consts = {
        "cw": rng.integers(-127, 128, (16, 8, 3), dtype=np.int8),
        "cws": rng.uniform(0.005, 0.02, 16).astype(np.float32),
        "cb": rng.normal(0, 0.1, 16).astype(np.float32),
        "g": rng.uniform(0.5, 1.5, 20).astype(np.float32),
        "b": rng.normal(0, 0.1, 20).astype(np.float32),
        "w1": rng.integers(-127, 128, (20, 24), dtype=np.int8),
        "w1s": rng.uniform(0.002, 0.01, 24).astype(np.float32),
        "w1b": rng.normal(0, 0.2, 24).astype(np.float32),
        "table": build_table(0.05, 0.04, "none"),
        "w2": rng.integers(-127, 128, (16, 4), dtype=np.int8),
        "w2s": rng.uniform(0.002, 0.01, 4).astype(np.float32),
        "w3": rng.integers(-127, 128, (20, 5), dtype=np.int8),
        "w3s": rng.uniform(0.002, 0.01, 5).astype(np.float32),
    }
    st = [
        Stage("conv1d", ("x",), ("c",), {"weight": "cw", "w_scale": "cws", "bias": "cb"},
              {"stride": 1, "pad": 1, "in_scale": 0.02, "out": "float32"}),
        Stage("layernorm", ("c",), ("h",), {"gamma": "g", "beta": "b"},
              {"epsilon": 1e-5, "out": "int8", "out_scale": 0.03}),
        Stage("matmul", ("h",), ("q", "r"), {"weight": "w1", "w_scale": "w1s", "bias": "w1b"},
              {"out": "int8", "in_scale": 0.03, "split": [8, 16], "out_scales": [0.06, 0.05]}),
        Stage("gelu", ("r",), ("gr",), {"table": "table"},
              {"approximate": "none", "in_scale": 0.05, "out_scale": 0.04}),
        Stage("add", ("gr", "r"), ("s",), {}, {"a_scale": 0.04, "b_scale": 0.05,
                                               "out_scale": 0.07}),
        Stage("matmul", ("s",), ("y",), {"weight": "w2", "w_scale": "w2s"},
              {"out": "float32", "in_scale": 0.07}),
        Stage("matmul", ("c",), ("z",), {"weight": "w3", "w_scale": "w3s"},
              {"out": "float32", "in_scale": 0.1}),
    ]
    return Program("packed", (TensorSpec("x", "float32", (1, 8, 20)),),
                   (TensorSpec("y", "float32", (1, 16, 4)), TensorSpec("q", "int8", (1, 16, 8)),
                    TensorSpec("z", "float32", (1, 16, 5))),
                   tuple(Launch(s.kernel, (s,)) for s in st), consts)


def test_packed_kernels_xrt_through_fake_equal_emulator_and_reference(tmp_path: Path,
                                                                      kernel_path) -> None:
    d = tmp_path / "xclbin"
    manifest = write_fake_designs_for(d, _PACKED)
    fake = make_fake_pyxrt()
    prog = _packed_program()
    for name in _PACKED:
        assert registry.get(name).prepare_device is not None, name
    on_npu = XrtDevice(fake, manifest=manifest, xclbin_dirs=[d]).load(prog)
    emu = EmulatorDevice().load(prog)
    rng = np.random.default_rng(22)
    for _ in range(2):
        x = rng.normal(0, 1.5, (1, 8, 20)).astype(np.float32)
        got, want = on_npu.run({"x": x}), emu.run({"x": x})
        env = {"x": x}  # the chain through each kernel's numpy reference
        for st in prog.stages():
            consts = {r: prog.constants[c] for r, c in st.consts.items()}
            env.update(zip(st.outputs, registry.get(st.kernel).reference(
                consts, [env[b] for b in st.inputs], st.attrs), strict=True))
        for k in ("y", "q", "z"):
            assert got[k].shape == want[k].shape == env[k].shape
            assert got[k].tobytes() == want[k].tobytes() == env[k].tobytes(), k
    assert not [c for n, c in fake.calls if n == "device.error"]
    assert [c for n, c in fake.calls if n == "device.completed"]


def _fake_npu_for(prog: Program, root: Path) -> XrtDevice:
    """An XrtDevice over the FAKE pyxrt with one FAKE xclbin per design of `prog`."""
    d = root / "xclbin"
    manifest = write_fake_designs_for(d, [ln.design for ln in prog.launches])
    return XrtDevice(make_fake_pyxrt(), manifest=manifest, xclbin_dirs=[d])


@pytest.mark.parametrize(("batch", "mode"), [(1, "static"), (2, "static"), (2, "dynamic")])
def test_conv_frontend_launch_with_position_table_xrt_through_fake(tmp_path: Path, batch: int,
                                                                   mode: str) -> None:
    """The compiled front end (conv1d, gelu, conv1d, gelu, transposed position add) as
    ONE conv_frontend launch: the FAKE pyxrt rebuilds every stage from the weights BO
    bytes alone (the position table included, tile-padded) and, reading the mel from
    the design's zero-bordered rows and writing y at its padded rows per batch,
    gives the emulator's bytes, with calibrated scales and in dynamic mode."""
    from synthetic.regions import conv_frontend

    from xdna_ep.compile import CompileOptions, compile_region

    sm = conv_frontend(t=60, seed=7, positions=True, batch=batch)
    prog, plan = compile_region(sm.model, sm.region,
                                CompileOptions(mode, sm.samples(2, seed=1)))
    assert prog is not None, plan.fallbacks
    assert [ln.design for ln in prog.launches] == ["conv_frontend"]
    dev = _fake_npu_for(prog, tmp_path)
    emu, on_npu = EmulatorDevice().load(prog), dev.load(prog)
    x = sm.samples(1, seed=9)[0][sm.input_name]
    got, want = on_npu.run({sm.input_name: x}), emu.run({sm.input_name: x})
    name = prog.outputs[0].name
    assert got[name].shape == (batch, 30, 384)
    assert got[name].tobytes() == want[name].tobytes()
    assert not [c for n, c in dev.xrt.calls if n == "device.error"]


def test_ffn_ln_matmul_launch_xrt_through_fake(tmp_path: Path) -> None:
    """Two encoder layers: layer 0's MLP and layer 1's layernorm -> q/k/v run as one
    ffn_ln_matmul launch (its split q/k/v outputs included); through the FAKE pyxrt
    the bytes equal the emulator's."""
    from synthetic.regions import encoder_layer

    from xdna_ep.compile import CompileOptions, compile_plan
    from xdna_ep.partition import partition_model

    sm = encoder_layer(t=40, layers=2, seed=4)
    plan = partition_model(sm.model, use_cost_model=False)
    progs = compile_plan(sm.model, plan, CompileOptions("static", sm.samples(2, seed=5)))
    (prog,) = progs.values()
    assert "ffn_ln_matmul" in [ln.design for ln in prog.launches]
    dev = _fake_npu_for(prog, tmp_path)
    emu, on_npu = EmulatorDevice().load(prog), dev.load(prog)
    feed = {k: v for k, v in sm.samples(1, seed=6)[0].items()}
    got, want = on_npu.run(feed), emu.run(feed)
    for k in want:
        assert got[k].tobytes() == want[k].tobytes(), k
