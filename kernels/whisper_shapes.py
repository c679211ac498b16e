"""The Whisper shapes every NPU design must handle: ONE table shared by the
designs (`python design.py --size NAME [--case LABEL]` emits that size's
call), the IRON checker (`build_xclbins.py --check`) and the tests
(tests/test_design_shapes.py, tests/test_manifest.py).

Encoder of every Whisper size: T = 1500 frames after the conv front end
(3000 mel frames, 80 mel bins; large-v3 has 128), d_model, heads of 64, ffn 4d.
`design_cases(size)` lists, for every kernel and fused design of
kernels/manifest.json, the build calls that cover that size's encoder layer.
"""

from __future__ import annotations

from dataclasses import dataclass

HEAD_DIM = 64
FRAMES = 1500          # encoder positions (30 s window)
MEL_FRAMES = 3000      # mel frames into conv1


@dataclass(frozen=True)
class WhisperSize:
    name: str
    d: int
    heads: int
    mels: int = 80
    frames: int = FRAMES

    @property
    def ffn(self) -> int:
        return 4 * self.d


SIZES: tuple[WhisperSize, ...] = (
    WhisperSize("tiny", 384, 6),
    WhisperSize("base", 512, 8),
    WhisperSize("small", 768, 12),
    WhisperSize("medium", 1024, 16),
    WhisperSize("large-v3", 1280, 20, mels=128),
)
BY_NAME = {s.name: s for s in SIZES}


@dataclass(frozen=True)
class DesignCase:
    """One build call: `<design file>.<fn>(*args)`, named after its manifest entry."""

    design: str        # kernels/manifest.json name (kernel or fused design)
    path: str          # design file, relative to kernels/
    fn: str
    args: tuple
    label: str         # what this call covers (e.g. "fc1")

    @property
    def id(self) -> str:
        return f"{self.design}[{self.label}]"


def design_cases(size: WhisperSize) -> tuple[DesignCase, ...]:
    d, f, t, h = size.d, size.ffn, size.frames, size.heads
    C = DesignCase
    return (
        C("matmul", "matmul/design.py", "build", (t, d, 3 * d, "int8"), "qkv"),
        C("matmul", "matmul/design.py", "build", (t, d, d, "float32"), "out_proj"),
        C("matmul", "matmul/design.py", "build", (t, d, f, "int8"), "fc1"),
        C("matmul", "matmul/design.py", "build", (t, f, d, "float32"), "fc2"),
        C("quantize", "quantize/design.py", "build", (t * d, "quantize"), "x"),
        C("quantize", "quantize/design.py", "build_dynamic", (t * d, 0.0), "dynamic"),
        C("quantize", "quantize/design.py", "build_dynamic", (t * f, 4.0), "dynamic_gelu_in"),
        C("dequantize", "quantize/design.py", "build", (t * d, "dequantize"), "x"),
        C("gelu", "gelu/design.py", "gelu_design", (t * f, 4800), "h"),
        C("layernorm", "layernorm/design.py", "layernorm_design",
          (t, d, "float32", "int8", None), "f32->int8"),
        C("layernorm", "layernorm/design.py", "layernorm_design",
          (t, d, "float32", "float32", None), "ln_post"),
        C("softmax", "softmax/design.py", "softmax_design", (h * t, t, False), "scores"),
        C("attention", "attention/design.py", "attention_design", (1, h, t, t), "self"),
        C("add", "add/design.py", "add_design", ("float32", t * d, 1200), "residual"),
        C("add", "add/design.py", "add_design", ("int8", t * d, 1200), "int8"),
        # b broadcast over a batch of 4 ([4, T, d] + [T, d]): b stored once, repeated
        # by the DMA (kernels/add/geometry.py); a constant b (position table) in WEIGHTS;
        # the position form reads a [1, d, T] transposed
        C("add", "add/design.py", "add_design", ("float32", 4 * t * d, 1200, t * d),
          "broadcast"),
        C("add", "add/design.py", "add_design", ("int8", 4 * t * d, 1200, t * d),
          "int8 broadcast"),
        C("add", "add/design.py", "add_design", ("int8", 4 * t * d, 1200, t * d, "in", True),
          "int8 dynamic"),
        C("add", "add/design.py", "add_design", ("float32", 4 * t * d, 1200, t * d, "weights"),
          "table"),
        C("add", "add/design.py", "add_design",
          ("float32", t * d, 1200, t * d, "weights", False, t), "position"),
        C("conv1d", "conv1d/design.py", "conv1d_design",
          (1, size.mels, d, MEL_FRAMES, 3, 1, 1), "conv1"),
        C("conv1d", "conv1d/design.py", "conv1d_design",
          (1, d, d, MEL_FRAMES, 3, 2, 1), "conv2"),
        C("ln_matmul", "fused/ln_matmul/design.py", "build", (t, d, 3 * d, "int8"), "qkv"),
        C("ln_matmul", "fused/ln_matmul/design.py", "build", (t, d, f, "float32"), "fc1"),
        C("ln_matmul", "fused/ln_matmul/design.py", "build_dynamic", (t, d, 3 * d),
          "qkv_dynamic"),
        C("attn_block", "fused/attn_block/design.py", "build", (t, t, h, HEAD_DIM), "self"),
        C("attn_block", "fused/attn_block/design.py", "build_dynamic", (t, t, h, HEAD_DIM),
          "self-dynamic"),
        C("ffn_block", "fused/ffn_block/design.py", "build", (t, d, f), "mlp"),
        C("ffn_block", "fused/ffn_block/design.py", "build_dynamic", (t, d, f), "mlp_dynamic"),
        C("ffn_ln_matmul", "fused/ffn_ln_matmul/design.py", "build",
          (t, d, f, 3 * d, "int8"), "mlp+qkv"),
        C("ffn_ln_matmul", "fused/ffn_ln_matmul/design.py", "build_dynamic",
          (t, d, f, 3 * d), "mlp+qkv_dynamic"),
        C("conv_frontend", "fused/conv_frontend/design.py", "build",
          (1, size.mels, d, MEL_FRAMES), "frontend"),
        C("conv_frontend", "fused/conv_frontend/design.py", "build_dynamic",
          (1, size.mels, d, MEL_FRAMES), "frontend-dynamic"),
    )


def all_cases() -> list[tuple[WhisperSize, DesignCase]]:
    return [(s, c) for s in SIZES for c in design_cases(s)]


def size_case(design: str, argv: list[str]) -> DesignCase | None:
    """`--size NAME [--case LABEL]` on a design's command line: that Whisper size's
    build call for `design` from this table (None when --size is not given), so
    `python design.py --size large-v3` emits exactly what --check traced."""
    import argparse

    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--size", choices=list(BY_NAME))
    ap.add_argument("--case", default=None)
    known, _ = ap.parse_known_args(argv)
    if known.size is None:
        return None
    cases = [c for c in design_cases(BY_NAME[known.size]) if c.design == design]
    if known.case is not None:
        cases = [c for c in cases if c.label == known.case]
    if not cases:
        raise SystemExit(f"no {design} case {known.case!r} for {known.size}; cases: "
                         f"{[c.label for c in design_cases(BY_NAME[known.size]) if c.design == design]}")
    return cases[0]
