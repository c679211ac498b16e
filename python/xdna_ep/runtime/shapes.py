"""Output buffer shapes and dtypes of a stage, known *before* it runs.

The emulator learns output shapes by running the kernel, but an NPU launch
needs its output buffer object allocated, at the right size, before the
command is submitted. Each kernel states its rule as ``KernelSpec.output_specs``
(the output column of kernels/STAGES.md, kept next to the kernel); this module
only applies it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..kernel_specs import registry
from ..kernel_specs.registry import BufferSpec

__all__ = ["BufferSpec", "output_specs"]


def output_specs(kernel: str, spec: object, inputs: Sequence[BufferSpec],
                 consts: dict[str, np.ndarray], attrs: dict[str, Any]) -> list[BufferSpec]:
    """The output buffers one stage will write, from its input buffers (`spec`:
    the stage's KernelSpec, or None to look `kernel` up in the registry)."""
    if spec is None:
        try:
            spec = registry.get(kernel)
        except KeyError:
            spec = None
    own = getattr(spec, "output_specs", None)
    if not callable(own):
        raise NotImplementedError(
            f"no output-shape rule for kernel {kernel!r}: the NPU path must size output "
            "buffers before a launch; add `output_specs` to its KernelSpec")
    cspecs = {role: BufferSpec.of(np.asarray(a)) for role, a in consts.items()}
    return [BufferSpec(str(np.dtype(b.dtype)), tuple(int(d) for d in b.shape))
            for b in own(list(inputs), cspecs, attrs)]
