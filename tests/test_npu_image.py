"""The payload's NPU image (ort/npu_image.py, docs/EPCONTEXT.md version 4) is what
runtime/layout.py computes for the pyxrt path, and exists only for concrete shapes:
the program's own, or its symbolic dims bound by the sizes the compile knew."""

from __future__ import annotations

import struct

import numpy as np
from plugin_support import one_stage_program
from test_plugin_stages import CASES

from xdna_ep.compile.program import Program
from xdna_ep.compile.program import TensorSpec as T
from xdna_ep.kernel_specs import registry
from xdna_ep.ort.compiled_model import versions
from xdna_ep.ort.epcontext import FORMAT_VERSION, payload_bytes, read_header
from xdna_ep.ort.npu_image import image_input_shapes, launch_plans
from xdna_ep.runtime.layout import launch_io, plan_launch, plan_weights, stage_consts
from xdna_ep.runtime.shapes import BufferSpec


def test_image_bytes_are_the_layout_modules() -> None:
    spec, feeds = CASES["matmul_dynamic_f32"]
    prog = one_stage_program("mm", **spec)
    (plan,) = launch_plans(prog)
    ln, io = prog.launches[0], launch_io(prog)[0]
    specs = [registry.get(st.kernel) for st in ln.stages]
    consts = [stage_consts(prog, st) for st in ln.stages]
    weights = plan_weights(ln, specs, consts)
    params = plan_launch(ln, io, specs, consts, weights,
                         {k: BufferSpec.of(v) for k, v in feeds.items()})
    assert plan.image is not None and plan.entry is not None
    assert plan.image.weights == weights.data.tobytes()
    assert plan.image.params == params.encode().tobytes()
    assert plan.image.in_slots == params.inputs.slots
    assert plan.image.out_size == params.outputs.size
    assert (plan.design, plan.inputs, plan.outputs) == ("matmul", io.inputs, io.outputs)


def test_symbolic_shapes_have_no_image_and_say_which_dims() -> None:
    prog = one_stage_program("q", "quantize", [T("x", "float32", ("M", 8))],
                             [T("q", "int8", ("M", 8))], attrs={"out_scale": 0.02})
    (plan,) = launch_plans(prog)
    assert plan.image is None and not plan.refused
    assert plan.why == "symbolic input dims x[0]=M"


def _quantize_m() -> Program:
    return one_stage_program("q", "quantize", [T("x", "float32", ("M", 8))],
                             [T("q", "int8", ("M", 8))], attrs={"out_scale": 0.02})


def test_symbolic_dims_with_known_sizes_get_the_image_of_those_sizes() -> None:
    prog = _quantize_m()
    (plan,) = launch_plans(prog, dims={"M": 3})
    ln, io = prog.launches[0], launch_io(prog)[0]
    specs = [registry.get(st.kernel) for st in ln.stages]
    consts = [stage_consts(prog, st) for st in ln.stages]
    params = plan_launch(ln, io, specs, consts, plan_weights(ln, specs, consts),
                         {"x": BufferSpec("float32", (3, 8))})
    assert plan.image is not None and plan.image.params == params.encode().tobytes()
    assert image_input_shapes(prog, {"M": 3}) == [(3, 8)]
    (other,) = launch_plans(prog, dims={"N": 3})   # sizes of other dims: still none
    assert other.image is None and other.why == "symbolic input dims x[0]=M"


def test_payload_records_the_image_input_shapes_only_for_symbolic_programs() -> None:
    """The shapes follow the launches (version 3): absent (count 0) for a program
    without symbolic dims or without sizes for them; the bound shapes otherwise."""
    prog = _quantize_m()
    unbound, bound = payload_bytes(prog), payload_bytes(prog, dims={"M": 3})
    assert unbound.endswith(struct.pack("<I", 0))
    assert bound.endswith(struct.pack("<IBqq", 1, 2, 3, 8))
    spec, _ = CASES["gelu_static_tanh_offset"]
    assert payload_bytes(one_stage_program("g", **spec), dims={"M": 3}).endswith(
        struct.pack("<I", 0))


def test_broadcasting_add_has_an_image_with_its_geometry() -> None:
    """b [8] over a [4, 8]: b is stored once in IN (its own 8 bytes) and PARAMS
    carries the add design's geometry (period 8, 4 repetitions)."""
    from xdna_ep.runtime.layout import LaunchParams

    spec, _ = CASES["add_int8_static_broadcast"]
    (plan,) = launch_plans(one_stage_program("a", **spec))
    assert plan.image is not None and not plan.refused
    assert [(s.name, s.shape, s.offset) for s in plan.image.in_slots] == \
        [("a", (4, 8), 0), ("b", (8,), 64)]
    geo = LaunchParams.decode(plan.image.params).geometry
    assert geo is not None and (geo["elements"], geo["period"], geo["b_offset"]) == (32, 8, 64)


def test_a_launch_the_add_design_cannot_run_is_refused_in_the_image() -> None:
    """The add design runs one add stage: a launch named 'add' holding anything else
    (a program that does not match the design) is refused with that reason."""
    from xdna_ep.compile.program import Launch, Stage

    spec, _ = CASES["add_int8_static_broadcast"]
    one = one_stage_program("a", **spec)
    st = one.launches[0].stages[0]
    chained = Stage("add", ("c", "b"), ("d",), {}, dict(st.attrs))
    prog = Program("a2", one.inputs, (T("d", "int8", (4, 8)),), (Launch("add", (st, chained)),))
    prog.validate()
    (plan,) = launch_plans(prog)
    assert plan.refused and plan.image is None
    assert plan.why == "design 'add' runs one add stage, the launch has ['add', 'add']"


def test_design_missing_from_the_manifest_has_no_entry() -> None:
    spec, _ = CASES["gelu_static_tanh_offset"]
    (plan,) = launch_plans(one_stage_program("g", **spec), manifest={"designs": {}})
    assert plan.entry is None and plan.image is not None


def test_payload_version_is_in_the_cache_key_and_header() -> None:
    spec, _ = CASES["gelu_static_tanh_offset"]
    blob = payload_bytes(one_stage_program("g", **spec))
    assert read_header(blob).version == FORMAT_VERSION == 4
    assert versions()["payload_format"] == FORMAT_VERSION
    assert np.frombuffer(blob[:8], np.uint8).tobytes() == b"XDNAEPCX"


def test_a_launch_without_layout_is_refused_not_the_compile(monkeypatch) -> None:
    """A launch the layout code fails on (any exception): the payload still carries
    the program (emulator) and the refusal, which the plugin announces."""
    from xdna_ep.ort import npu_image

    def broken(*_a, **_k):
        raise IndexError("a layout bug")

    monkeypatch.setattr(npu_image, "plan_launch", broken)
    b = np.ones((2, 4, 8), np.float32)
    prog = one_stage_program("a", "add", [T("a", "float32", (2, 4, 8))],
                             [T("c", "float32", (2, 4, 8))], consts={"b": b})
    (plan,) = launch_plans(prog)
    assert plan.refused and plan.why.startswith("no NPU layout for this launch: IndexError")
    assert read_header(payload_bytes(prog)).version == FORMAT_VERSION


def test_an_add_with_a_constant_b_of_as_shape_has_an_image() -> None:
    """Its output rule takes b from the constants (it used to read a missing input)."""
    b = np.ones((2, 4, 8), np.float32)
    prog = one_stage_program("a", "add", [T("a", "float32", (2, 4, 8))],
                             [T("c", "float32", (2, 4, 8))], consts={"b": b})
    (plan,) = launch_plans(prog)
    assert not plan.refused and plan.image is not None
