"""Kernel registry: the one table that devices and the compiler consult.

Every kernel a Program stage can name registers a KernelSpec here (from its
own module, e.g. xdna_ep.kernel_specs.matmul). A stage is executed as

    state   = spec.prepare(consts, attrs)        # once per program load: pack
                                                 # weights, build tables
    outputs = spec.run(state, inputs, attrs)     # per inference, on the emulator
    outputs = spec.reference(consts, inputs, attrs)   # numpy integer reference
    blobs   = spec.device_constants(consts, attrs)    # bytes for the NPU weights BO

Stage contracts (buffers, constant roles, attrs) are in kernels/STAGES.md.

`consts` maps the stage's constant roles (documented per kernel, e.g.
"weight", "bias", "requant_multiplier") to arrays; `inputs`/`outputs` are the
stage's buffers in order. The reference must equal `run` bit for bit.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Arrays = list[np.ndarray]
Consts = dict[str, np.ndarray]
Attrs = dict[str, Any]


@dataclass(frozen=True)
class KernelSpec:
    name: str
    prepare: Callable[[Consts, Attrs], Any]
    run: Callable[[Any, Sequence[np.ndarray], Attrs], Arrays]
    reference: Callable[[Consts, Sequence[np.ndarray], Attrs], Arrays]
    # multiply-accumulates of one call, from input shapes (for reports/cost model)
    macs: Callable[[Sequence[tuple[int, ...]], Consts, Attrs], int]
    # The exact constant bytes the device receives for this stage (weights BO
    # content, in order): packed/derived from the program constants once. The
    # emulator's prepare() must be computed from the same arrays so both devices
    # see the same bytes.
    device_constants: Callable[[Consts, Attrs], list[np.ndarray]] = lambda consts, attrs: []
    # Optional: rebuild the emulator state from exactly the device_constants
    # blobs (what the NPU's weights BO holds). When present, the fake pyxrt can
    # run the kernel from BO bytes alone, and emulator == device bytes by
    # construction.
    prepare_device: Callable[[list[np.ndarray], Attrs], Any] | None = None
    # Optional: output (shape, dtype) per output from input (shape, dtype) pairs;
    # runtime/shapes.py holds the STAGES.md rules for kernels without one.
    output_specs: Callable[..., Any] | None = None


KERNELS: dict[str, KernelSpec] = {}

# Modules that register kernels when imported (kept explicit: no plugin magic).
_KERNEL_MODULES = (
    "matmul", "quantize", "gelu", "layernorm", "softmax", "attention", "add", "conv1d",
)


def register(spec: KernelSpec) -> KernelSpec:
    if spec.name in KERNELS:
        raise ValueError(f"kernel {spec.name!r} registered twice")
    KERNELS[spec.name] = spec
    return spec


def get(name: str) -> KernelSpec:
    """The spec of kernel `name`; imports the kernel modules on first use."""
    if name not in KERNELS:  # (not `if not KERNELS`: one module imported early must
        for mod in _KERNEL_MODULES:  # not hide the others)
            importlib.import_module(f"{__package__}.{mod}")
    try:
        return KERNELS[name]
    except KeyError:
        raise KeyError(f"no NPU kernel named {name!r} (known: {sorted(KERNELS)})") from None
