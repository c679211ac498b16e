"""Graph passes between regions/ and the stage emission of compile/: rewrites of a
lowered region that no single op family can do alone, because they involve
several matches (a bias that belongs to another match's matmul, three
projections merged into one launch, an MLP split by its outlier channels, a
GELU range shifted into its consumer's bias).

THE ordered list is PASSES below; compile_plan (compile/api.py) runs it at the
three points named in passes/base.py:

    lower each region (ops/<family>.py lower)
      1. fold_bias        "lowered"     a bias joins the matmul that produces its input
      2. fuse_qkv         "lowered"     q/k/v projections sharing an input -> one matmul
    topological sort, buffer dtypes
      3. split_outliers   "calibrated"  fc1 outlier channels get their own int8 tensors
                                        (from the calibration data, else from the weights)
    calibration ranges, quantize (quantize/)
      4. gelu_offset      "quantized"   centred int8 range for GELU outputs read by matmuls
    emit stages (ops/<family>.py emit), group launches -> Program

Each pass is a module with run(...) and can be tested alone
(tests/test_passes.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import fold_bias, fuse_qkv, gelu_offset, split_outliers
from .base import BufferDtypes, Pass, PassContext, Point

if TYPE_CHECKING:
    from ..compile.ir import LoweredRegion
    from ..quantize.region import QuantizedRegion

PASSES: tuple[Pass, ...] = (
    Pass("fold_bias", "lowered", fold_bias.run,
         summary="BiasGelu / SkipLayerNorm / MultiHeadAttention biases join the producing "
                 "matmul"),
    Pass("fuse_qkv", "lowered", fuse_qkv.run, lambda ctx: ctx.fuse_qkv,
         summary="the q/k/v projections of an attention become one split-output matmul"),
    Pass("split_outliers", "calibrated", split_outliers.run,
         lambda ctx: ctx.split_outliers,
         summary="MLP fc1 outlier channels (from calibration data, else from the weights) "
                 "get their own int8 tensors"),
    Pass("gelu_offset", "quantized", gelu_offset.run,
         lambda ctx: ctx.gelu_offset and ctx.quantization == "static",
         summary="a GELU output read only by matmuls gets a centred int8 range"),
)


def _at(point: Point, ctx: PassContext) -> list[Pass]:
    return [p for p in PASSES if p.point == point and p.enabled(ctx)]


def run_lowered(lr: LoweredRegion, ctx: PassContext) -> None:
    for p in _at("lowered", ctx):
        p.run(lr, ctx)


def run_calibrated(regions: Sequence[LoweredRegion], ctx: PassContext) -> list[str]:
    """Runs the "calibrated" passes; returns the names of those that ran."""
    ran = _at("calibrated", ctx) if regions else []
    for p in ran:
        p.run(regions, ctx)
    return [p.name for p in ran]


def run_quantized(lr: LoweredRegion, buffers: BufferDtypes, qr: QuantizedRegion,
                  ctx: PassContext) -> None:
    for p in _at("quantized", ctx):
        p.run(lr, buffers, qr, ctx)


__all__ = ["PASSES", "Pass", "PassContext", "run_calibrated", "run_lowered", "run_quantized"]
