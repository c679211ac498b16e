"""runtime.layout and runtime.shapes: the BO layout both the xrt device and the fake use."""

from __future__ import annotations

import numpy as np
import pytest
from plugin_support import one_stage_program
from test_plugin_stages import CASES as STAGE_CASES

from xdna_ep.runtime import EmulatorDevice
from xdna_ep.runtime.layout import (
    ALIGN,
    WORDS,
    WORDS_BYTES,
    LaunchParams,
    RegionLayout,
    launch_io,
    stage_consts,
)
from xdna_ep.runtime.shapes import BufferSpec, output_specs

from fakes.kernels_for_tests import make_program  # isort: skip


def test_region_layout_round_trip_and_alignment() -> None:
    a = np.arange(5, dtype=np.int8)
    b = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    lay = RegionLayout.plan([("a", BufferSpec.of(a)), ("b", BufferSpec.of(b))])
    assert [s.offset for s in lay.slots] == [0, ALIGN]
    assert lay.size == 2 * ALIGN
    raw = lay.pack({"a": a, "b": b})
    assert raw.dtype == np.uint8 and raw.size == lay.size
    assert not raw[5:ALIGN].any()                     # padding is zero
    assert raw[ALIGN:ALIGN + 24].tobytes() == b.tobytes()
    back = lay.unpack(raw.view(np.int8))              # pyxrt's bo.read gives int8
    np.testing.assert_array_equal(back["a"], a)
    assert back["b"].dtype == np.float32 and back["b"].tobytes() == b.tobytes()


def test_region_layout_rejects_wrong_buffers() -> None:
    lay = RegionLayout.plan([("a", BufferSpec("int8", (4,)))])
    with pytest.raises(ValueError, match="'a'"):
        lay.pack({"a": np.zeros(4, np.float32)})
    with pytest.raises(ValueError, match="layout needs"):
        lay.unpack(np.zeros(3, np.uint8))


def test_empty_region_still_has_a_bo_sized_payload() -> None:
    assert RegionLayout.plan([]).size == ALIGN        # XRT cannot allocate 0 bytes


def test_launch_params_round_trip_and_bad_magic() -> None:
    lay = RegionLayout.plan([("x", BufferSpec("float32", (3, 8)))])
    words = tuple(range(-3, WORDS - 3))
    p = LaunchParams("d", ({"kernel": "k", "inputs": ["x"], "outputs": ["y"],
                           "attrs": {"s": 0.5}, "raw": True, "consts": {}},), lay, lay, lay,
                     words=words)
    raw = p.encode()
    assert raw.size % ALIGN == 0
    assert LaunchParams.decode(raw) == p
    assert LaunchParams.decode(bytes(raw)) == p
    # the designs read the words as little-endian int32 from byte 0; the header follows
    assert tuple(raw[:WORDS_BYTES].view("<i4")) == words
    assert raw[WORDS_BYTES:WORDS_BYTES + 8].tobytes() == b"XDNAEPL1"
    bad = raw.copy()
    bad[WORDS_BYTES] ^= 0xFF
    with pytest.raises(ValueError, match="magic"):
        LaunchParams.decode(bad)
    old = raw[WORDS_BYTES:]          # a layout-1 block (header at byte 0) is refused
    with pytest.raises(ValueError, match="layout version 2"):
        LaunchParams.decode(old)
    with pytest.raises(ValueError, match="16 words"):
        LaunchParams("d", (), lay, lay, lay, words=(0,) * 4)


def test_launch_io_keeps_intermediates_on_device() -> None:
    io = launch_io(make_program())
    # launch 0: h stays inside; q, qs feed launch 1 and qs is a program output
    assert io[0].inputs == ("x",) and io[0].outputs == ("q", "qs")
    assert io[1].inputs == ("q", "qs") and io[1].outputs == ("z",)
    assert io[2].inputs == ("z",) and io[2].outputs == ("q2", "q2s")


def test_stage_output_rules_follow_stages_md() -> None:
    ins = [BufferSpec("int8", (2, 5, 16))]
    w = {"weight": np.zeros((16, 24), np.int8)}
    assert output_specs("matmul", None, ins, w, {"out": "int8"}) == \
        [BufferSpec("int8", (2, 5, 24))]
    # conv1d: Tout = (T + 2 pad - Kw) // stride + 1 = (3000 + 2 - 3)//2 + 1 = 1500
    x = [BufferSpec("float32", (1, 80, 3000))]
    cw = {"weight": np.zeros((384, 80, 3), np.int8)}
    assert output_specs("conv1d", None, x, cw, {"stride": 2, "pad": 1}) == \
        [BufferSpec("float32", (1, 384, 1500))]
    assert output_specs("quantize", None, [BufferSpec("float32", (4,))], {},
                        {"dynamic": True}) == [BufferSpec("int8", (4,)),
                                               BufferSpec("float32", (1,))]
    with pytest.raises(ValueError, match="out"):
        output_specs("layernorm", None, ins, {}, {"out": "int4"})


