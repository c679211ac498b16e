"""A recording stand-in for the IRON API: traces a design without MLIR-AIE.

The MLIR-AIE toolchain is not installed on the development machines, so the
designs cannot be lowered there. `trace(fn, *args)` runs a design's build
function against FAKE versions of the few IRON names the designs use
(`aie.iron`, `aie.iron.device`, `aie.helpers.taplib`, ...). It lowers
nothing; it executes every core body with real loop counts and checks what
py_compile cannot:

* bounds: every access pattern stays inside its tensor, and its tensor type
  matches the runtime-sequence argument it is used on;
* arity: every kernel call passes its declared number of arguments;
* volumes: for every ObjectFifo, the bytes the host fills (or a producer core
  writes, or a memory-tile link forwards) equal what each consumer takes, and
  what cores produce equals what the host drains;
* tile memory: per compute core, the ObjectFifo buffers it holds
  (depth x object bytes per handle), its Buffers and its stack fit the AIE2
  core's 64 KiB data memory; per memory tile, the link buffers placed on it
  fit 512 KiB; at most 16 workers (npu1: 4 columns x 4 compute rows).

The memory model is deliberately conservative: both ends of a core-to-core
fifo count their own buffers (aiecc may share them between neighbours), and a
core also holds the static scratch (file-scope arrays) of the AIE functions it
calls, from KERNEL_STATICS below (assumes the linker drops the globals of
functions a core never calls; every array is counted once per core).
Hand-written because no library offers a dry-run of IRON; the real check is
aiecc itself (kernels/build_xclbins.py).
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CORE_MEMORY = 64 * 1024       # AIE2 compute tile data memory (npu1)
MEMTILE_MEMORY = 512 * 1024   # AIE2 memory tile (npu1)
COMPUTE_CORES = 16            # npu1: 4 columns x 4 compute rows
DMA_CHANNELS_PER_DIRECTION = 2   # AIE2 compute tile: 2 S2MM (in) + 2 MM2S (out) DMA channels
DEFAULT_STACK = 0x400         # IRON Worker's default stack_size
DEFAULT_DEPTH = 2


# File-scope arrays of the AIE sources (bytes), kept in step with kernels/*/aie/*.cc
# and kernels/fused/*/*_aie.cc; tests/test_design_shapes.py checks that every
# array named here still exists in its source.
STATICS: dict[str, tuple[str, int]] = {
    "layernorm.g_fixed": ("layernorm/aie/layernorm_aie.cc", 4 * 1280),
    "layernorm.g_row": ("layernorm/aie/layernorm_aie.cc", 4 * 1280),
    "matmul.g_acc": ("matmul/aie/matmul_aie.cc", 4 * 32 * 64),
    "attention.g_acc_hi": ("attention/aie/attention_aie.cc", 4 * 32 * 64),
    "attention.g_acc_lo": ("attention/aie/attention_aie.cc", 4 * 32 * 64),
    "attention.g_scores": ("attention/aie/attention_aie.cc", 4 * 32 * 64),
    "attention.g_zmax": ("attention/aie/attention_aie.cc", 4 * 32 + 8 * 32 + 4 * 64 + 64 + 64),
    "conv1d.g_qwin": ("conv1d/aie/conv1d_aie.cc", 384 * 17),
    "conv1d.g_col": ("conv1d/aie/conv1d_aie.cc", 8 * 1152),
    "softmax.g_z": ("softmax/aie/softmax_aie.cc", 4 * 2048),
    "softmax.g_work": ("softmax/aie/softmax_aie.cc", 4 * 2048),
    "ffn_block.g_h": ("fused/ffn_block/ffn_block_aie.cc", 32 * 64),
    "ffn_block.g_y": ("fused/ffn_block/ffn_block_aie.cc", 4 * 32 * 64),
    "attn_block.g_y": ("fused/attn_block/attn_block_aie.cc", 4 * 32 * 64),
    "attn_block.g_dyn_words": ("fused/attn_block/attn_block_aie.cc", 4 * 2 * 64),
    "ln_matmul.g_dyn_words": ("fused/ln_matmul/ln_matmul_aie.cc", 4 * 2 * 64),
    "conv_frontend.g_blk": ("fused/conv_frontend/conv_frontend_aie.cc", 4 * 8 * 8),
    "gelu_table.g_gelu_codes": ("common/aie/gelu_table_aie.cc", 1024),
}
_ATT = ("attention.g_acc_hi", "attention.g_acc_lo", "attention.g_scores", "attention.g_zmax")
_CONV = ("conv1d.g_qwin", "conv1d.g_col")
KERNEL_STATICS: dict[str, tuple[str, ...]] = {
    "xdna_layernorm": ("layernorm.g_fixed", "layernorm.g_row"),
    "xdna_layernorm_f32": ("layernorm.g_fixed", "layernorm.g_row"),
    "ln_matmul_epilogue_f32_dyn": ("matmul.g_acc", "ln_matmul.g_dyn_words"),
    "matmul_zero_i32": ("matmul.g_acc",),
    "matmul_i8_i32": ("matmul.g_acc",),
    "matmul_epilogue_i8": ("matmul.g_acc",),
    "matmul_epilogue_f32": ("matmul.g_acc",),
    "fused_epilogue_i8_gelu": ("matmul.g_acc", "ffn_block.g_h"),
    "fused_epilogue_f32_add": ("matmul.g_acc", "ffn_block.g_y"),  # attn_block's g_y: same size
    "attn_epilogue_f32_dyn_add": ("matmul.g_acc", "attn_block.g_y", "attn_block.g_dyn_words"),
    "ffn_epilogue_f32_dyn_add": ("matmul.g_acc", "ln_matmul.g_dyn_words", "ffn_block.g_y"),
    "xdna_conv1d_im2col": _CONV,
    "xdna_conv1d_block": _CONV,
    "frontend_conv_gelu": (*_CONV, "conv_frontend.g_blk"),
    "frontend_conv_gelu_add": (*_CONV, "conv_frontend.g_blk"),
    "xdna_gelu_codes_fold": ("gelu_table.g_gelu_codes",),
    "xdna_gelu_table_apply": ("gelu_table.g_gelu_codes",),
    "frontend_codes_fold_row": ("gelu_table.g_gelu_codes",),
    "xdna_softmax_i8": ("softmax.g_z", "softmax.g_work"),
    "xdna_softmax_i8_masked": ("softmax.g_z", "softmax.g_work"),
    **{k: _ATT for k in ("xdna_attn_begin", "xdna_attn_rewind", "xdna_attn_pass1",
                         "xdna_attn_pass1_masked", "xdna_attn_pass2", "xdna_attn_pass2_masked",
                         "xdna_attn_end_i8", "xdna_attn_end_f32")},
}


class TraceError(AssertionError):
    """A design broke one of the checks above (the message says which and where)."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise TraceError(msg)


