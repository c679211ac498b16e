"""The provider core's calls into the other stages (partition, compile, device,
report), kept in one module so the stage interfaces are visible in one place
(and tests can replace one stage)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import onnx

from ..compile.program import Program
from ..plan import PartitionPlan
from .options import ProviderOptions

log = logging.getLogger("xdna_ep")


def partition(model: onnx.ModelProto, opts: ProviderOptions, device_name: str,
              device_reason: str = "", model_name: str = "",
              dims: dict[str, int] | None = None,
              dims_source: dict[str, str] | None = None,
              overrides: Mapping[str, Any] | None = None) -> PartitionPlan:
    """capability + regions + placement by cost, for symbolic input dims bound to
    `dims` (ort/dims.py resolves them; `dims_source` says from where). The cost
    model counts the launches compile_regions will make with the same options
    (`overrides` as there; the calibration data is not read here)."""
    from ..compile import CompileOptions
    from ..partition import partition_model

    return partition_model(model, exclude_ops=list(opts.exclude_ops),
                           exclude_nodes=list(opts.exclude_nodes), device=device_name,
                           device_reason=device_reason, model_name=model_name,
                           dims=dims or None, dims_source=dims_source,
                           compile_options=CompileOptions(quantization=opts.quantization,
                                                          **(overrides or {})))


def compile_regions(model: onnx.ModelProto, plan: PartitionPlan, opts: ProviderOptions,
                    samples: list[dict[str, Any]] | None,
                    overrides: Mapping[str, Any] | None = None) -> dict[int, Program]:
    """quantize + compile: region id -> Program. `overrides` are further
    CompileOptions fields (no provider option names them; see XDNAProvider)."""
    from ..compile import CompileOptions, compile_plan

    return compile_plan(model, plan, CompileOptions(quantization=opts.quantization,
                                                    calibration=samples, **(overrides or {})))


def write_report(plan: PartitionPlan, path: Path) -> None:
    """The partition report in the format the suffix names."""
    from .. import report

    report.write_report(plan, path)
    log.info("XDNA partition report written to %s", path)
