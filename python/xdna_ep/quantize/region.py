"""Quantization of one lowered region: int8 weights and activation scales.

The result is data (QuantizedRegion), so the compiler, the report and the
tests can all read which scale every quantized tensor got and where it came
from (calibration method or dynamic).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .calibration import scale_from_range
from .weights import quantize_per_channel

Mode = Literal["static", "dynamic"]

@dataclass
class QuantizedRegion:
    """Everything quantize/ decided for one region.

    scales: tensor -> int8 scale (static mode only; dynamic mode leaves it
    empty because kernels compute scales at run time).
    ranges: tensor -> (min, max) seen by the calibrator.
    op_constants: per lowered op (same order), role -> array ready for the
    device: int8 "weight" with float32 "w_scale", float32 "bias", "gamma"...
    offsets: tensor -> (offset, scale) for tensors with a centred int8 range
    (code q stands for q * scale + offset; set by passes/gelu_offset.py); that
    scale replaces the calibrated one.
    """

    region_id: int
    mode: Mode
    method: str  # "minmax" | "entropy" | "percentile" | "dynamic"
    scales: dict[str, float] = field(default_factory=dict)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    op_constants: list[dict[str, np.ndarray]] = field(default_factory=list)
    offsets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def scale(self, tensor: str) -> float:
        try:
            return self.scales[tensor]
        except KeyError:
            raise KeyError(f"region {self.region_id}: no int8 scale for tensor {tensor!r} "
                           f"(was it calibrated?)") from None


def quantize_constants(kernel: str, weights: Mapping[str, np.ndarray], name: str
                       ) -> dict[str, np.ndarray]:
    """Float constants of one op -> device constants (int8 weight + per-channel scale).

    Which constant becomes int8, and its output-channel axis, is the op family's
    (StageRule.int8_weight in xdna_ep/ops/<family>.py)."""
    from ..ops import registry as op_registry  # at call time: ops/ imports quantize/

    out = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
    try:
        rule = op_registry.stage_rule(kernel).int8_weight
    except KeyError:  # a kernel no family emits (tests): nothing to quantize
        rule = None
    if rule is not None:
        role, axis = rule
        q, s = quantize_per_channel(out.pop(role), axis=axis, name=f"{name}.{role}")
        out[role] = q
        out["w_scale"] = s
    return out


def quantize_region(region_id: int, kernels: Sequence[str],
                    weights: Sequence[Mapping[str, np.ndarray]], mode: Mode, method: str,
                    quantized_tensors: Iterable[str],
                    ranges: Mapping[str, tuple[float, float]] | None = None,
                    labels: Sequence[str] | None = None,
                    ) -> QuantizedRegion:
    """Quantizes weights of every op; in static mode, scales of `quantized_tensors`.

    labels: one name per op for error messages (e.g. its ONNX node), so a refused
    weight points at the node a user can find; default `region<id>.op<i>`.
    """
    if mode not in ("static", "dynamic"):
        raise ValueError(f"quantization mode must be 'static' or 'dynamic', got {mode!r}")
    names = list(labels) if labels is not None else [f"region{region_id}.op{i}"
                                                      for i in range(len(kernels))]
    consts = [quantize_constants(k, w, n)
              for k, w, n in zip(kernels, weights, names, strict=True)]
    qr = QuantizedRegion(region_id, mode, method if mode == "static" else "dynamic",
                         op_constants=consts)
    if mode == "static":
        ranges = ranges or {}
        for t in sorted(set(quantized_tensors)):
            if t not in ranges:
                raise KeyError(f"region {region_id}: tensor {t!r} has no calibrated range")
            lo, hi = ranges[t]
            if not (np.isfinite(lo) and np.isfinite(hi)):
                raise ValueError(f"region {region_id}: tensor {t!r} has a non-finite range")
            qr.ranges[t] = (float(lo), float(hi))
            qr.scales[t] = scale_from_range((lo, hi))
    return qr