def type_bytes(t: Any) -> int:
    """Bytes of an np.ndarray[(shape), np.dtype[dt]] type (DMA moves bytes)."""
    shape, dtype = t.__args__
    out = np.dtype(dtype.__args__[0]).itemsize
    for d in shape:
        out *= int(d)
    return out


def type_itemsize(t: Any) -> int:
    return np.dtype(t.__args__[1].__args__[0]).itemsize


@dataclass
class Report:
    """What one trace measured (for the --check table and the tests)."""

    workers: int = 0
    core_bytes: list[int] = field(default_factory=list)      # per worker
    memtile_bytes: dict[int, int] = field(default_factory=dict)  # per column
    fifos: int = 0
    # per worker: (fifos it consumes, fifos it produces). Each end of a fifo a core does
    # not share memory with needs one of the compute tile's DMA channels
    # (DMA_CHANNELS_PER_DIRECTION each way): a figure to watch, not a failure here,
    # since the placement (which this trace does not do) decides what is shared.
    core_streams: list[tuple[int, int]] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list, repr=False)      # host DMA tasks, in order
    arg_bytes: list[int] = field(default_factory=list, repr=False)   # sequence argument sizes

    def __str__(self) -> str:
        return (f"FAKE-IRON trace (nothing lowered): {self.workers} cores, max core "
                f"{self.max_core} B, max memory tile {self.max_memtile} B, {self.fifos} fifos, "
                f"{len(self.moves)} host DMA tasks")

    @property
    def max_core(self) -> int:
        return max(self.core_bytes, default=0)

    @property
    def max_memtile(self) -> int:
        return max(self.memtile_bytes.values(), default=0)

    @property
    def max_streams(self) -> tuple[int, int]:
        """The most fifos one core consumes and the most one core produces."""
        return (max((i for i, _ in self.core_streams), default=0),
                max((o for _, o in self.core_streams), default=0))

    @property
    def over_dma_channels(self) -> bool:
        """Whether some core has more fifo ends than its tile's DMA channels in one
        direction: such a design lowers only if placement puts those fifos in memory
        it shares with a neighbour (or the design merges streams on a memory tile)."""
        i, o = self.max_streams
        return max(i, o) > DMA_CHANNELS_PER_DIRECTION


