"""Issue 15 on the NPU path: every add form the add design runs (b equal to a, b
broadcast over a's leading dims as a second activation or a constant, static and
dynamic int8, the position form reading a transposed) through the FAKE pyxrt
(NOT XRT; no NPU here) equals the emulator byte for byte, with b stored ONCE in
IN or WEIGHTS. The FAKE hardware reads IN / WEIGHTS through the design's own DMA
patterns (kernels/add/geometry.py), so a host layout that disagrees with the
design gives wrong bytes, and the traced IRON design (kernels/iron_check.py) reads
and writes exactly where the host's slots are, element by element."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from xdna_ep._kernels.add import geometry as G
from xdna_ep.compile.program import Launch, Program, Stage, TensorSpec
from xdna_ep.runtime import EmulatorDevice, XrtDevice
from xdna_ep.runtime.errors import XdnaDeviceError
from xdna_ep.runtime.layout import LaunchParams, RegionLayout
from xdna_ep.runtime.shapes import BufferSpec

from fakes.fake_hardware import add_design_run, write_fake_designs_for  # isort: skip
from fakes.fake_pyxrt import make_fake_pyxrt  # isort: skip

KERNELS = Path(__file__).resolve().parent.parent / "kernels"
RNG = np.random.default_rng(15)


def f32(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def i8(*shape: int) -> np.ndarray:
    return RNG.integers(-127, 128, size=shape, dtype=np.int8)


def s(v: float) -> np.ndarray:
    return np.array([v], np.float32)


def _t(name: str, a: np.ndarray) -> TensorSpec:
    return TensorSpec(name, str(a.dtype), tuple(a.shape))


def _program(name: str, feeds: dict[str, np.ndarray], out: dict[str, np.ndarray],
             consts: dict[str, np.ndarray] | None = None, attrs: dict | None = None,
             inputs: tuple[str, ...] | None = None) -> Program:
    consts = consts or {}
    st = Stage("add", inputs or tuple(feeds), tuple(out), {r: f"{name}.{r}" for r in consts},
               dict(attrs or {}))
    prog = Program(name, tuple(_t(k, v) for k, v in feeds.items()),
                   tuple(_t(k, v) for k, v in out.items()), (Launch("add", (st,)),),
                   {f"{name}.{r}": v for r, v in consts.items()})
    prog.validate()
    return prog


STATIC = {"a_scale": 0.04, "b_scale": 0.05, "out_scale": 0.06}
# name -> (feeds, output templates, consts, attrs, stage inputs)
FORMS = {
    "f32_equal": ({"a": f32(4, 9), "b": f32(4, 9)}, {"c": f32(4, 9)}, None, None, None),
    "f32_b_suffix": ({"a": f32(3, 5, 7), "b": f32(5, 7)}, {"c": f32(3, 5, 7)}, None, None, None),
    "f32_b_leading_one": ({"a": f32(2, 2, 6, 8), "b": f32(1, 6, 8)}, {"c": f32(2, 2, 6, 8)},
                          None, None, None),
    "f32_b_row": ({"a": f32(6, 10), "b": f32(10)}, {"c": f32(6, 10)}, None, None, None),
    "f32_a_plus_a": ({"a": f32(3, 8)}, {"c": f32(3, 8)}, None, None, ("a", "a")),
    "f32_constant_b": ({"a": f32(3, 6, 8)}, {"c": f32(3, 6, 8)}, {"b": f32(6, 8)}, None, None),
    "f32_position_form": ({"a": f32(2, 8, 6)}, {"c": f32(2, 6, 8)}, {"b": f32(6, 8)},
                          {"transpose_a": True, "table_rows": 6}, None),
    "int8_static_broadcast": ({"a": i8(5, 3, 8), "b": i8(3, 8)}, {"c": i8(5, 3, 8)}, None,
                              STATIC, None),
    "int8_dynamic_broadcast": ({"a": i8(3, 4, 6), "as": s(0.03), "b": i8(1, 4, 6),
                                "bs": s(0.07)}, {"c": i8(3, 4, 6), "cs": s(0.0)}, None,
                               {"dynamic": True}, None),
}


@pytest.fixture()
def add_npu(tmp_path: Path):
    d = tmp_path / "xclbin"
    manifest = write_fake_designs_for(d, ("add",))
    fake = make_fake_pyxrt()
    return fake, XrtDevice(fake, manifest=manifest, xclbin_dirs=[d])


@pytest.mark.parametrize("form", sorted(FORMS))
def test_every_add_form_runs_on_the_fake_npu_with_the_emulators_bytes(form: str,
                                                                       add_npu) -> None:
    fake, dev = add_npu
    feeds, out, consts, attrs, inputs = FORMS[form]
    prog = _program(form, feeds, out, consts, attrs, inputs)
    want = EmulatorDevice().load(prog).run(feeds)
    got = dev.load(prog).run(feeds)
    for name in out:
        assert got[name].dtype == want[name].dtype and got[name].shape == want[name].shape
        assert got[name].tobytes() == want[name].tobytes(), f"{form}: {name} differs"
    assert not [c for n, c in fake.calls if n == "device.error"]
    (sent,) = fake.hub.uploads
    # b is stored once: IN holds each distinct input at its own size (64-byte aligned)
    in_bytes = sum(G.up(v.nbytes, G.ALIGN) for v in feeds.values())
    assert len(sent.inputs) >= in_bytes
    params = LaunchParams.decode(np.frombuffer(sent.params, np.uint8))
    assert params.inputs.size == in_bytes
    geo = G.AddGeometry.from_json(params.geometry)
    a = feeds["a"]
    assert geo.elements == a.size and geo.reps * geo.period == a.size
    if consts:
        assert geo.b_source == G.B_WEIGHTS
        assert geo.period == consts["b"].size
    else:
        assert geo.b_source == G.B_IN


def _launch_bytes(prog: Program, feeds: dict[str, np.ndarray], add_npu):
    fake, dev = add_npu
    dev.load(prog).run(feeds)
    (sent,) = fake.hub.uploads
    params = LaunchParams.decode(np.frombuffer(sent.params, np.uint8))
    return params, np.frombuffer(sent.inputs, np.uint8).copy(), \
        np.frombuffer(sent.weights, np.uint8).copy()


def test_the_fake_reads_b_where_the_design_does_so_a_disagreeing_host_fails(add_npu) -> None:
    """The FAKE reads IN through the design's patterns, not the host's slots: the
    same bytes give the emulator's c; b moved to where the design does not read it
    gives another c; a PARAMS geometry the design does not compute is refused."""
    feeds, out, *_ = FORMS["f32_b_suffix"]
    prog = _program("moved", feeds, out)
    params, raw_in, raw_w = _launch_bytes(prog, feeds, add_npu)
    want = (feeds["a"] + feeds["b"]).astype(np.float32)
    good = add_design_run(params, raw_in, raw_w)
    c = good[:want.nbytes].view(np.float32).reshape(want.shape)
    assert c.tobytes() == want.tobytes()
    # a host that packed b before a: the design reads a's range where b lies
    swapped = RegionLayout.plan([("b", BufferSpec.of(feeds["b"])),
                                 ("a", BufferSpec.of(feeds["a"]))])
    bad_in = swapped.pack({"a": feeds["a"], "b": feeds["b"]})
    bad = add_design_run(params, bad_in, raw_w)[:want.nbytes].view(np.float32)
    assert bad.tobytes() != want.tobytes()
    # b placed one ALIGN later than the design's packing rule: wrong numbers
    shifted = np.zeros(raw_in.size + G.ALIGN, np.uint8)
    b_at = params.inputs.slots[1].offset
    shifted[:b_at] = raw_in[:b_at]
    shifted[b_at + G.ALIGN:] = raw_in[b_at:]
    moved = add_design_run(params, shifted, raw_w)[:want.nbytes].view(np.float32)
    assert moved.tobytes() != want.tobytes()
    off = dict(params.geometry, b_offset=params.geometry["b_offset"] + G.ALIGN)
    lying = LaunchParams(params.design, params.stages, params.inputs, params.outputs,
                         params.weights, params.version, off)
    with pytest.raises(ValueError, match="PARAMS geometry"):
        add_design_run(lying, shifted, raw_w)


def test_a_launch_the_add_design_cannot_run_is_refused_and_falls_back_announced(
        add_npu) -> None:
    """A launch named 'add' that is not one add stage is a device error before
    anything is submitted; the fallback device runs it on the emulator, announced."""
    from xdna_ep.runtime.fallback import FallbackDevice

    fake, dev = add_npu
    a, b = f32(3, 6, 8), f32(6, 8)
    stages = (Stage("add", ("a", "b"), ("c",)), Stage("add", ("c", "b"), ("y",)))
    prog = Program("two_adds", (_t("a", a), _t("b", b)), (_t("y", a),),
                   (Launch("add", stages),))
    prog.validate()
    feeds = {"a": a, "b": b}
    want = EmulatorDevice().load(prog).run(feeds)["y"]
    with pytest.raises(XdnaDeviceError, match=r"design 'add' runs one add stage, the launch "
                                              r"has \['add', 'add'\]"):
        dev.load(prog).run(feeds)
    assert not [n for n, _ in fake.calls if n == "device.completed"]  # nothing submitted
    with pytest.warns(RuntimeWarning, match="falling back to the emulator"):
        got = FallbackDevice(dev, EmulatorDevice()).load(prog).run(feeds)["y"]
    assert got.tobytes() == want.tobytes()


# --- the traced IRON design reads and writes where the host's slots are ----------------
def _trace(*args):
    sys.path.insert(0, str(KERNELS))
    import build_xclbins
    import iron_check as IC

    return IC.trace(lambda: build_xclbins.load_design("add/design.py"), "add_design", *args)


def _elements_of(m) -> np.ndarray:
    """Element index (in the move's dtype) of every element a traced DMA task moves,
    in order."""
    idx = np.array([m.offset], dtype=np.int64)
    for size, stride in zip(m.sizes, m.strides, strict=True):
        idx = (idx[:, None] + stride * np.arange(size, dtype=np.int64)[None, :]).reshape(-1)
    return idx


@pytest.mark.parametrize("args", [
    ("float32", 4 * 2 * 640, 160, 2 * 640),                  # b [2*640] over 4 batches
    ("int8", 3 * 1280, 320, 1280),                           # static int8, reps 3
    ("int8", 2 * 1280, 160, 1280, "in", True),               # dynamic int8
    ("float32", 2 * 1280, 320, 1280, "weights"),             # constant b in WEIGHTS
    ("float32", 2 * 40 * 64, 640, 40 * 64, "weights", False, 40),   # position form
    ("float32", 1280, 320),                                  # equal shapes
])
def test_traced_add_design_pairs_a_with_b_as_the_host_lays_them_out(args) -> None:
    """From the traced DMA tasks alone: core column c's k-th a element, b element and
    c element are a[i], b[j] and c[i] of the host's buffers (slots of
    runtime/layout.py) with j = i mod period (the broadcast), for every i exactly
    once; the position form's a element is a[b, d, t] for c's (b, t, d)."""
    dtype, elements, tile, *rest = args
    period = rest[0] if rest else elements
    b_source = rest[1] if len(rest) > 1 else G.B_IN
    dynamic = bool(rest[2]) if len(rest) > 2 else False
    a_rows = rest[3] if len(rest) > 3 else 0
    rep = _trace(*args)
    item = 4 if dtype == "float32" else 1
    ins = [("a", BufferSpec(dtype, (elements,)))]
    if dynamic:
        ins += [("as", BufferSpec("float32", (1,))), ("b", BufferSpec(dtype, (period,))),
                ("bs", BufferSpec("float32", (1,)))]
    elif b_source == G.B_IN:
        ins += [("b", BufferSpec(dtype, (period,)))]
    host_in = RegionLayout.plan(ins)
    slot = {x.name: x for x in host_in.slots}
    assert rep.arg_bytes[0] <= host_in.size
    scales, c_scale = (1, 1, 2, 4), (1, 1, 1, 4)          # dynamic int8's 4-byte moves
    in_fills = [m for m in rep.moves if m.kind == "fill" and m.arg == 0 and m.sizes != scales]
    if b_source == G.B_IN:              # per column: a, then b
        a_moves, b_moves = in_fills[0::2], in_fills[1::2]
    else:                               # b from WEIGHTS
        a_moves = in_fills
        b_moves = [m for m in rep.moves if m.kind == "fill" and m.arg == 2]
    c_moves = [m for m in rep.moves if m.kind == "drain" and m.sizes != c_scale]
    assert len(a_moves) == len(b_moves) == len(c_moves) == G.COLUMNS
    seen = np.zeros(elements, np.int64)
    for ma, mb, mc in zip(a_moves, b_moves, c_moves, strict=True):
        ia = _elements_of(ma) - slot["a"].offset // item
        ic = _elements_of(mc)
        ib = _elements_of(mb) - (slot["b"].offset // item if b_source == G.B_IN else 0)
        assert ia.size == ib.size == ic.size
        if a_rows:
            bb, rem = np.divmod(ic, period)
            t, d = np.divmod(rem, period // a_rows)
            assert (ia == (bb * (period // a_rows) + d) * a_rows + t).all()
        else:
            assert (ia == ic).all()
        assert (ib == ic % period).all()
        seen[ic] += 1
    assert (seen == 1).all()
    if dynamic:
        (sc,) = [m for m in rep.moves if m.kind == "fill" and m.sizes == scales]
        assert _elements_of(sc).tolist() == [slot[n].offset + k for n in ("as", "bs")
                                             for k in range(4)]
        (cs,) = [m for m in rep.moves if m.kind == "drain" and m.sizes == c_scale]
        out = RegionLayout.plan([("c", BufferSpec(dtype, (elements,))),
                                 ("cs", BufferSpec("float32", (1,)))])
        assert cs.offset == out.slots[1].offset


# --- compiled models: the compiler's broadcasting adds on the FAKE NPU -----------------
def _compiled(model, feeds: list[dict[str, np.ndarray]], quantization: str) -> Program:
    from xdna_ep.compile import CompileOptions, compile_plan
    from xdna_ep.partition import partition_model

    plan = partition_model(model, use_cost_model=False)
    progs = compile_plan(model, plan, CompileOptions(quantization, feeds))
    (prog,) = progs.values()
    return prog


def _table_add_model():
    """x [B, T, D] -> MatMul -> + constant [1, T, D] table -> MatMul (the dynamo
    export's constant-folded position embedding: ops/add.py match_table_add)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "w2"),
             numpy_helper.from_array(rng.standard_normal((1, 5, 8)).astype(np.float32), "pos")]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
             helper.make_node("Add", ["h", "pos"], ["s"], name="pos_add"),
             helper.make_node("MatMul", ["s", "w2"], ["y"], name="mm2")]
    g = helper.make_graph(nodes, "table_add",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 5, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 5, 8])],
                          inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _region_feed(model, feed: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    """The region's inputs for one model feed (a CPU Gather's output among them),
    computed by onnxruntime on the CPU with those tensors exposed as outputs."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    extra = [n for n in names if n not in feed]
    m.graph.output.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                          for n in extra)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    got = dict(zip(extra, sess.run(extra, feed), strict=True)) if extra else {}
    return {n: feed[n] if n in feed else got[n] for n in names}


@pytest.mark.parametrize("form", ["activation_1TD", "activation_TD", "constant_table"])
@pytest.mark.parametrize("quantization", ["static", "dynamic"])
def test_compiled_broadcasting_add_runs_on_the_fake_npu(form: str, quantization: str,
                                                        tmp_path: Path) -> None:
    """The compiler's broadcasting adds (GPT-2's token + position embedding as a
    second activation, [1, T, D] or [T, D]; a constant table) compile into an 'add'
    launch whose b is stored once, and the whole program through the FAKE pyxrt
    equals the emulator byte for byte."""
    from test_add_broadcast import _model

    from fakes.fake_pyxrt import make_fake_pyxrt as fake_pyxrt  # isort: skip

    rng = np.random.default_rng(4)
    if form == "constant_table":
        model = _table_add_model()
        feeds = [{"x": rng.standard_normal((3, 5, 8)).astype(np.float32)} for _ in range(3)]
    else:
        shape = (1, 5) if form == "activation_1TD" else (5,)
        model = _model(shape)
        feeds = [{"x": rng.standard_normal((3, 5, 8)).astype(np.float32),
                  "ids": np.arange(5, dtype=np.int64).reshape(shape)} for _ in range(3)]
    prog = _compiled(model, feeds, quantization)
    adds = [ln for ln in prog.launches if ln.design == "add"]
    assert len(adds) == 1, [ln.design for ln in prog.launches]
    d = tmp_path / "xclbin"
    manifest = write_fake_designs_for(d, [ln.design for ln in prog.launches])
    fake = fake_pyxrt()
    dev = XrtDevice(fake, manifest=manifest, xclbin_dirs=[d])
    feed = _region_feed(model, feeds[0], [t.name for t in prog.inputs])
    got, want = dev.load(prog).run(feed), EmulatorDevice().load(prog).run(feed)
    for k in want:
        assert got[k].tobytes() == want[k].tobytes(), k
    assert not [c for n, c in fake.calls if n == "device.error"]
    sent = [u for u in fake.hub.uploads if u.design == "add"]
    assert len(sent) == 1
    geo = LaunchParams.decode(np.frombuffer(sent[0].params, np.uint8)).geometry
    assert geo is not None and geo["elements"] == 3 * 5 * 8 and geo["period"] == 5 * 8
    assert geo["b_source"] == (G.B_WEIGHTS if form == "constant_table" else G.B_IN)
