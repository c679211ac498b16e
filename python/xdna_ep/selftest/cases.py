"""Representative programs for every kernel and fused design of kernels/manifest.json.

Each case is ONE launch named after its design (what the NPU runs as one xclbin),
with real kernels, seeded constants and inputs at a small Whisper-like shape
(d = 128: two heads of 64; rows not a multiple of the designs' 128-row grid, so
padding paths run). Scales are static (compile-time attrs), as the compiled
Whisper encoder uses them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..compile.program import Launch, Program, Stage, TensorSpec
from ..kernel_specs.gelu import build_table

D, HEADS, ROWS, MELS, FRAMES = 128, 2, 100, 80, 64


@dataclass(frozen=True)
class Case:
    design: str                     # manifest kernel or design name (one launch)
    shape: str                      # what the shape label means, e.g. "M=100 K=128 N=384"
    program: Program
    inputs: dict[str, np.ndarray]

    @property
    def kernels(self) -> tuple[str, ...]:
        return tuple(st.kernel for st in self.program.stages())


class _Builder:
    """Seeded constants and inputs for one case."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.consts: dict[str, np.ndarray] = {}

    def weight(self, name: str, k: int, n: int) -> dict[str, str]:
        self.consts[f"{name}.w"] = self.rng.integers(-127, 128, (k, n), dtype=np.int8)
        self.consts[f"{name}.s"] = self.rng.uniform(0.002, 0.01, n).astype(np.float32)
        self.consts[f"{name}.b"] = self.rng.normal(0, 0.2, n).astype(np.float32)
        return {"weight": f"{name}.w", "w_scale": f"{name}.s", "bias": f"{name}.b"}

    def norm(self, name: str, c: int) -> dict[str, str]:
        self.consts[f"{name}.g"] = self.rng.uniform(0.5, 1.5, c).astype(np.float32)
        self.consts[f"{name}.b"] = self.rng.normal(0, 0.1, c).astype(np.float32)
        return {"gamma": f"{name}.g", "beta": f"{name}.b"}

    def table(self, name: str, s_in: float, s_out: float) -> dict[str, str]:
        self.consts[name] = build_table(s_in, s_out, "tanh")
        return {"table": name}

    def conv(self, name: str, cout: int, cin: int) -> dict[str, str]:
        self.consts[f"{name}.w"] = self.rng.integers(-127, 128, (cout, cin, 3), dtype=np.int8)
        self.consts[f"{name}.s"] = self.rng.uniform(0.002, 0.01, cout).astype(np.float32)
        self.consts[f"{name}.b"] = self.rng.normal(0, 0.1, cout).astype(np.float32)
        return {"weight": f"{name}.w", "w_scale": f"{name}.s", "bias": f"{name}.b"}

    def f32(self, *shape: int, scale: float = 1.0) -> np.ndarray:
        return self.rng.normal(0, scale, shape).astype(np.float32)

    def i8(self, *shape: int) -> np.ndarray:
        return self.rng.integers(-127, 128, shape, dtype=np.int8)

    def case(self, design: str, shape: str, stages: list[Stage], inputs: dict[str, np.ndarray],
             outputs: list[str], known: dict[str, np.ndarray]) -> Case:
        ins = tuple(TensorSpec(n, str(a.dtype), a.shape) for n, a in inputs.items())
        outs = tuple(TensorSpec(n, str(known[n].dtype), known[n].shape) for n in outputs)
        prog = Program(f"selftest.{design}", ins, outs, (Launch(design, tuple(stages)),),
                       dict(self.consts))
        return Case(design, shape, prog, inputs)


def _spec(dtype: str, *shape: int) -> np.ndarray:
    """A zero-size stand-in carrying dtype and shape for an output TensorSpec."""
    return np.lib.stride_tricks.as_strided(np.zeros(1, dtype), shape, [0] * len(shape))