class _State:
    """The one trace in progress (designs create IRON objects at module level of build())."""

    fifos: list[Fifo] = []
    links: list[tuple[str, Fifo, list[Fifo], int | None]] = []


class _Obj:
    """An acquired fifo object (opaque to the designs)."""

    def __getitem__(self, _i: Any) -> int:
        return 0

    def __setitem__(self, _i: Any, _v: Any) -> None:
        pass


class Handle:
    def __init__(self, fifo: Fifo, kind: str) -> None:
        self.fifo, self.kind, self.acquired, self.host, self.linked = fifo, kind, 0, False, False

    def acquire(self, n: int) -> Any:
        self.acquired += n
        return _Obj() if n == 1 else [_Obj() for _ in range(n)]

    def release(self, n: int) -> None:
        pass

    # memory-tile links ------------------------------------------------------------
    def _col(self, placement: Any) -> int | None:
        return getattr(placement, "col", None)

    def forward(self, obj_type: Any = None, name: str | None = None, placement: Any = None,
                depth: int | None = None, dims_to_stream: Any = None, **_kw: Any) -> Fifo:
        _check(self.kind == "cons", f"forward() of fifo {self.fifo.name}'s producer side")
        self.linked = True
        dst = Fifo(obj_type or self.fifo.obj_type, name=name,
                   depth=depth if depth is not None else self.fifo.depth)
        _check(dst.n == self.fifo.n, f"forward {name}: object of {dst.n} bytes from "
                                     f"{self.fifo.n}")
        _State.links.append(("forward", self.fifo, [dst], self._col(placement)))
        return dst

    def split(self, offsets: list[int], obj_types: list[Any], names: list[str] | None = None,
              placement: Any = None, **_kw: Any) -> list[Fifo]:
        return self._fan("split", "cons", offsets, obj_types, names, placement)

    def join(self, offsets: list[int], obj_types: list[Any], names: list[str] | None = None,
             placement: Any = None, **_kw: Any) -> list[Fifo]:
        return self._fan("join", "prod", offsets, obj_types, names, placement)

    def _fan(self, how: str, side: str, offsets: list[int], obj_types: list[Any],
             names: list[str] | None, placement: Any) -> list[Fifo]:
        _check(self.kind == side, f"{how}() on the wrong side of fifo {self.fifo.name}")
        self.linked = True
        names = names or [f"{self.fifo.name}_{i}" for i in range(len(obj_types))]
        parts = [Fifo(t, name=nm, depth=self.fifo.depth) for t, nm in
                 zip(obj_types, names, strict=True)]
        item = self.fifo.itemsize
        for off, p in zip(offsets, parts, strict=True):
            _check(off * item >= 0 and off * item + p.n <= self.fifo.n,
                   f"{how} {p.name}: part [{off * item}, {off * item + p.n}) outside the "
                   f"{self.fifo.n}-byte object of {self.fifo.name}")
        _check(sum(p.n for p in parts) == self.fifo.n,
               f"{how} of {self.fifo.name}: parts cover {sum(p.n for p in parts)} of "
               f"{self.fifo.n} bytes")
        if how == "join":  # the memory tile consumes each part
            for p in parts:
                p.cons().linked = True
        _State.links.append((how, self.fifo, parts, self._col(placement)))
        return parts


