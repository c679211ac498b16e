"""The NPU designs against the FAKE IRON tracer (kernels/iron_check.py) and the host
layout: the tracer catches what it claims to (memory, bounds, volumes), its static
scratch table matches the AIE sources, and every fused design writes and reads OUT
exactly where runtime/layout.py reserves its slots (one definition:
kernels/fused/scratch.py). `build_xclbins.py --check` (tests/test_manifest.py)
traces every design for every Whisper size."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from xdna_ep.compile.program import Launch, Stage
from xdna_ep.runtime.layout import (
    SCRATCH_PREFIX,
    RegionLayout,
    in_frames,
    in_reserve,
    plan_out,
)
from xdna_ep.runtime.shapes import BufferSpec

KERNELS = Path(__file__).resolve().parent.parent / "kernels"
sys.path.insert(0, str(KERNELS))
import build_xclbins  # noqa: E402
import iron_check as IC  # noqa: E402
import whisper_shapes as W  # noqa: E402


def _trace(rel: str, fn: str, *args) -> IC.Report:
    return IC.trace(lambda: build_xclbins.load_design(rel), fn, *args)


# --- the tracer catches what it claims to ------------------------------------------
def _toy(obj_elems: int, depth: int, fill_elems: int, core_takes: int, offset: int = 0):
    """A one-core design: the host fills `fill_elems` int8, the core takes `core_takes`
    objects of `obj_elems`, drains the same back."""
    def build():
        from aie.helpers.taplib import TensorAccessPattern
        from aie.iron import Kernel, ObjectFifo, Program, Runtime, Worker

        t = np.ndarray[(obj_elems,), np.dtype[np.int8]]
        big = np.ndarray[(4096,), np.dtype[np.int8]]
        fin, fout = ObjectFifo(t, name="in", depth=depth), ObjectFifo(t, name="out", depth=depth)
        k = Kernel("copy", "toy.o", [t, t])

        def core(a, b, kern):
            for _ in range(core_takes):
                x, y = a.acquire(1), b.acquire(1)
                kern(x, y)
                a.release(1)
                b.release(1)

        rt = Runtime()
        with rt.sequence(big, big) as (src, dst):
            rt.start(Worker(core, [fin.cons(), fout.prod(), k]))
            tap = TensorAccessPattern((1, 4096), offset, [1, 1, 1, fill_elems], [0, 0, 0, 1])
            rt.fill(fin.prod(), src, tap)
            rt.drain(fout.cons(), dst, tap)
        return Program(None, rt).resolve_program(None)

    import types
    return types.SimpleNamespace(build=build)


def test_tracer_accepts_a_consistent_design() -> None:
    rep = IC.trace(lambda: _toy(256, 2, 1024, 4), "build")
    assert rep.workers == 1 and rep.core_bytes == [2 * 2 * 256 + IC.DEFAULT_STACK]
    assert rep.core_streams == [(1, 1)] and not rep.over_dma_channels


def _fan_in(inputs: int):
    """A one-core design consuming `inputs` host-filled fifos and producing one."""
    def build():
        from aie.iron import Kernel, ObjectFifo, Program, Runtime, Worker

        t = np.ndarray[(64,), np.dtype[np.int8]]
        fins = [ObjectFifo(t, name=f"in{i}", depth=1) for i in range(inputs)]
        fout = ObjectFifo(t, name="out", depth=1)
        k = Kernel("sum", "toy.o", [t] * (inputs + 1))

        def core(*args):
            *ins, out, kern = args
            objs = [f.acquire(1) for f in ins] + [out.acquire(1)]
            kern(*objs)
            for f in (*ins, out):
                f.release(1)

        rt = Runtime()
        with rt.sequence(*([t] * (inputs + 1))) as bufs:
            rt.start(Worker(core, [f.cons() for f in fins] + [fout.prod(), k]))
            for f, b in zip(fins, bufs, strict=False):
                rt.fill(f.prod(), b)
            rt.drain(fout.cons(), bufs[-1])
        return Program(None, rt).resolve_program(None)

    import types
    return types.SimpleNamespace(build=build)


@pytest.mark.parametrize("inputs,over", [(2, False), (3, True)])
def test_tracer_counts_fifo_ends_against_the_tiles_dma_channels(inputs: int, over: bool) -> None:
    """A compute tile has two input DMA channels: a core consuming three host fifos is
    flagged (placement may still share memory for core-to-core fifos, hence a flag)."""
    rep = IC.trace(lambda: _fan_in(inputs), "build")
    assert rep.core_streams == [(inputs, 1)] and rep.max_streams == (inputs, 1)
    assert rep.over_dma_channels is over


@pytest.mark.parametrize("args,match", [
    ((256, 2, 1024, 3), "a core takes 768 bytes, 1024 supplied"),
    ((256, 2, 1024, 4, 3500), "outside tensor"),
    ((16 * 1024, 2, 16 * 1024, 1), "data memory"),
])
def test_tracer_rejects(args: tuple, match: str) -> None:
    if args[0] == 16 * 1024:   # 2 fifos x depth 2 x 16 KiB = 64 KiB + stack: one core too many
        def load():
            mod = _toy(16 * 1024, 2, 4096, 1)
            return mod
        with pytest.raises(IC.TraceError, match=match):
            IC.trace(load, "build")
        return
    with pytest.raises(IC.TraceError, match=match):
        IC.trace(lambda: _toy(*args), "build")


def test_static_scratch_table_matches_the_aie_sources() -> None:
    """Every file-scope array iron_check counts still exists in its source."""
    for key, (rel, nbytes) in IC.STATICS.items():
        text = (KERNELS / rel).read_text()
        name = key.split(".", 1)[1]
        assert re.search(rf"\b{name}\s*\[", text), f"{key} not declared in {rel}"
        assert nbytes > 0
    assert set(g for gs in IC.KERNEL_STATICS.values() for g in gs) <= set(IC.STATICS)


def test_every_manifest_entry_has_a_whisper_case() -> None:
    import json

    doc = json.loads((KERNELS / "manifest.json").read_text())
    covered = {c.design for c in W.design_cases(W.SIZES[0])}
    assert covered == set(doc["kernels"]) | set(doc["designs"])
    assert [s.d for s in W.SIZES] == [384, 512, 768, 1024, 1280]
    assert [s.heads for s in W.SIZES] == [6, 8, 12, 16, 20]


# --- host layout == design layout ----------------------------------------------------
def _specs(**kw) -> dict[str, BufferSpec]:
    return {k: BufferSpec(dt, tuple(shape)) for k, (dt, shape) in kw.items()}


def _case(design: str, d: int, rows: int, batch: int = 1, split: bool = False):
    """(design build call, stages, known buffer specs, exports, consts) of a small
    launch of `design` at width d (heads of 64); `split`: the tail matmul has three
    q/k/v outputs; `batch`: conv_frontend's batch."""
    f, n3 = 4 * d, 3 * d
    M = [1, rows]
    zs = ("zq", "zk", "zv") if split else ("z",)
    if design == "ln_matmul":
        ys = zs if split else ("y",)
        stages = [Stage("layernorm", ("x",), ("a",)), Stage("matmul", ("a",), ys)]
        known = _specs(x=("float32", M + [d]), a=("int8", M + [d]))
        known.update({y: BufferSpec("int8", tuple(M + [n3 // len(ys)])) for y in ys})
        return ("fused/ln_matmul/design.py", "build", (rows, d, n3, "int8")), stages, known, \
            ys, ()
    if design in ("ffn_block", "ffn_ln_matmul"):
        stages = [Stage("layernorm", ("x",), ("a",)), Stage("matmul", ("a",), ("f",)),
                  Stage("gelu", ("f",), ("h",)), Stage("matmul", ("h",), ("g",)),
                  Stage("add", ("g", "x"), ("y",))]
        known = _specs(x=("float32", M + [d]), a=("int8", M + [d]), f=("int8", M + [f]),
                       h=("int8", M + [f]), g=("float32", M + [d]), y=("float32", M + [d]))
        if design == "ffn_block":
            return ("fused/ffn_block/design.py", "build", (rows, d, f)), stages, known, \
                ("y",), ()
        stages += [Stage("layernorm", ("y",), ("a2",)), Stage("matmul", ("a2",), zs)]
        known.update(_specs(a2=("int8", M + [d])))
        known.update({z: BufferSpec("int8", tuple(M + [n3 // len(zs)])) for z in zs})
        return ("fused/ffn_ln_matmul/design.py", "build", (rows, d, f, n3, "int8")), stages, \
            known, ("y", *zs), ()
    if design == "attn_block":
        stages = [Stage("attention", ("q", "k", "v"), ("o",)), Stage("matmul", ("o",), ("p",)),
                  Stage("add", ("p", "x"), ("y",))]
        known = _specs(q=("int8", M + [d]), k=("int8", M + [d]), v=("int8", M + [d]),
                       o=("int8", M + [d]), p=("float32", M + [d]), x=("float32", M + [d]),
                       y=("float32", M + [d]))
        return ("fused/attn_block/design.py", "build", (rows, rows, d // 64, 64)), stages, \
            known, ("y",), ()
    mels, frames = 80, 2 * rows
    known = _specs(mel=("float32", [batch, mels, frames]), y=("float32", [batch, rows, d]))
    consts = ({"weight": np.zeros((d, mels, 3), np.int8)},)
    if design == "conv_frontend-dynamic":   # the default mode's chain, glue included
        dyn = {"dynamic": True}
        chain = ["conv1d", "quantize", "gelu", "dequantize"] * 2
        bufs = ["mel", "c1", "q1", "g1", "h", "c2", "q2", "g2", "h2", "y"]
        stages = [Stage(k, (bufs[i],), (bufs[i + 1],), {}, dict(dyn))
                  for i, k in enumerate(chain)] + [Stage("add", ("h2",), ("y",))]
        return ("fused/conv_frontend/design.py", "build_dynamic", (batch, mels, d, frames)), \
            stages, known, ("y",), consts
    assert design == "conv_frontend"
    stages = [Stage("conv1d", ("mel",), ("c1",)), Stage("gelu", ("c1",), ("g1",)),
              Stage("conv1d", ("g1",), ("c2",)), Stage("gelu", ("c2",), ("g2",)),
              Stage("add", ("g2",), ("y",))]
    return ("fused/conv_frontend/design.py", "build", (batch, mels, d, frames)), stages, \
        known, ("y",), consts


FUSED = ["ln_matmul", "ffn_block", "ffn_ln_matmul", "attn_block", "conv_frontend"]
VARIANTS = [(design, 1, False) for design in FUSED] + [("conv_frontend", 2, False),
                                                        ("conv_frontend-dynamic", 1, False),
                                                        ("conv_frontend-dynamic", 2, False),
                                                        ("ffn_ln_matmul", 1, True),
                                                        ("ln_matmul", 1, True)]


def _elements(slot) -> np.ndarray:
    """Byte address of every element of the host's buffer (row-major), per its slot."""
    item = np.dtype(slot.dtype).itemsize
    if not slot.frame:
        return slot.offset + item * np.arange(slot.nbytes // item)
    _, win = slot.window()
    return slot.offset + item * np.arange(int(np.prod(slot.frame))).reshape(slot.frame)[win] \
        .reshape(-1)


def _starts(m: IC.Move) -> np.ndarray:
    return m.bytes().reshape(-1, m.itemsize)[:, 0]


@pytest.mark.parametrize("d", [384, 1280])
@pytest.mark.parametrize("design,batch,split", VARIANTS)
def test_host_out_layout_matches_the_design(design: str, batch: int, split: bool,
                                            d: int) -> None:
    """The bytes a fused design drains into OUT and reads back from it lie inside the
    slots runtime/layout.py reserves; every stage output the host reads is written;
    the design's IN reads lie inside the host's IN slots and cover every element."""
    rows = 200   # not a multiple of the 128-row grid: padding rows must stay in their slot
    (rel, fn, args), stages, known, exports, consts = _case(design, d, rows, batch, split)
    rep = _trace(rel, fn, *args)
    variant, design = design, design.removesuffix("-dynamic")
    out_arg = 1                            # runtime sequence: IN, OUT, WEIGHTS, PARAMS
    plan = plan_out(design, stages, known, exports, consts)
    layout = RegionLayout.plan(plan.specs, plan.reserve, plan.frames)
    assert rep.arg_bytes[out_arg] <= layout.size
    written = IC.touched(rep.moves, out_arg, "drain", rep.arg_bytes[out_arg])
    read = IC.touched(rep.moves, out_arg, "fill", rep.arg_bytes[out_arg])
    owner = np.full(rep.arg_bytes[out_arg], -1)
    for i, s in enumerate(layout.slots):
        room = max(s.room, plan.reserve.get(s.name, 0))
        shared = s.name in plan.frames and plan.frames[s.name].share is not None
        if not shared:
            assert (owner[s.offset:s.offset + room] == -1).all(), f"{s.name} overlaps"
            owner[s.offset:s.offset + room] = i
        if not s.name.startswith(SCRATCH_PREFIX):
            real = written[_elements(s)]
            assert (real > 0).all(), f"{design}: {s.name} bytes the host reads are not written"
    assert (owner[written > 0] >= 0).all(), f"{design} writes OUT bytes outside every slot"
    # bytes read but never written: only private scratch (zeroed by the host when the
    # OUT BO is allocated, runtime/xrt.py), e.g. conv_frontend's zero h borders
    unwritten = np.unique(owner[(read > 0) & (written == 0)])
    assert all(i >= 0 and layout.slots[i].name.startswith(SCRATCH_PREFIX) for i in unwritten), \
        f"{design} reads OUT bytes it never wrote"
    names = {s.name for s in layout.slots}
    assert set(exports) <= names
    inputs = Launch(design, tuple(stages)).inputs
    in_layout = RegionLayout.plan([(b, known[b]) for b in inputs],
                                  in_reserve(design, inputs, known),
                                  in_frames(design, stages, inputs, known, consts))
    assert rep.arg_bytes[0] <= in_layout.size
    in_read = IC.touched(rep.moves, 0, "fill", rep.arg_bytes[0])
    in_owner = np.full(rep.arg_bytes[0], -1)
    reserve = in_reserve(design, inputs, known)
    for i, s in enumerate(in_layout.slots):
        in_owner[s.offset:s.offset + max(s.room, reserve.get(s.name, 0))] = i
        assert (in_read[_elements(s)] > 0).all(), f"{design} skips {s.name}"
    assert (in_owner[in_read > 0] >= 0).all(), f"{design} reads IN bytes outside its slots"
    if variant == "conv_frontend":
        _check_conv_frontend_elements(rep, layout, in_layout, batch, d, 80, 2 * rows)
    elif variant == "conv_frontend-dynamic":
        _check_dynamic_conv_frontend_elements(rep, layout, in_layout, batch, d, 80, 2 * rows)
    if split:
        _check_split_blocks(rep, layout, ("zq", "zk", "zv"), rows)


def _check_conv_frontend_elements(rep, out_layout, in_layout, batch: int, d: int, mels: int,
                                  frames: int) -> None:
    """Element by element, from the design's DMA and the conv's meaning: conv1's
    window for output t reads mel[t - 1 .. t + 1] (zero outside: the padding), and
    conv2's drained block element (position t, channel co) is y[b, t, co]; the host
    puts mel[b, m, t] and reads y[b, t, co] exactly there, for every batch."""
    from xdna_ep._kernels.fused import scratch

    dims = scratch.conv_frontend_dims(mels, d, frames)
    (mel_slot,) = in_layout.slots
    want = np.full(rep.arg_bytes[0], -2, np.int64)  # -1: a padding element
    fills = [m for m in rep.moves if m.arg == 0 and m.kind == "fill"]
    assert len(fills) == batch * scratch.CONV_COLUMNS
    nt, per_col = dims.c1.nt, dims.t1 // scratch.CONV_COLUMNS
    win = nt - 1 + scratch.CONV_KW
    for k, m in enumerate(fills):
        b, c = divmod(k, scratch.CONV_COLUMNS)
        tiles = per_col // nt
        t = (c * per_col + nt * np.arange(tiles)[:, None, None] - 1
             + np.arange(win)[None, None, :]) + 0 * np.arange(mels)[None, :, None]
        ch = np.arange(mels)[None, :, None] + 0 * t
        ids = np.where((t >= 0) & (t < frames), (b * mels + ch) * frames + t, -1)
        want[_starts(m)] = ids.reshape(-1)
    host = _elements(mel_slot)
    assert (want[host] == np.arange(batch * mels * frames)).all(),         "the host packs mel elements where the design's conv1 does not read them"
    read_pad = _starts_all(fills)[want[_starts_all(fills)] == -1]
    assert not np.isin(read_pad, host).any(), "the design's zero padding holds host data"

    y_slot = next(s for s in out_layout.slots if s.name == "y")
    got = np.full(rep.arg_bytes[1], -1, np.int64)
    drains = [m for m in rep.moves if m.arg == 1 and m.kind == "drain"][-batch * 4:]
    nt, nco, per_col = dims.c2.nt, dims.c2.nco, dims.t2 // scratch.CONV_COLUMNS
    rows = y_slot.shape[1]
    for k, m in enumerate(drains):
        b, c = divmod(k, scratch.CONV_COLUMNS)
        tile, jb, co, tt = np.meshgrid(np.arange(per_col // nt), np.arange(d // nco),
                                       np.arange(nco), np.arange(nt), indexing="ij")
        pos, chan = c * per_col + tile * nt + tt, jb * nco + co
        got[_starts(m)] = np.where(pos < rows, (b * rows + pos) * d + chan, -1).reshape(-1)
    assert (got[_elements(y_slot)] == np.arange(batch * rows * d)).all(),         "the host reads y elements from where the design wrote others"


def _check_dynamic_conv_frontend_elements(rep, out_layout, in_layout, batch: int, d: int,
                                          mels: int, frames: int) -> None:
    """The dynamic variant, element by element: its first IN pass (the mel's scale)
    reads every real mel element once and no padding (a zero border or a padded
    frame would be harmless for max|x|, but the rule is the real tensor); its c1/c2
    passes read only real positions of the raw conv outputs; its conv1 windows are
    the static design's; its y rows land where the host reads y[b, t, co] and the
    four float reductions' params fill the scales entry."""
    from xdna_ep._kernels.fused import scratch

    dims = scratch.conv_frontend_dims(mels, d, frames)
    (mel_slot,) = in_layout.slots
    fills = [m for m in rep.moves if m.arg == 0 and m.kind == "fill"]
    assert len(fills) == 2 * batch * scratch.CONV_COLUMNS
    mel_pass = np.sort(_starts_all(fills[:batch * scratch.CONV_COLUMNS]))
    assert (mel_pass == np.sort(_elements(mel_slot))).all(), \
        "the mel's reduction pass does not read exactly the real mel elements"
    slots = {s.name: s for s in out_layout.slots}
    pre = f"{SCRATCH_PREFIX}conv_frontend/"
    out_fills = [m for m in rep.moves if m.arg == 1 and m.kind == "fill"]
    c1 = slots[pre + "c1"]
    c1_real = c1.offset + 4 * (np.arange(batch * d)[:, None] * dims.t1
                               + np.arange(frames)[None, :]).reshape(-1)
    c1_reads = [m for m in out_fills if c1.offset <= _starts(m)[0] < c1.offset + c1.nbytes]
    assert len(c1_reads) == 3 * batch * scratch.CONV_COLUMNS
    for k in range(3):   # fold, code range, gelu: each pass reads c1's real elements once
        got = np.sort(_starts_all(c1_reads[k * batch * 4:(k + 1) * batch * 4]))
        assert (got == np.sort(c1_real)).all(), f"c1 pass {k} reads other than the real rows"
    t2 = (frames + 2 - scratch.CONV_KW) // 2 + 1
    c2 = slots[pre + "c2"]
    c2_real = c2.offset + 4 * (np.arange(batch)[:, None, None] * dims.t2 * d
                               + np.arange(t2)[None, :, None] * d
                               + np.arange(d)[None, None, :]).reshape(-1)
    c2_reads = [m for m in out_fills if c2.offset <= _starts(m)[0] < c2.offset + c2.nbytes]
    assert len(c2_reads) == 3 * batch * scratch.CONV_COLUMNS
    for k in range(3):
        got = np.sort(_starts_all(c2_reads[k * batch * 4:(k + 1) * batch * 4]))
        assert (got == np.sort(c2_real)).all(), f"c2 pass {k} reads other than the real rows"
    y_slot = slots["y"]
    y_drains = [m for m in rep.moves if m.arg == 1 and m.kind == "drain"
                and y_slot.offset <= _starts(m)[0] < y_slot.offset + y_slot.room]
    assert (np.sort(_starts_all(y_drains)) == np.sort(_elements(y_slot))).all(), \
        "the design's y rows are not the host's y elements"
    fl = slots[pre + scratch.SCALES]
    fl_drains = [m for m in rep.moves if m.arg == 1 and m.kind == "drain"
                 and fl.offset <= _starts(m)[0] < fl.offset + fl.nbytes]
    assert (np.sort(_starts_all(fl_drains)) ==
            fl.offset + 4 * np.arange(fl.nbytes // 4)).all()


def _starts_all(moves) -> np.ndarray:
    return np.concatenate([_starts(m) for m in moves])


def _check_split_blocks(rep, layout, outs: tuple[str, ...], rows: int, elem: int = 1) -> None:
    """The design drains z as [32, 64] tiles of one row-major [Mp, N] matrix (per
    column, per 32-row block, per 64-column tile; elements of `elem` bytes); the
    host's q/k/v blocks are its column ranges, element by element."""
    from xdna_ep._kernels.fused import scratch

    first = next(s for s in layout.slots if s.name == outs[0])
    mp, n = first.frame
    drains = [m for m in rep.moves if m.arg == 1 and m.kind == "drain"
              and first.offset <= _starts(m)[0] < first.offset + first.room]
    blocks, ntiles = mp // scratch.CONV_COLUMNS // 32, n // 64
    assert len(drains) == scratch.CONV_COLUMNS * blocks * ntiles
    got = np.full(rep.arg_bytes[1], -1, np.int64)
    for k, m in enumerate(drains):
        c, b, t = np.unravel_index(k, (scratch.CONV_COLUMNS, blocks, ntiles))
        r, col = np.meshgrid(np.arange(32), np.arange(64), indexing="ij")
        got[_starts(m).reshape(-1, elem)[:, 0]] = \
            ((c * mp // scratch.CONV_COLUMNS + b * 32 + r) * n + t * 64 + col).reshape(-1)
    col0 = 0
    for name in outs:
        s = next(x for x in layout.slots if x.name == name)
        w = s.shape[-1]
        want = (np.arange(rows)[:, None] * n + col0 + np.arange(w)[None, :]).reshape(-1)
        assert (got[_elements(s)] == want).all(), f"the host reads {name} from other columns"
        col0 += w


def test_out_layout_rejects_a_launch_that_is_not_the_design() -> None:
    stages = [Stage("matmul", ("a",), ("y",))]
    with pytest.raises(ValueError, match="does not match the design's stage chain"):
        plan_out("ffn_block", stages, _specs(a=("int8", [4, 64]), y=("int8", [4, 64])), ("y",))


def test_designs_take_their_shapes_from_the_shared_table(capsys) -> None:
    """`python design.py --size NAME [--case L]` builds the call --check traced."""
    import runpy

    case = W.size_case("ln_matmul", ["--size", "large-v3", "--case", "fc1"])
    assert case is not None and case.args == (1500, 1280, 5120, "float32")
    assert W.size_case("matmul", ["-M", "4"]) is None
    with IC.fake_iron():
        old = sys.argv
        sys.argv = ["design.py", "--size", "tiny", "--case", "qkv"]
        try:
            runpy.run_path(str(KERNELS / "fused" / "ln_matmul" / "design.py"), run_name="__main__")
        finally:
            sys.argv = old
    assert "FAKE-IRON trace (nothing lowered): 8 cores" in capsys.readouterr().out


@pytest.mark.parametrize("d", [384, 1280])
@pytest.mark.parametrize("rows", [200, 1500, 90])
def test_dynamic_ln_matmul_out_layout_matches_the_design(d: int, rows: int) -> None:
    """ln_matmul's dynamic form (layernorm f32 -> dynamic quantize -> matmul f32): the
    design writes y, the float32 a and the reducer's params exactly into the slots
    runtime/layout.py plans for those stages (scratch.DYNAMIC_OUT_ENTRIES); its fold
    phase reads only the real rows of a (padding rows hold beta, not x's values), and
    every byte it reads back from OUT was written first."""
    from xdna_ep.runtime.layout import scales_slot

    n = 3 * d
    M = [1, rows]
    stages = [Stage("layernorm", ("x",), ("a",), {}, {"out": "float32"}),
              Stage("quantize", ("a",), ("aq", "as"), {}, {"dynamic": True}),
              Stage("matmul", ("aq", "as"), ("y",), {}, {"dynamic": True, "out": "float32"})]
    known = _specs(x=("float32", M + [d]), a=("float32", M + [d]), aq=("int8", M + [d]),
                   y=("float32", M + [n]))
    known["as"] = BufferSpec("float32", (1,))
    rep = _trace("fused/ln_matmul/design.py", "build_dynamic", rows, d, n)
    plan = plan_out("ln_matmul", stages, known, ("y",))
    layout = RegionLayout.plan(plan.specs, plan.reserve, plan.frames)
    slots = {s.name: s for s in layout.slots}
    assert list(slots) == ["y", "a", scales_slot("ln_matmul")]
    assert slots[scales_slot("ln_matmul")].nbytes == 16
    assert rep.arg_bytes[1] <= layout.size
    written = IC.touched(rep.moves, 1, "drain", rep.arg_bytes[1])
    read = IC.touched(rep.moves, 1, "fill", rep.arg_bytes[1])
    for name in ("y", "a"):
        assert (written[_elements(slots[name])] > 0).all(), name
    sc = slots[scales_slot("ln_matmul")]
    assert (written[sc.offset:sc.offset + 16] == 1).all()
    assert not (read & (written == 0)).any(), "reads OUT bytes it never wrote"
    # the fold phase: each real element of a read exactly once more than the matmul
    # phase reads it; the padding rows of a never folded
    a = slots["a"]
    pad = np.arange(a.offset + a.nbytes, a.offset + plan.reserve["a"])
    per_elem = read[_elements(a)]
    assert (per_elem == per_elem[0]).all() and per_elem[0] == n // 64 + 1
    assert (read[pad] == n // 64).all()


# --- attn_block's dynamic form (kernels/fused/attn_block/design.py build_dynamic) ------
def _dynamic_attn_block(d: int, tq: int, tk: int):
    """(stages, known buffer specs) of a default-mode attn_block launch: dynamic
    quantizes of the float q, k, v, attention (float32 out), quantize, matmul, add."""
    dyn = {"dynamic": True}
    heads = d // 64
    stages = [Stage("quantize", ("qf",), ("q", "qs"), {}, dict(dyn)),
              Stage("quantize", ("kf",), ("k", "ks"), {}, dict(dyn)),
              Stage("quantize", ("vf",), ("v", "vs"), {}, dict(dyn)),
              Stage("attention", ("q", "qs", "k", "ks", "v", "vs"), ("o",), {},
                    {"dynamic": True, "out": "float32", "num_heads": heads,
                     "softmax_scale": 0.125, "causal": False, "has_mask": False}),
              Stage("quantize", ("o",), ("oq", "os"), {}, dict(dyn)),
              Stage("matmul", ("oq", "os"), ("p",), {}, {"dynamic": True, "out": "float32"}),
              Stage("add", ("p", "x"), ("y",))]
    Q, K = [1, tq, d], [1, tk, d]
    known = _specs(qf=("float32", Q), kf=("float32", K), vf=("float32", K), q=("int8", Q),
                   k=("int8", K), v=("int8", K), o=("float32", Q), oq=("int8", Q),
                   p=("float32", Q), x=("float32", Q), y=("float32", Q))
    known.update({s: BufferSpec("float32", (1,)) for s in ("qs", "ks", "vs", "os")})
    return stages, known


def _dynamic_attn_block_trace(d: int, tq: int, tk: int):
    from xdna_ep.runtime.layout import scales_slot

    stages, known = _dynamic_attn_block(d, tq, tk)
    rep = _trace("fused/attn_block/design.py", "build_dynamic", tq, tk, d // 64, 64)
    plan = plan_out("attn_block", stages, known, ("y",))
    out_layout = RegionLayout.plan(plan.specs, plan.reserve, plan.frames)
    inputs = Launch("attn_block", tuple(stages)).inputs
    in_layout = RegionLayout.plan([(b, known[b]) for b in inputs],
                                  in_reserve("attn_block", inputs, known))
    assert list(inputs) == ["qf", "kf", "vf", "x"]
    assert [s.name for s in out_layout.slots] == ["y", "o", scales_slot("attn_block")]
    return rep, stages, plan, out_layout, in_layout


DYN_ATTN_CASES = [(384, 200, 200), (1280, 200, 131), (384, 90, 1500)]


@pytest.mark.parametrize("d,tq,tk", DYN_ATTN_CASES)
def test_dynamic_attn_block_out_layout_matches_the_design(d: int, tq: int, tk: int) -> None:
    """attn_block's dynamic form writes y, the float32 attention output o and the four
    reductions' params exactly into the slots runtime/layout.py plans (scratch.
    DYNAMIC_OUT_ENTRIES); its reads of IN stay in the host's slots and, element by
    element, match the schedule: the fold phase reads every REAL element of q, k, v
    and o once (never a padding row), the attention reads q once and the head's keys
    twice and values once per query group, the projection each o tile once per output
    tile; it never reads OUT bytes it did not write first."""
    rep, _stages, plan, out_layout, in_layout = _dynamic_attn_block_trace(d, tq, tk)
    slots = {s.name: s for s in out_layout.slots}
    sc = out_layout.slots[2]
    assert sc.nbytes == 4 * 4 * 4
    assert rep.arg_bytes[1] <= out_layout.size and rep.arg_bytes[0] <= in_layout.size
    written = IC.touched(rep.moves, 1, "drain", rep.arg_bytes[1])
    read = IC.touched(rep.moves, 1, "fill", rep.arg_bytes[1])
    for name in ("y", "o"):
        assert (written[_elements(slots[name])] > 0).all(), name
    assert (written[sc.offset:sc.offset + sc.nbytes] == 1).all()
    owner = np.full(rep.arg_bytes[1], -1)
    for i, s in enumerate(out_layout.slots):
        owner[s.offset:s.offset + max(s.room, plan.reserve.get(s.name, 0))] = i
    assert (owner[written > 0] >= 0).all(), "writes OUT bytes outside every slot"
    assert not (read & (written == 0)).any(), "reads OUT bytes it never wrote"
    nt = d // 64
    o = slots["o"]
    o_pad = np.arange(o.offset + o.nbytes, o.offset + plan.reserve["o"])
    assert (read[_elements(o)] == nt + 1).all() and (read[o_pad] == nt).all()
    in_read = IC.touched(rep.moves, 0, "fill", rep.arg_bytes[0])
    reserve = in_reserve("attn_block", ["qf", "kf", "vf", "x"], _dynamic_attn_block(d, tq, tk)[1])
    in_owner = np.full(rep.arg_bytes[0], -1)
    groups = -(-tq // 128)            # query groups per head: keys streamed 2x, values 1x
    for i, s in enumerate(in_layout.slots):
        room = max(s.room, reserve.get(s.name, 0))
        in_owner[s.offset:s.offset + room] = i
        real = in_read[_elements(s)]
        pad = in_read[np.arange(s.offset + s.nbytes, s.offset + room)]
        per = {"qf": 1, "kf": 2 * groups, "vf": groups, "x": 1}[s.name]
        fold = 0 if s.name == "x" else 1
        assert (real == per + fold).all(), f"{s.name}: real elements read {np.unique(real)}"
        assert (pad == per).all(), f"{s.name}: padding rows read {np.unique(pad)}"
    assert (in_owner[in_read > 0] >= 0).all(), "reads IN bytes outside its slots"


@pytest.mark.parametrize("d,tq,tk", DYN_ATTN_CASES[:2])
def test_dynamic_attn_block_drains_each_reductions_params_to_its_scales_slot(
        d: int, tq: int, tk: int) -> None:
    """The SCALES entry holds the params in the launch's order of its reducing stages
    (runtime/layout.py reductions: q, k, v, then o), which the host's flag check and
    the FAKE hardware assume: the i-th params drain lands at SCALES[i] and the fold
    fills just before it (the reducer's round i) read exactly the real rows of the
    i-th reducing stage's input. Swapping two folds or two drains fails here."""
    from xdna_ep.runtime.layout import reductions

    rep, stages, _plan, out_layout, in_layout = _dynamic_attn_block_trace(d, tq, tk)
    sc = out_layout.slots[2]
    where = {s.name: (0, s) for s in in_layout.slots}
    where.update({s.name: (1, s) for s in out_layout.slots})
    red = reductions(stages)
    assert [st.inputs[0] for st in red] == ["qf", "kf", "vf", "o"]
    rounds, pending = [], []
    for m in rep.moves:
        if m.kind == "drain" and m.arg == 1 and sc.offset <= _starts(m)[0] < sc.offset + sc.nbytes:
            rounds.append((m, pending))
            pending = []
        elif m.kind == "drain":
            pending = []          # the fold fills of a round follow the phase before it
        elif m.kind == "fill":
            pending.append(m)
    assert len(rounds) == len(red) == sc.nbytes // 16
    for i, (drain, fills) in enumerate(rounds):
        assert (_starts(drain) == sc.offset + 16 * i + np.arange(16)).all(), \
            f"round {i}'s params drained to the wrong SCALES slot"
        arg, slot = where[red[i].inputs[0]]
        folded = [m for m in fills if m.arg == arg]
        assert folded and all(m.arg == arg for m in fills), f"round {i}: fills of other tensors"
        got = np.sort(_starts_all(folded))   # every byte (IN/OUT are byte-typed)
        want = (_elements(slot)[:, None] + np.arange(4)[None, :]).reshape(-1)
        assert got.shape == want.shape and (got == np.sort(want)).all(), \
            f"round {i} does not fold exactly the real elements of {red[i].inputs[0]!r}"


# --- the MLP designs' dynamic forms ---------------------------------------------------
def _dynamic_mlp(design: str, d: int, rows: int, split: bool = False):
    """The compiled default-mode chain of `design` (layernorm f32 -> Q -> fc1 f32 -> Q
    (neg_limit 4) -> gelu -> fc2 f32 -> add [-> layernorm f32 -> Q -> matmul f32]),
    as compile/build.py emits it: (stages, known specs, exports, the reduced tensors
    in SCALES order)."""
    f, n3 = 4 * d, 3 * d
    M = [1, rows]
    dyn = {"dynamic": True}
    stages = [Stage("layernorm", ("x",), ("a",), {}, {"out": "float32"}),
              Stage("quantize", ("a",), ("aq", "as"), {}, dict(dyn)),
              Stage("matmul", ("aq", "as"), ("f",), {}, {**dyn, "out": "float32"}),
              Stage("quantize", ("f",), ("fq", "fs"), {}, {**dyn, "neg_limit": 4.0}),
              Stage("gelu", ("fq", "fs"), ("h", "hs"), {}, {**dyn, "approximate": "none"}),
              Stage("matmul", ("h", "hs"), ("g",), {}, {**dyn, "out": "float32"}),
              Stage("add", ("x", "g"), ("y",))]
    known = _specs(x=("float32", M + [d]), a=("float32", M + [d]), aq=("int8", M + [d]),
                   f=("float32", M + [f]), fq=("int8", M + [f]), h=("int8", M + [f]),
                   g=("float32", M + [d]), y=("float32", M + [d]))
    for s in ("as", "fs", "hs"):
        known[s] = BufferSpec("float32", (1,))
    if design == "ffn_block":
        return stages, known, ("y",), ("a", "f")
    zs = ("zq", "zk", "zv") if split else ("z",)
    stages += [Stage("layernorm", ("y",), ("a2",), {}, {"out": "float32"}),
               Stage("quantize", ("a2",), ("a2q", "a2s"), {}, dict(dyn)),
               Stage("matmul", ("a2q", "a2s"), zs, {},
                     {**dyn, "out": "float32", **({"split": [d] * 3} if split else {})})]
    known.update(_specs(a2=("float32", M + [d]), a2q=("int8", M + [d])))
    known["a2s"] = BufferSpec("float32", (1,))
    known.update({z: BufferSpec("float32", tuple(M + [n3 // len(zs)])) for z in zs})
    return stages, known, ("y", *zs), ("a", "f", "a2")


def _trace_dynamic_mlp(design: str, rows: int, d: int) -> IC.Report:
    rel = f"fused/{design}/design.py"
    args = (rows, d, 4 * d) + ((3 * d,) if design == "ffn_ln_matmul" else ())
    return _trace(rel, "build_dynamic", *args)


def _check_scales_order(rep, design: str, slots, reduced: tuple[str, ...]) -> None:
    """SCALES object k is drained once the producers have started folding reduction k's
    tensor (its first read back from OUT) and before the next reduced tensor is first
    read: the params land in the launch's order of its reducing stages."""
    from xdna_ep.runtime.layout import scales_slot

    sc = slots[scales_slot(design)]

    def inside(m, s, room):
        return s.offset <= _starts(m)[0] < s.offset + room

    first_read = [next(i for i, m in enumerate(rep.moves) if m.arg == 1 and m.kind == "fill"
                       and inside(m, slots[t], slots[t].room)) for t in reduced]
    for k in range(len(reduced)):
        obj = sc.offset + 16 * k
        (at,) = [i for i, m in enumerate(rep.moves) if m.arg == 1 and m.kind == "drain"
                 and _starts(m)[0] == obj]
        assert first_read[k] < at, f"SCALES[{k}] drained before {reduced[k]} was folded"
        if k + 1 < len(reduced):
            assert at < first_read[k + 1], \
                f"SCALES[{k}] drained after {reduced[k + 1]} was read: wrong SCALES order"


def _check_dynamic_mlp(rep, design: str, d: int, rows: int, split: bool = False) -> None:
    from xdna_ep.runtime.layout import scales_slot

    stages, known, exports, reduced = _dynamic_mlp(design, d, rows, split)
    plan = plan_out(design, stages, known, exports)
    layout = RegionLayout.plan(plan.specs, plan.reserve, plan.frames)
    slots = {s.name: s for s in layout.slots}
    names = [s.name for s in layout.slots]
    want = ["y", "h", "a"] + (["a2", *exports[1:]] if design == "ffn_ln_matmul" else []) \
        + ["f", scales_slot(design)]
    assert names[:len(want)] == want
    sc = slots[scales_slot(design)]
    assert sc.nbytes == 16 * len(reduced)
    assert rep.arg_bytes[1] <= layout.size
    written = IC.touched(rep.moves, 1, "drain", rep.arg_bytes[1])
    read = IC.touched(rep.moves, 1, "fill", rep.arg_bytes[1])
    for name in want[:-1]:
        assert (written[_elements(slots[name])] > 0).all(), f"{design}: {name} not written"
    assert (written[sc.offset:sc.offset + sc.nbytes] == 1).all()
    assert not (read & (written == 0)).any(), "reads OUT bytes it never wrote"
    # the folds read only the REAL rows: a (a2) once more than the matmul's A tiles,
    # f three times (fold, code range, gelu) where its padding rows are read once
    nt = {"a": 4 * d // 64, "a2": 3 * d // 64}
    for name, s in slots.items():
        if name not in ("a", "a2", "f"):
            continue
        pad = np.arange(s.offset + s.nbytes, s.offset + plan.reserve[name])
        real_reads, pad_reads = (3, 1) if name == "f" else (nt[name] + 1, nt[name])
        assert (read[_elements(s)] == real_reads).all(), name
        assert (read[pad] == pad_reads).all(), name
    _check_scales_order(rep, design, slots, reduced)
    inputs = Launch(design, tuple(stages)).inputs
    assert inputs == ("x",)
    in_layout = RegionLayout.plan([("x", known["x"])], in_reserve(design, inputs, known),
                                  in_frames(design, stages, inputs, known, ()))
    (x_slot,) = in_layout.slots
    in_read = IC.touched(rep.moves, 0, "fill", rep.arg_bytes[0])
    assert rep.arg_bytes[0] <= in_layout.size
    assert (in_read[_elements(x_slot)] == 2).all(), "x: read by the LayerNorm and the add"
    if split:
        _check_split_blocks(rep, layout, exports[1:], rows, elem=4)


@pytest.mark.parametrize("d", [384, 1280])
@pytest.mark.parametrize("rows", [200, 90])
@pytest.mark.parametrize("design", ["ffn_block", "ffn_ln_matmul"])
def test_dynamic_mlp_out_layout_matches_the_design(design: str, rows: int, d: int) -> None:
    """The MLP designs' dynamic forms write y, h, a (a2, z), the float32 fc1 output f
    and the reducers' params exactly into the slots runtime/layout.py plans for the
    compiled chain (scratch.DYNAMIC_OUT_ENTRIES); the scale and code-range passes read
    only the real rows of a, f (a2), and the params land in SCALES in the launch's
    order of its reducing stages."""
    _check_dynamic_mlp(_trace_dynamic_mlp(design, rows, d), design, d, rows)


def test_dynamic_ffn_ln_matmul_writes_the_split_projection_blocks() -> None:
    """The tail's q/k/v outputs are the column blocks of the one z matrix it drains."""
    _check_dynamic_mlp(_trace_dynamic_mlp("ffn_ln_matmul", 200, 384), "ffn_ln_matmul", 384,
                       200, split=True)


@pytest.mark.parametrize("design", ["ffn_block", "ffn_ln_matmul"])
def test_scales_order_check_fails_on_swapped_params(design: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The order check is not vacuous: the same design with its reducers' params
    drained to each other's SCALES object is rejected."""
    import _stages

    real = _stages.drain_scales
    n = 3 if design == "ffn_ln_matmul" else 2

    def swapped(rt, params, out, total, base, slot, tg):
        real(rt, params, out, total, base, {0: 1, 1: 0}.get(slot, slot) if n == 2
             else {0: 1, 1: 2, 2: 0}[slot], tg)

    monkeypatch.setattr(_stages, "drain_scales", swapped)
    rep = _trace_dynamic_mlp(design, 200, 384)
    with pytest.raises(AssertionError, match="SCALES"):
        _check_dynamic_mlp(rep, design, 384, 200)


# --- WEIGHTS: the designs read the constants where the host packs them ----------------
@pytest.fixture(scope="module")
def two_layer_programs():
    """A 2-layer encoder (d 384, ffn 1536) compiled in both modes: default (dynamic; 64
    frames) and calibrated (static; 100 frames). Both are ln_matmul, attn_block,
    ffn_ln_matmul, attn_block, ffn_block (the default mode adds the final layernorm),
    each launch with its real stage constants."""
    from synthetic.graphs import encoder_layer as graph_layer
    from synthetic.regions import encoder_layer

    from xdna_ep.compile.api import CompileOptions, compile_plan
    from xdna_ep.partition import partition_model

    model = graph_layer(d=384, heads=6, ffn=1536, t=64, layers=2, seed=3)
    (dyn,) = compile_plan(model, partition_model(model, use_cost_model=False),
                          CompileOptions(quantization="dynamic", measure_sqnr=False)).values()
    sm = encoder_layer(t=100, layers=2, seed=8)
    (static,) = compile_plan(sm.model, partition_model(sm.model, use_cost_model=False),
                             CompileOptions("static", sm.samples(2, seed=9), fuse_qkv=True,
                                            measure_sqnr=False)).values()
    return {"dynamic": (dyn, 64), "static": (static, 100)}


def _build_call(design: str, launch, rows: int, d: int, dynamic: bool):
    f, n3 = 4 * d, 3 * d
    if design == "attn_block":   # self-attention: Tk = Tq = rows, heads of 64
        return "build_dynamic" if dynamic else "build", (rows, rows, d // 64, 64)
    out = launch.stages[-1].attrs.get("out", "int8")
    if dynamic:
        return "build_dynamic", {"ln_matmul": (rows, d, n3), "ffn_block": (rows, d, f),
                                 "ffn_ln_matmul": (rows, d, f, n3)}[design]
    return "build", {"ln_matmul": (rows, d, n3, out), "ffn_block": (rows, d, f),
                     "ffn_ln_matmul": (rows, d, f, n3, out)}[design]


@pytest.mark.parametrize("mode", ["dynamic", "static"])
@pytest.mark.parametrize("design", ["ln_matmul", "ffn_ln_matmul", "ffn_block", "attn_block"])
def test_design_reads_weights_where_the_host_packs_them(two_layer_programs, design: str,
                                                        mode: str) -> None:
    """Every WEIGHTS byte the design reads lies in a slot runtime/layout.py
    plan_weights packs for the launch's stages (the kernels' device constants: a
    matmul's W [Kp, Np], words [rows, Np] and (K, N) pair), the LayerNorm constants
    and a static gelu table are read whole, and of each matmul's W and words exactly
    the real [K, N] columns: the padding columns (N rounded up to 256) and the (K, N)
    pair never."""
    from xdna_ep.kernel_specs import registry
    from xdna_ep.runtime.layout import plan_weights, stage_consts

    prog, rows = two_layer_programs[mode]
    launch = next(ln for ln in prog.launches if ln.design == design)
    w = plan_weights(launch, [registry.get(st.kernel) for st in launch.stages],
                     [stage_consts(prog, st) for st in launch.stages])
    fn, args = _build_call(design, launch, rows, 384, mode == "dynamic")
    rep = _trace(f"fused/{design}/design.py", fn, *args)
    assert rep.arg_bytes[2] <= w.layout.size
    read = IC.touched(rep.moves, 2, "fill", rep.arg_bytes[2])
    owner = np.full(rep.arg_bytes[2], -1)
    for i, s in enumerate(w.layout.slots):
        owner[s.offset:s.offset + s.nbytes] = i
    assert (owner[read > 0] >= 0).all(), f"{design} reads WEIGHTS bytes outside every slot"
    for st_i, (st, keys) in enumerate(zip(launch.stages, w.keys, strict=True)):
        slots = {k: next(s for s in w.layout.slots if s.name == name) for k, name in keys.items()}
        if st.kernel == "matmul":
            k, n = (int(v) for v in prog.constants[st.consts["weight"]].shape)
            wt, words, kn = slots["#0"], slots["#1"], slots["#2"]
            np_ = wt.nbytes // k
            real = (np.arange(k)[:, None] * np_ + np.arange(n)[None, :]).reshape(-1)
            got = read[wt.offset:wt.offset + wt.nbytes]
            assert (got[real] > 0).all(), f"stage {st_i}: W's real columns not all read"
            assert got.sum() == got[real].sum(), f"stage {st_i}: W's padding columns read"
            word_rows = words.nbytes // (4 * np_)
            cols = (np.arange(word_rows)[:, None] * 4 * np_
                    + np.arange(4 * n)[None, :]).reshape(-1)
            got = read[words.offset:words.offset + words.nbytes]
            assert (got[cols] > 0).all() and got.sum() == got[cols].sum(), f"stage {st_i}"
            assert not read[kn.offset:kn.offset + kn.nbytes].any()
        else:   # layernorm constants, a static gelu table: read whole (dynamic: none)
            for s in slots.values():
                assert (read[s.offset:s.offset + s.nbytes] > 0).all(), \
                    f"stage {st_i} ({st.kernel}): WEIGHTS the design does not read"
