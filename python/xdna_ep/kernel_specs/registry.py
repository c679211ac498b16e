"""Kernel registry: the one table that devices and the compiler consult.

Every kernel a Program stage can name registers a KernelSpec here (from its
own module, e.g. xdna_ep.kernel_specs.matmul). A stage is executed as

    state   = spec.prepare(consts, attrs)        # once per program load: pack
                                                 # weights, build tables
    outputs = spec.run(state, inputs, attrs)     # per inference, on the emulator
    outputs = spec.reference(consts, inputs, attrs)   # numpy integer reference
    blobs   = spec.device_constants(consts, attrs)    # bytes for the NPU weights BO
    outs    = spec.output_specs(inputs, consts, attrs)  # BufferSpecs, before a run
    spec.version                                      # its kernels/manifest.json version

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


@dataclass(frozen=True)
class BufferSpec:
    """dtype + concrete shape of one buffer (what an NPU launch allocates before
    it runs; output_specs derives the outputs' from the inputs')."""

    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return int(np.dtype(self.dtype).itemsize * int(np.prod(self.shape, dtype=np.int64)))

    @classmethod
    def of(cls, a: np.ndarray) -> BufferSpec:
        return cls(str(a.dtype), tuple(int(d) for d in a.shape))


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
    # Output BufferSpec per output from the input BufferSpecs (and the constants'
    # BufferSpecs by role): the output column of kernels/STAGES.md. An NPU launch
    # allocates its output buffers from this before it runs; a kernel without it
    # can run on the emulator only (runtime/shapes.py raises for the NPU path).
    output_specs: Callable[[Sequence[BufferSpec], dict[str, BufferSpec], Attrs],
                           Sequence[Any]] | None = None

    @property
    def version(self) -> int:
        """The kernel's version in kernels/manifest.json (what compiled-model cache
        keys and xclbin lookup follow); KeyError for a kernel not in the manifest."""
        from . import manifest  # manifest.py reads the packaged JSON; imported on use

        return manifest.load().kernel(self.name).kernel_version


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
