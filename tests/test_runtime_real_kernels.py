"""The runtime with the project's real kernels (no packed constants) through the FAKE pyxrt.

This checks the runtime's STAGES.md output rules against what the kernels
actually emit, and the xrt path's bytes against the emulator's, on every
kernel path this CPU supports (the `kernel_path` fixture of tests/conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xdna_ep.compile.program import Launch, Program, Stage, TensorSpec
from xdna_ep.kernels import registry
from xdna_ep.runtime import EmulatorDevice, XrtDevice

from fakes.fake_pyxrt import make_fake_pyxrt, write_fake_xclbin, write_instructions  # isort: skip


def _program() -> Program:
    launches = (
        Launch("quantize", (Stage("quantize", ("x",), ("q", "qs"), {}, {"dynamic": True}),)),
        Launch("gelu_dequantize", (
            Stage("gelu", ("q", "qs"), ("g", "gs"), {}, {"dynamic": True,
                                                          "approximate": "tanh"}),
            Stage("dequantize", ("g", "gs"), ("y",), {}, {"dynamic": True}))),
        Launch("add", (Stage("add", ("y", "x"), ("out",)),)),
    )
    return Program("real_kernels", (TensorSpec("x", "float32", ("B", "T", 384)),),
                   (TensorSpec("out", "float32", ("B", "T", 384)),
                    TensorSpec("gs", "float32", (1,))), launches, {})


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
    d.mkdir()
    manifest = {"designs": {}}
    for name in ("quantize", "gelu_dequantize", "add"):
        write_fake_xclbin(d / f"{name}.xclbin", name)
        write_instructions(d / f"{name}.insts.bin", [0x06030100, 0x1])
        manifest["designs"][name] = {"xclbin": f"{name}.xclbin", "insts": f"{name}.insts.bin"}
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


def test_packed_constants_need_prepare_device_in_the_fake(npu, tmp_path: Path) -> None:
    """matmul packs its weights for the NPU; the FAKE says plainly it cannot run them
    until the kernel offers prepare_device (see docs/RUNTIME.md)."""
    fake, _ = npu
    d = tmp_path / "mm"
    d.mkdir()
    write_fake_xclbin(d / "matmul.xclbin", "matmul")
    write_instructions(d / "matmul.insts.bin", [0x1])
    manifest = {"designs": {"matmul": {"xclbin": "matmul.xclbin", "insts": "matmul.insts.bin"}}}
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
    if getattr(spec, "prepare_device", None) is None:
        with pytest.raises(NotImplementedError, match="prepare_device"):
            loaded.run({"a": a})
    else:
        got = loaded.run({"a": a})["y"]
        assert got.tobytes() == EmulatorDevice().load(prog).run({"a": a})["y"].tobytes()
