"""The NPU image of a program's launches, computed at compile time for the payload.

Why: the plugin library's native NPU backend (provider/npu/) must put exactly the
bytes into the IN / WEIGHTS / PARAMS buffer objects that the Python XrtDevice
puts there (runtime/xrt.py). Rather than re-implement device_constants and the
PARAMS JSON in C++, the payload carries, per launch, what runtime/layout.py
computes: the WEIGHTS bytes, the PARAMS bytes and the IN / OUT slots (offset,
shape, dtype, frame window). Identical bytes by construction.

An image exists only for concrete shapes: the PARAMS block and the slot offsets
depend on the run-time shapes. A program whose inputs have symbolic dims gets its
image for the sizes the compile knew (`dims`: provider option dims, calibration
arrays, free-dimension overrides, the first run's shape), and the payload records
those input shapes, so the plugin runs other shapes on the emulator.
A launch the NPU must not run (runtime/layout.py launch_refusal: e.g. an add form
the add design cannot run) carries the refusal instead of an image, so the plugin
refuses it the way XrtDevice does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..compile.program import Program
from ..kernel_specs import registry
from ..runtime.layout import (
    Slot,
    has_private_scratch,
    launch_io,
    launch_refusal,
    plan_launch,
    plan_weights,
    stage_consts,
)
from ..runtime.shapes import BufferSpec
from ..runtime.xclbins import (
    DesignEntry,
    ManifestError,
    design_entries,
    launch_entry_names,
    load_manifest,
)


@dataclass(frozen=True)
class LaunchImage:
    """The buffer-object contents of one launch for the program's concrete shapes."""

    weights: bytes
    params: bytes
    in_size: int
    in_slots: tuple[Slot, ...]
    out_size: int
    out_slots: tuple[Slot, ...]
    zero_out: bool        # a fused design's private scratch: OUT starts zeroed


@dataclass(frozen=True)
class LaunchPlan:
    """What the payload says about one launch (docs/EPCONTEXT.md, version 2)."""

    design: str
    n_stages: int
    inputs: tuple[str, ...]        # read from IN (runtime.layout.LaunchIO)
    outputs: tuple[str, ...]       # written to OUT
    entry: DesignEntry | None      # the design's manifest entry (None: not in the manifest)
    image: LaunchImage | None      # None: no image (see `why`)
    why: str = ""                  # why there is no image
    refused: bool = False          # the NPU must not run this launch (reason in `why`)


def _entries(manifest: Mapping[str, Any] | None) -> dict[str, DesignEntry]:
    try:
        return design_entries(load_manifest() if manifest is None else manifest)
    except ManifestError:
        return {}


def symbolic_dims(program: Program) -> list[str]:
    """The program inputs' symbolic dims, as "name[axis]=symbol"."""
    return [f"{t.name}[{a}]={d}" for t in program.inputs for a, d in enumerate(t.shape)
            if not isinstance(d, (int, np.integer))]


def image_input_shapes(program: Program, dims: Mapping[str, int] | None
                       ) -> list[tuple[int, ...]] | None:
    """The program inputs' shapes with their symbolic dims bound by `dims`; None when
    a symbolic dim has no size there (then no launch gets an image)."""
    sizes = dims or {}
    shapes: list[tuple[int, ...]] = []
    for t in program.inputs:
        shape: list[int] = []
        for d in t.shape:
            if isinstance(d, (int, np.integer)):
                shape.append(int(d))
            elif d in sizes:
                shape.append(int(sizes[d]))
            else:
                return None
        shapes.append(tuple(shape))
    return shapes


def launch_plans(program: Program, manifest: Mapping[str, Any] | None = None,
                 dims: Mapping[str, int] | None = None) -> list[LaunchPlan]:
    """Per launch of `program`: its design, IO and (concrete shapes) its NPU image.
    `dims`: sizes of symbolic dims the compile knew; the images are then for the
    input shapes image_input_shapes() gives."""
    entries = _entries(manifest)
    shapes_in = image_input_shapes(program, dims)
    symbolic = [] if shapes_in is not None else [
        s for s in symbolic_dims(program) if s.rsplit("=", 1)[1] not in (dims or {})]
    known = {t.name: BufferSpec(t.dtype, shape)
             for t, shape in zip(program.inputs, shapes_in, strict=True)
             } if shapes_in is not None else {}
    plans: list[LaunchPlan] = []
    names = launch_entry_names(program.launches, manifest)
    for ln, io, name in zip(program.launches, launch_io(program), names, strict=True):
        common = dict(design=ln.design, n_stages=len(ln.stages), inputs=tuple(io.inputs),
                      outputs=tuple(io.outputs), entry=entries.get(name))
        if symbolic:
            plans.append(LaunchPlan(**common, image=None,
                                    why="symbolic input dims " + ", ".join(symbolic)))
            continue
        unknown = [b for b in io.inputs if b not in known]
        if unknown:
            plans.append(LaunchPlan(**common, image=None, refused=True,
                                    why=f"the shapes of {unknown} are unknown (an earlier "
                                        "launch has no NPU layout)"))
            continue
        refusal = launch_refusal(ln)
        if refusal:
            plans.append(LaunchPlan(**common, image=None, why=refusal, refused=True))
            _learn_outputs(program, ln, known)
            continue
        try:
            specs = [registry.get(st.kernel) for st in ln.stages]
            consts = [stage_consts(program, st) for st in ln.stages]
            weights = plan_weights(ln, specs, consts)
            params = plan_launch(ln, io, specs, consts, weights,
                                 {b: known[b] for b in io.inputs})
        except Exception as exc:  # noqa: BLE001 - any layout failure refuses the NPU for
            # this launch (announced by the plugin), never the compile: the emulator
            # form of the payload does not depend on it
            plans.append(LaunchPlan(**common, image=None, refused=True,
                                    why=f"no NPU layout for this launch: "
                                        f"{type(exc).__name__}: {exc}"))
            _learn_outputs(program, ln, known)
            continue
        for s in params.outputs.slots:
            known.setdefault(s.name, BufferSpec(s.dtype, s.shape))
        image = LaunchImage(weights.data.tobytes(), params.encode().tobytes(),
                            params.inputs.size, params.inputs.slots, params.outputs.size,
                            params.outputs.slots, has_private_scratch(ln.design))
        plans.append(LaunchPlan(**common, image=image))
    return plans


def _learn_outputs(program: Program, launch: Any, known: dict[str, BufferSpec]) -> None:
    """Output shapes of a launch without an image, so later launches still get one."""
    from ..runtime.shapes import output_specs

    for st in launch.stages:
        if not all(b in known for b in st.inputs):
            return
        try:
            outs = output_specs(st.kernel, None, [known[b] for b in st.inputs],
                                stage_consts(program, st), st.attrs)
        except Exception:  # noqa: BLE001 - later launches then get no image either
            return
        known.update(zip(st.outputs, outs, strict=False))