def test_unknown_kernel_has_no_output_rule() -> None:
    with pytest.raises(NotImplementedError, match="no_such_kernel"):
        output_specs("no_such_kernel", None, [], {}, {})


def test_framed_slots_place_windows_and_share_one_matrix() -> None:
    """A Frame puts a buffer at its origin inside the design's array (the rest
    zero), blocks sharing one frame land side by side, and PARAMS JSON keeps both."""
    from xdna_ep.runtime.layout import Frame

    mel = np.arange(1, 13, dtype=np.float32).reshape(2, 2, 3)
    q = np.arange(6, dtype=np.int8).reshape(1, 3, 2)
    k = (10 + np.arange(3, dtype=np.int8)).reshape(1, 3, 1)
    lay = RegionLayout.plan(
        [("mel", BufferSpec.of(mel)), ("q", BufferSpec.of(q)), ("k", BufferSpec.of(k))],
        frames={"mel": Frame((2, 2, 6), (0, 0, 1)), "q": Frame((4, 3), (0, 0)),
                "k": Frame((4, 3), (0, 2), share="q")})
    assert [s.offset for s in lay.slots] == [0, 2 * ALIGN, 2 * ALIGN]
    raw = lay.pack({"mel": mel, "q": q, "k": k})
    dev = raw[:96].view(np.float32).reshape(2, 2, 6)
    assert (dev[:, :, 0] == 0).all() and (dev[:, :, 4:] == 0).all()
    assert (dev[:, :, 1:4] == mel).all()
    zq = raw[2 * ALIGN:2 * ALIGN + 12].view(np.int8).reshape(4, 3)
    assert zq[:3].tolist() == [[0, 1, 10], [2, 3, 11], [4, 5, 12]] and not zq[3].any()
    back = RegionLayout.from_json(lay.to_json()).unpack(raw)
    for name, a in (("mel", mel), ("q", q), ("k", k)):
        assert back[name].tobytes() == a.tobytes() and back[name].shape == a.shape
    with pytest.raises(ValueError, match="does not fit its frame"):
        RegionLayout.plan([("q", BufferSpec.of(q))], frames={"q": Frame((2, 3), (0, 0))})


@pytest.mark.parametrize("case", sorted(STAGE_CASES))
def test_output_rule_matches_what_the_stage_writes(case: str) -> None:
    """Every stage kind's output rule (what the NPU path allocates before a launch)
    names exactly the buffers the emulator writes, dynamic scales included."""
    spec, feeds = STAGE_CASES[case]
    prog = one_stage_program(case, **spec)
    st = prog.launches[0].stages[0]
    got = EmulatorDevice().load(prog).run(feeds)
    rule = output_specs(st.kernel, None, [BufferSpec.of(feeds[b]) for b in st.inputs],
                        stage_consts(prog, st), st.attrs)
    assert rule == [BufferSpec.of(got[t.name]) for t in prog.outputs], case


