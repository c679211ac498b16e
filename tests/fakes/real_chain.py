"""A program of REAL kernels with no packed constants, which the FAKE pyxrt can run:
the quantize -> gelu -> dequantize -> residual add chain of an encoder FFN
(shared by the runtime and the reliability tests)."""

from __future__ import annotations

from xdna_ep.compile.program import Launch, Program, Stage, TensorSpec


def ffn_chain_program(name: str = "ffn_chain") -> Program:
    launches = (
        Launch("quantize", (Stage("quantize", ("x",), ("q", "qs"), {}, {"dynamic": True}),)),
        Launch("gelu_dequantize", (
            Stage("gelu", ("q", "qs"), ("g", "gs"), {}, {"dynamic": True,
                                                          "approximate": "tanh"}),
            Stage("dequantize", ("g", "gs"), ("y",), {}, {"dynamic": True}))),
        Launch("add", (Stage("add", ("y", "x"), ("out",)),)),
    )
    return Program(name, (TensorSpec("x", "float32", ("B", "T", 384)),),
                   (TensorSpec("out", "float32", ("B", "T", 384)),
                    TensorSpec("gs", "float32", (1,))), launches, {})