class Fifo:
    def __init__(self, obj_type: Any, name: str | None = None, depth: int | None = None,
                 default_depth: int | None = None, **_kw: Any) -> None:
        self.obj_type = obj_type
        self.n, self.itemsize = type_bytes(obj_type), type_itemsize(obj_type)
        self.name = name or f"fifo{len(_State.fifos)}"
        self.depth = depth if depth is not None else (default_depth or DEFAULT_DEPTH)
        self.prods: list[Handle] = []
        self.conss: list[Handle] = []
        self.filled = self.drained = 0
        _State.fifos.append(self)

    def prod(self) -> Handle:
        h = Handle(self, "prod")
        self.prods.append(h)
        return h

    def cons(self) -> Handle:
        h = Handle(self, "cons")
        self.conss.append(h)
        return h


class Kernel:
    def __init__(self, name: str, obj: str, arg_types: list[Any]) -> None:
        self.name, self.nargs = name, len(arg_types)

    def __call__(self, *args: Any) -> None:
        _check(len(args) == self.nargs, f"{self.name}: {len(args)} args, declared {self.nargs}")


class Buffer:
    def __init__(self, obj_type: Any, name: str | None = None, **_kw: Any) -> None:
        self.n, self.name = type_bytes(obj_type), name

    def __getitem__(self, _i: Any) -> int:
        return 0

    def __setitem__(self, _i: Any, _v: Any) -> None:
        pass


class Worker:
    def __init__(self, fn: Callable[..., Any], fn_args: list[Any], placement: Any = None,
                 stack_size: int = DEFAULT_STACK, **_kw: Any) -> None:
        self.fn, self.args, self.stack = fn, list(fn_args), stack_size

    def memory(self) -> int:
        total = self.stack
        statics: set[str] = set()
        for a in self.args:
            if isinstance(a, Handle):
                total += a.fifo.depth * a.fifo.n
            elif isinstance(a, Buffer):
                total += a.n
            elif isinstance(a, Kernel):
                statics.update(KERNEL_STATICS.get(a.name, ()))
        return total + sum(STATICS[g][1] for g in statics)


class TensorAccessPattern:
    def __init__(self, tensor_dims: Any, offset: int, sizes: list[int], strides: list[int],
                 **_kw: Any) -> None:
        total = 1
        for d in tensor_dims:
            total *= int(d)
        _check(len(sizes) == len(strides), f"sizes {sizes} and strides {strides} differ")
        lo = hi = offset
        count = 1
        for size, stride in zip(sizes, strides):  # noqa: B905 - lengths checked above
            _check(size >= 1, f"empty access pattern {sizes}")
            count *= size
            if stride > 0:
                hi += (size - 1) * stride
            else:
                lo += (size - 1) * stride
        _check(lo >= 0 and hi < total, f"pattern [{lo}, {hi}] outside tensor of {total}")
        self.total, self.count = total, count
        self.offset, self.sizes, self.strides = offset, list(sizes), list(strides)


class Tensor:
    def __init__(self, t: Any, index: int) -> None:
        self.n, self.itemsize, self.index = type_bytes(t), type_itemsize(t), index


@dataclass(frozen=True)
class Move:
    """One host DMA task: `kind` fill (tensor -> fifo) or drain (fifo -> tensor) on
    runtime-sequence argument `arg`; the pattern in elements of `itemsize` bytes."""

    kind: str
    arg: int
    offset: int
    sizes: tuple[int, ...]
    strides: tuple[int, ...]
    itemsize: int

    def bytes(self) -> np.ndarray:
        """Every byte offset it touches (elements expanded to their bytes)."""
        idx = np.array([self.offset], dtype=np.int64)
        for size, stride in zip(self.sizes, self.strides, strict=True):
            idx = (idx[:, None] + stride * np.arange(size, dtype=np.int64)[None, :]).reshape(-1)
        return ((idx * self.itemsize)[:, None]
                + np.arange(self.itemsize, dtype=np.int64)[None, :]).reshape(-1)