def _single(seed: int) -> list[Case]:
    b = _Builder(seed)
    m, d, f, t = ROWS, D, 4 * D, ROWS
    out: list[Case] = []

    def one(design: str, shape: str, st: Stage, inputs: dict[str, np.ndarray],
            outs: dict[str, np.ndarray]) -> None:
        out.append(b.case(design, shape, [st], inputs, list(outs), outs))

    one("matmul", f"M={m} K={d} N={f} int8", Stage("matmul", ("a",), ("y",), b.weight("mm", d, f),
        {"out": "int8", "in_scale": 0.02, "out_scale": 0.4}), {"a": b.i8(1, m, d)},
        {"y": _spec("int8", 1, m, f)})
    one("quantize", f"[1, {m}, {d}]", Stage("quantize", ("x",), ("q",), {}, {"out_scale": 0.03}),
        {"x": b.f32(1, m, d, scale=2.0)}, {"q": _spec("int8", 1, m, d)})
    one("dequantize", f"[1, {m}, {d}]", Stage("dequantize", ("q",), ("x",), {},
                                              {"in_scale": 0.03}),
        {"q": b.i8(1, m, d)}, {"x": _spec("float32", 1, m, d)})
    one("gelu", f"[1, {m}, {f}] tanh", Stage("gelu", ("x",), ("y",), b.table("tab", 0.05, 0.04),
        {"approximate": "tanh", "in_scale": 0.05, "out_scale": 0.04}), {"x": b.i8(1, m, f)},
        {"y": _spec("int8", 1, m, f)})
    one("layernorm", f"[1, {m}, {d}] -> int8", Stage("layernorm", ("x",), ("y",), b.norm("ln", d),
        {"epsilon": 1e-5, "out": "int8", "out_scale": 0.03}), {"x": b.f32(1, m, d, scale=3.0)},
        {"y": _spec("int8", 1, m, d)})
    one("softmax", f"[{HEADS * t}, {t}]", Stage("softmax", ("x",), ("p",), {},
        {"in_scale": 0.1, "scale": 0.125, "causal": False, "has_mask": False}),
        {"x": b.i8(HEADS * t, t)}, {"p": _spec("int8", HEADS * t, t)})
    one("attention", f"T={t} heads={HEADS}x64", Stage("attention", ("q", "k", "v"), ("o",), {},
        {"num_heads": HEADS, "softmax_scale": 0.125, "causal": False, "q_scale": 0.05,
         "k_scale": 0.05, "v_scale": 0.04, "out": "int8", "out_scale": 0.03, "has_mask": False}),
        {"q": b.i8(1, t, d), "k": b.i8(1, t, d), "v": b.i8(1, t, d)}, {"o": _spec("int8", 1, t, d)})
    one("add", f"[1, {m}, {d}] fp32", Stage("add", ("a", "b"), ("c",)),
        {"a": b.f32(1, m, d), "b": b.f32(1, m, d)}, {"c": _spec("float32", 1, m, d)})
    one("conv1d", f"[1, {MELS}, {FRAMES}] -> {d}", Stage("conv1d", ("x",), ("y",),
        b.conv("cv", d, MELS), {"stride": 1, "pad": 1, "in_scale": 0.05, "out": "float32"}),
        {"x": b.f32(1, MELS, FRAMES)}, {"y": _spec("float32", 1, d, FRAMES)})
    return out


