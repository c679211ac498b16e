"""FAKE kernels and a FAKE NPU machine for the runtime tests.

The real kernels (matmul, gelu, ...) are written in parallel and are not what
the runtime tests test; these tiny kernels exercise every runtime feature
(multi-stage launches, several launches per design, dynamic scale outputs,
raw and packed device constants). They are registered only inside tests via
`fake_kernels()`, never in the package.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fakes.fake_pyxrt import write_fake_xclbin, write_instructions
from xdna_ep.compile.program import Launch, Program, Stage, TensorSpec
from xdna_ep.kernel_specs import registry
from xdna_ep.kernel_specs.registry import KernelSpec
from xdna_ep.runtime.shapes import BufferSpec

PREPARE_CALLS: dict[str, int] = {}


def _count(name: str) -> None:
    PREPARE_CALLS[name] = PREPARE_CALLS.get(name, 0) + 1


# t_scale: y = x * factor + bias (float32, per last-axis channel)
def _scale_prepare(consts, attrs):
    _count("t_scale")
    return np.ascontiguousarray(consts["factor"], dtype=np.float32)


def _scale_run(state, inputs, attrs):
    (x,) = inputs
    return [(x * state + np.float32(attrs["bias"])).astype(np.float32)]


def _scale_ref(consts, inputs, attrs):
    return _scale_run(_scale_prepare(consts, attrs), inputs, attrs)


# t_quant: q = clip(rint(x / s), -127, 127), s = max|x|/127 (dynamic) -> q, s
def _quant_run(state, inputs, attrs):
    (x,) = inputs
    m = float(np.max(np.abs(x))) if x.size else 0.0
    s = np.float32(m / 127.0 if m > 0 else 1.0)
    q = np.clip(np.rint(x * (np.float32(1.0) / s)), -127, 127).astype(np.int8)
    return [q, np.array([s], dtype=np.float32)]


# t_deq: y = q * s
def _deq_run(state, inputs, attrs):
    q, s = inputs
    return [(q.astype(np.float32) * s[0]).astype(np.float32)]


# t_affine: z = y @ W, W [K, N]; the device gets W transposed (packed constants)
def _affine_prepare(consts, attrs):
    _count("t_affine")
    return np.ascontiguousarray(consts["weight"].T)


def _affine_run(state, inputs, attrs):
    (y,) = inputs
    return [np.ascontiguousarray(y @ state.T, dtype=np.float32)]


def _affine_outputs(inputs, consts, attrs):
    k, n = consts["weight"].shape
    return [BufferSpec("float32", (*inputs[0].shape[:-1], n))]


def _no_macs(shapes_, consts, attrs):
    return 0


SPECS = (
    KernelSpec("t_scale", _scale_prepare, _scale_run, _scale_ref, _no_macs,
               output_specs=lambda ins, c, a: [BufferSpec("float32", ins[0].shape)]),
    KernelSpec("t_quant", lambda c, a: None, _quant_run,
               lambda c, i, a: _quant_run(None, i, a), _no_macs,
               output_specs=lambda ins, c, a: [BufferSpec("int8", ins[0].shape),
                                               BufferSpec("float32", (1,))]),
    KernelSpec("t_deq", lambda c, a: None, _deq_run, lambda c, i, a: _deq_run(None, i, a),
               _no_macs, output_specs=lambda ins, c, a: [BufferSpec("float32", ins[0].shape)]),
    KernelSpec("t_affine", _affine_prepare, _affine_run,
               lambda c, i, a: _affine_run(_affine_prepare(c, a), i, a), _no_macs,
               device_constants=lambda c, a: [np.ascontiguousarray(c["weight"].T)],
               prepare_device=lambda blobs, a: blobs[0],
               output_specs=_affine_outputs),
)


@contextlib.contextmanager
def fake_kernels() -> Iterator[None]:
    """Registers the FAKE kernels for the duration of a test, then removes them."""
    for spec in SPECS:
        registry.register(spec)
    PREPARE_CALLS.clear()
    try:
        yield
    finally:
        for spec in SPECS:
            registry.KERNELS.pop(spec.name, None)


C, N = 8, 6


def make_program(seed: int = 0) -> Program:
    """Three launches on two designs; d_sq is used twice with different constants."""
    rng = np.random.default_rng(seed)
    consts = {
        "f1": rng.uniform(-2, 2, C).astype(np.float32),
        "f2": rng.uniform(-2, 2, N).astype(np.float32),
        "w": rng.uniform(-1, 1, (C, N)).astype(np.float32),
    }
    launches = (
        Launch("d_sq", (Stage("t_scale", ("x",), ("h",), {"factor": "f1"}, {"bias": 0.25}),
                        Stage("t_quant", ("h",), ("q", "qs"), {}, {"dynamic": True}))),
        Launch("d_da", (Stage("t_deq", ("q", "qs"), ("y",)),
                        Stage("t_affine", ("y",), ("z",), {"weight": "w"}))),
        Launch("d_sq", (Stage("t_scale", ("z",), ("z2",), {"factor": "f2"}, {"bias": -0.5}),
                        Stage("t_quant", ("z2",), ("q2", "q2s"), {}, {"dynamic": True}))),
    )
    return Program("fake_region", (TensorSpec("x", "float32", ("M", C)),),
                   (TensorSpec("q2", "int8", ("M", N)), TensorSpec("q2s", "float32", (1,)),
                    TensorSpec("qs", "float32", (1,))),
                   launches, consts)


def numpy_reference(program: Program, x: np.ndarray) -> dict[str, np.ndarray]:
    """The program's arithmetic written out directly (independent of the runtime)."""
    c = program.constants

    def quant(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = float(np.max(np.abs(v)))
        s = np.float32(m / 127.0 if m > 0 else 1.0)
        return (np.clip(np.rint(v * (np.float32(1.0) / s)), -127, 127).astype(np.int8),
                np.array([s], np.float32))

    h = x * c["f1"] + np.float32(0.25)
    q, qs = quant(h)
    y = q.astype(np.float32) * qs[0]
    z = y @ np.ascontiguousarray(c["w"].T).T
    q2, q2s = quant(z * c["f2"] + np.float32(-0.5))
    return {"q2": q2, "q2s": q2s, "qs": qs}


INSTR = {"d_sq": [0x06030100, 0x00000105, 0x0000000B], "d_da": [0x06030100, 0x00000201]}


def make_npu_files(root: Path, designs: Sequence[str] = ("d_sq", "d_da"), *,
                   kernels: Sequence[str] = ("MLIR_AIE",),
                   skip_xclbin: Sequence[str] = ()) -> tuple[dict[str, Any], Path]:
    """FAKE xclbins + instruction files + a manifest document for `designs`."""
    d = root / "xclbin"
    d.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"designs": {}}
    for i, name in enumerate(designs):
        suffix = ".txt" if i % 2 else ".bin"   # both instruction formats
        insts = f"{name}.insts{suffix}"
        if name not in skip_xclbin:
            write_fake_xclbin(d / f"{name}.xclbin", name, kernels)
        write_instructions(d / insts, INSTR.get(name, [0x1]))
        manifest["designs"][name] = {"xclbin": f"{name}.xclbin", "insts": insts}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return manifest, d