def touched(moves: list[Move], arg: int, kind: str, nbytes: int) -> np.ndarray:
    """Per byte of argument `arg`, how many `kind` tasks touch it (for layout tests)."""
    hits = [m.bytes() for m in moves if m.arg == arg and m.kind == kind]
    if not hits:
        return np.zeros(nbytes, dtype=np.int64)
    return np.bincount(np.concatenate(hits), minlength=nbytes)


class Runtime:
    def __init__(self) -> None:
        self.workers: list[Worker] = []
        self.moves: list[Move] = []
        self.arg_bytes: list[int] = []

    def sequence(self, *types_: Any) -> Any:
        @contextlib.contextmanager
        def cm() -> Iterator[tuple[Tensor, ...]]:
            tensors = tuple(Tensor(t, i) for i, t in enumerate(types_))
            self.arg_bytes = [t.n for t in tensors]
            yield tensors

        return cm()

    def start(self, *workers: Worker) -> None:
        self.workers += workers

    def _moved(self, kind: str, tensor: Tensor, tap: TensorAccessPattern | None) -> int:
        if tap is None:
            self.moves.append(Move(kind, tensor.index, 0, (tensor.n // tensor.itemsize,), (1,),
                                   tensor.itemsize))
            return tensor.n
        _check(tap.total * tensor.itemsize == tensor.n,
               f"pattern over {tap.total} elements, tensor has {tensor.n} bytes")
        self.moves.append(Move(kind, tensor.index, tap.offset, tuple(tap.sizes),
                               tuple(tap.strides), tensor.itemsize))
        return tap.count * tensor.itemsize

    def fill(self, handle: Handle, tensor: Tensor, tap: Any = None, task_group: Any = None,
             wait: bool = False, placement: Any = None) -> None:
        _check(handle.kind == "prod", f"fill into the consumer side of {handle.fifo.name}")
        handle.host = True
        handle.fifo.filled += self._moved("fill", tensor, tap)

    def drain(self, handle: Handle, tensor: Tensor, tap: Any = None, task_group: Any = None,
              wait: bool = False, placement: Any = None) -> None:
        _check(handle.kind == "cons", f"drain from the producer side of {handle.fifo.name}")
        handle.host = True
        handle.fifo.drained += self._moved("drain", tensor, tap)

    def task_group(self) -> object:
        return object()

    def finish_task_group(self, tg: Any) -> None:
        pass


class Program:
    def __init__(self, dev: Any, rt: Runtime) -> None:
        self.rt = rt

    def resolve_program(self, placer: Any = None) -> Report:
        rep = Report(workers=len(self.rt.workers), fifos=len(_State.fifos),
                     moves=self.rt.moves, arg_bytes=self.rt.arg_bytes)
        _check(rep.workers <= COMPUTE_CORES,
               f"{rep.workers} workers, npu1 has {COMPUTE_CORES} compute cores")
        for w in self.rt.workers:
            w.fn(*w.args)
            mem = w.memory()
            rep.core_bytes.append(mem)
            ends = [a.kind for a in w.args if isinstance(a, Handle)]
            rep.core_streams.append((ends.count("cons"), ends.count("prod")))
            _check(mem <= CORE_MEMORY, f"a core needs {mem} bytes of data memory "
                                       f"(fifos {[a.fifo.name for a in w.args if isinstance(a, Handle)]}), "
                                       f"AIE2 has {CORE_MEMORY}")
        _propagate_links()
        for how, src, dsts, col in _State.links:
            need = max([src.depth * src.n] + [d.depth * d.n for d in dsts]) \
                if how == "forward" else src.depth * src.n
            key = -1 if col is None else col
            rep.memtile_bytes[key] = rep.memtile_bytes.get(key, 0) + need
        for col, mem in rep.memtile_bytes.items():
            _check(mem <= MEMTILE_MEMORY, f"memory tile {col}: {mem} bytes of link buffers, "
                                          f"it has {MEMTILE_MEMORY}")
        for f in _State.fifos:
            _check_fifo(f)
        return rep


def _produced(f: Fifo) -> int:
    return f.filled + f.n * sum(h.acquired for h in f.prods if not h.host and not h.linked)


def _propagate_links() -> None:
    """Volumes through memory-tile links: forward copies, split divides, join sums."""
    for how, src, dsts, _col in _State.links:
        if how == "forward":
            dsts[0].filled += _produced(src)
        elif how == "split":
            for d in dsts:
                d.filled += _produced(src) * d.n // src.n
    for how, src, dsts, _col in _State.links:
        if how == "join":
            made = [_produced(d) for d in dsts]
            for d, m in zip(dsts, made, strict=True):
                _check(m * dsts[0].n == made[0] * d.n,
                       f"join {src.name}: part {d.name} produces {m}, out of step with the "
                       "other parts")
            src.filled += sum(made)


def _check_fifo(f: Fifo) -> None:
    produced = _produced(f)
    _check(produced > 0, f"fifo {f.name} is never written")
    _check(bool(f.conss), f"fifo {f.name} has no consumer")
    core_cons = [h for h in f.conss if not h.host and not h.linked]
    for h in core_cons:
        _check(h.acquired * f.n == produced,
               f"fifo {f.name}: a core takes {h.acquired * f.n} bytes, {produced} supplied")
    if any(h.host for h in f.conss):
        _check(f.drained == produced,
               f"fifo {f.name}: host drains {f.drained} bytes, cores produce {produced}")


@dataclass(frozen=True)
class Tile:
    col: int
    row: int = 0


def _fake_modules() -> dict[str, types.ModuleType]:
    names = ("aie", "aie.iron", "aie.iron.controlflow", "aie.iron.device", "aie.iron.placers",
             "aie.helpers", "aie.helpers.taplib", "aie.helpers.taplib.tap")
    mods = {n: types.ModuleType(n) for n in names}
    for m in mods.values():
        m.__doc__ = "FAKE IRON (kernels/iron_check.py): records, lowers nothing"
    mods["aie.iron"].__dict__.update(Kernel=Kernel, ObjectFifo=Fifo, Program=Program,
                                     Runtime=Runtime, Worker=Worker, Buffer=Buffer)
    mods["aie.iron.controlflow"].range_ = range
    mods["aie.iron.device"].__dict__.update(NPU1=object, NPU1Col4=object, Tile=Tile)
    mods["aie.iron.placers"].SequentialPlacer = object
    mods["aie.helpers.taplib"].TensorAccessPattern = TensorAccessPattern
    mods["aie.helpers.taplib.tap"].TensorAccessPattern = TensorAccessPattern
    return mods


@contextlib.contextmanager
def fake_iron() -> Iterator[None]:
    """Installs the FAKE `aie` modules for the duration (restores sys.modules after)."""
    mods = _fake_modules()
    saved = {n: sys.modules.get(n) for n in mods}
    sys.modules.update(mods)
    _State.fifos, _State.links = [], []
    try:
        yield
    finally:
        for n, old in saved.items():
            if old is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = old


def trace(load: Callable[[], Any], fn: str, *args: Any, **kwargs: Any) -> Report:
    """Runs `load().<fn>(*args, **kwargs)` under the FAKE IRON; raises TraceError
    naming the first broken check. `load` imports the design module (inside the
    fake, since some designs import `aie` at module level)."""
    with fake_iron():
        mod = load()
        rep = getattr(mod, fn)(*args, **kwargs)
    if not isinstance(rep, Report):
        raise TraceError(f"{fn} returned {type(rep).__name__}, not the traced program")
    return rep