def _fused(seed: int) -> list[Case]:
    m, d, f, n3 = ROWS, D, 4 * D, 3 * D
    out: list[Case] = []

    b = _Builder(seed + 1)
    ln = Stage("layernorm", ("x",), ("a",), b.norm("ln", d),
               {"epsilon": 1e-5, "out": "int8", "out_scale": 0.03})
    mm = Stage("matmul", ("a",), ("y",), b.weight("qkv", d, n3),
               {"out": "int8", "in_scale": 0.03, "out_scale": 0.3})
    out.append(b.case("ln_matmul", f"M={m} C={d} N={n3}", [ln, mm], {"x": b.f32(1, m, d)},
                      ["y"], {"y": _spec("int8", 1, m, n3)}))

    for design in ("ffn_block", "ffn_ln_matmul"):
        b = _Builder(seed + 2)
        st = [Stage("layernorm", ("x",), ("a",), b.norm("ln", d),
                    {"epsilon": 1e-5, "out": "int8", "out_scale": 0.03}),
              Stage("matmul", ("a",), ("h0",), b.weight("fc1", d, f),
                    {"out": "int8", "in_scale": 0.03, "out_scale": 0.05}),
              Stage("gelu", ("h0",), ("h",), b.table("tab", 0.05, 0.02),
                    {"approximate": "tanh", "in_scale": 0.05, "out_scale": 0.02}),
              Stage("matmul", ("h",), ("g",), b.weight("fc2", f, d),
                    {"out": "float32", "in_scale": 0.02}),
              Stage("add", ("g", "x"), ("y",))]
        outs, known = ["y"], {"y": _spec("float32", 1, m, d)}
        shape = f"M={m} C={d} F={f}"
        if design == "ffn_ln_matmul":
            st += [Stage("layernorm", ("y",), ("a2",), b.norm("ln2", d),
                         {"epsilon": 1e-5, "out": "int8", "out_scale": 0.03}),
                   Stage("matmul", ("a2",), ("z",), b.weight("qkv", d, n3),
                         {"out": "int8", "in_scale": 0.03, "out_scale": 0.3})]
            outs.append("z")
            known["z"] = _spec("int8", 1, m, n3)
            shape += f" N={n3}"
        out.append(b.case(design, shape, st, {"x": b.f32(1, m, d)}, outs, known))

    b = _Builder(seed + 3)
    st = [Stage("attention", ("q", "k", "v"), ("o",), {},
                {"num_heads": HEADS, "softmax_scale": 0.125, "causal": False, "q_scale": 0.05,
                 "k_scale": 0.05, "v_scale": 0.04, "out": "int8", "out_scale": 0.03,
                 "has_mask": False}),
          Stage("matmul", ("o",), ("p",), b.weight("out", d, d),
                {"out": "float32", "in_scale": 0.03}),
          Stage("add", ("p", "x"), ("y",))]
    out.append(b.case("attn_block", f"T={m} heads={HEADS}x64", st,
                      {"q": b.i8(1, m, d), "k": b.i8(1, m, d), "v": b.i8(1, m, d),
                       "x": b.f32(1, m, d)}, ["y"], {"y": _spec("float32", 1, m, d)}))

    b = _Builder(seed + 4)
    t2 = FRAMES // 2
    b.consts["pos"] = b.f32(t2, d, scale=0.5)
    st = [Stage("conv1d", ("mel",), ("c1",), b.conv("c1", d, MELS),
                {"stride": 1, "pad": 1, "in_scale": 0.05, "out": "float32"}),
          Stage("quantize", ("c1",), ("q1",), {}, {"out_scale": 0.05}),
          Stage("gelu", ("q1",), ("g1",), b.table("t1", 0.05, 0.04),
                {"approximate": "none", "in_scale": 0.05, "out_scale": 0.04}),
          Stage("dequantize", ("g1",), ("d1",), {}, {"in_scale": 0.04}),
          Stage("conv1d", ("d1",), ("c2",), b.conv("c2", d, d),
                {"stride": 2, "pad": 1, "in_scale": 0.04, "out": "float32"}),
          Stage("quantize", ("c2",), ("q2",), {}, {"out_scale": 0.05}),
          Stage("gelu", ("q2",), ("g2",), b.table("t2", 0.05, 0.04),
                {"approximate": "none", "in_scale": 0.05, "out_scale": 0.04}),
          Stage("dequantize", ("g2",), ("d2",), {}, {"in_scale": 0.04}),
          Stage("add", ("d2",), ("y",), {"b": "pos"}, {"transpose_a": True, "table_rows": t2})]
    out.append(b.case("conv_frontend", f"[1, {MELS}, {FRAMES}] -> [1, {t2}, {d}]", st,
                      {"mel": b.f32(1, MELS, FRAMES)}, ["y"], {"y": _spec("float32", 1, t2, d)}))
    return out


CASE_SETS: dict[str, Callable[[int], list[Case]]] = {"kernels": _single, "designs": _fused}


def all_cases(seed: int = 0) -> list[Case]:
    """Every kernel, then every fused design (one case each)."""
    return _single(seed) + _fused(seed)