def test_dynamic_conv_frontend_out_keeps_the_reduced_tensors_and_scales() -> None:
    """A conv_frontend launch with dynamic-mode stages reduces its scales on the array:
    its OUT adds conv1's raw output c1 [B, d, t1], conv2's c2 [B, t2, d] and one params
    record per reducing stage (the two dynamic convs and the two dynamic quantizes,
    kernels/fused/scratch.py) after the static entries; a static launch has none of
    them. A set flag raises the quantize contract's error naming the reduced buffer;
    clear flags pass."""
    from xdna_ep._kernels.fused import scratch
    from xdna_ep.compile.program import Stage
    from xdna_ep.runtime.layout import (
        SCRATCH_PREFIX,
        check_scale_flags,
        plan_out,
        reductions,
        scales_slot,
    )
    from xdna_ep.runtime.shapes import BufferSpec

    b, mels, d, frames = 2, 80, 384, 60
    dims = scratch.conv_frontend_dims(mels, d, frames)
    known = {"mel": BufferSpec("float32", (b, mels, frames)),
             "y": BufferSpec("float32", (b, frames // 2, d))}
    consts = ({"weight": np.zeros((d, mels, 3), np.int8)},)
    chain = [("conv1d", "mel"), ("quantize", "c1"), ("gelu", "q1"), ("dequantize", "g1"),
             ("conv1d", "h"), ("quantize", "c2"), ("gelu", "q2"), ("dequantize", "g2"),
             ("add", "h2")]

    def stages(dynamic: bool) -> list[Stage]:
        attrs = {"dynamic": True} if dynamic else {}
        outs = [x for _, x in chain[1:]] + ["y"]
        return [Stage(k, (x,), (o,), {}, dict(attrs) if k != "add" else {})
                for (k, x), o in zip(chain, outs, strict=True)]

    static = plan_out("conv_frontend", stages(False), known, ("y",), consts)
    dynamic = plan_out("conv_frontend", stages(True), known, ("y",), consts)
    pre = f"{SCRATCH_PREFIX}conv_frontend/"
    assert [n for n, _ in static.specs] == ["y", pre + "h"]
    assert [n for n, _ in dynamic.specs] == ["y", pre + "h", pre + "c1", pre + "c2",
                                             scales_slot("conv_frontend")]
    sizes = {n: s.nbytes for n, s in dynamic.specs}
    assert sizes[pre + "c1"] == 4 * b * d * dims.t1
    assert sizes[pre + "c2"] == 4 * b * dims.t2 * d
    assert sizes[scales_slot("conv_frontend")] == 16 * scratch.CONV_REDUCTIONS == 64
    assert [st.inputs[0] for st in reductions(stages(True))] == ["mel", "c1", "h", "c2"]
    assert dims.scratch_bytes(scratch.SCALES, b, d) == 64

    flags = np.tile(np.float32([0.5, 2.0, 0.0, 0.0]), (4, 1))   # {scale, 1/scale, flag, 0}
    check_scale_flags("conv_frontend", stages(True),
                      {scales_slot("conv_frontend"): flags.reshape(-1).view(np.uint8)})
    for rec, buf in enumerate(("mel", "c1", "h", "c2")):
        flags[:, 2] = 0.0
        flags[rec, 2] = 1.0
        with pytest.raises(ValueError, match=f"NaN or inf: no dynamic int8 scale.*'{buf}'"):
            check_scale_flags("conv_frontend", stages(True),
                              {scales_slot("conv_frontend"): flags.reshape(-1).view(np.uint8)})


def test_dynamic_conv_frontend_refuses_attrs_it_is_not_built_for() -> None:
    """The dynamic conv_frontend design is built for the compiler's gelu-input
    neg_limit and the erf gelu: a launch asking for others gets a refusal (the NPU
    paths then run it on the emulator), the compiled chain gets none, and a static
    launch is never refused for it."""
    from xdna_ep._kernels.fused import scratch
    from xdna_ep.compile.program import Launch, Stage
    from xdna_ep.runtime.layout import launch_refusal

    def launch(neg_limit: float, approximate: str, dynamic: bool = True) -> Launch:
        a = {"dynamic": True} if dynamic else {}
        q = {**a, "neg_limit": neg_limit} if dynamic else {"out_scale": 0.1}
        return Launch("conv_frontend", (
            Stage("conv1d", ("mel",), ("c1",), {}, dict(a)),
            Stage("quantize", ("c1",), ("q1",), {}, q),
            Stage("gelu", ("q1",), ("g1",), {}, {**a, "approximate": approximate}),
            Stage("dequantize", ("g1",), ("h",), {}, dict(a))))

    assert launch_refusal(launch(scratch.CONV_NEG_LIMIT, "none")) == ""
    assert "neg_limit" in launch_refusal(launch(2.0, "none"))
    assert "'none' gelu table" in launch_refusal(launch(scratch.CONV_NEG_LIMIT, "tanh"))
    assert launch_refusal(launch(2.0, "tanh", dynamic=False)) == ""


@pytest.mark.parametrize("design", ["ffn_block", "ffn_ln_matmul"])
def test_dynamic_mlp_designs_refuse_attrs_they_are_not_built_for(design: str) -> None:
    """The MLP designs' dynamic forms build their reducers for neg_limit 0 (a, a2) and
    CONV_NEG_LIMIT (the gelu input f) and the erf gelu table: the compiled chain is
    accepted, another neg_limit on either quantize or a tanh gelu is refused."""
    from xdna_ep._kernels.fused import scratch
    from xdna_ep.compile.program import Launch, Stage
    from xdna_ep.runtime.layout import launch_refusal

    def launch(lims: tuple[float, ...], approximate: str = "none") -> Launch:
        d = {"dynamic": True}
        stages = [Stage("layernorm", ("x",), ("a",), {}, {"out": "float32"}),
                  Stage("quantize", ("a",), ("aq", "as"), {}, {**d, "neg_limit": lims[0]}),
                  Stage("matmul", ("aq", "as"), ("f",), {}, {**d, "out": "float32"}),
                  Stage("quantize", ("f",), ("fq", "fs"), {}, {**d, "neg_limit": lims[1]}),
                  Stage("gelu", ("fq", "fs"), ("h", "hs"), {}, {**d, "approximate": approximate}),
                  Stage("matmul", ("h", "hs"), ("g",), {}, {**d, "out": "float32"}),
                  Stage("add", ("x", "g"), ("y",))]
        if design == "ffn_ln_matmul":
            stages += [Stage("layernorm", ("y",), ("a2",), {}, {"out": "float32"}),
                       Stage("quantize", ("a2",), ("bq", "bs"), {}, {**d, "neg_limit": lims[2]}),
                       Stage("matmul", ("bq", "bs"), ("z",), {}, {**d, "out": "float32"})]
        return Launch(design, tuple(stages))

    built = scratch.DYNAMIC_NEG_LIMITS[design]
    assert built[1] == scratch.CONV_NEG_LIMIT and built[0] == 0.0
    assert launch_refusal(launch(built)) == ""
    for k in range(len(built)):
        other = tuple(2.0 if i == k else lim for i, lim in enumerate(built))
        assert "neg_limit" in launch_refusal(launch(other)), k
    assert "'none' gelu table" in launch_refusal(launch(built, "tanh"))
