"""Mutations of an ONNX model folder, for the model fuzz test.

Each Mutation turns a valid base model into a broken (or, for the controls,
differently stored but equivalent) model folder:

    case_dir/model/      the model folder: model.onnx (+ external data files)
    case_dir/outside/    a canary file outside the model folder
    case_dir/cwd/        the worker's working directory, holding canary copies
                         under the names the model's external data uses (a
                         model folder file must never resolve against the cwd)
    case_dir/cache/      the provider's cache_dir

Categories (issue 8): truncation, bit flips in the protobuf, wrong
dtypes, inconsistent shapes, dangling inputs, cycles, huge dims, external-data
paths pointing outside the model folder, plus opsets/op types/attributes.
Every choice is drawn from a Random seeded by the case name, so a failing
case is reproduced by its name alone.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CANARY_PREFIX = b"XDNA-CANARY-"


@dataclass
class CaseContext:
    case_dir: Path
    model_dir: Path
    outside: Path        # the canary file outside the model folder
    token: str           # unique text inside the canary (searched for in every output)

    @property
    def cwd(self) -> Path:
        return self.case_dir / "cwd"


MutateFn = Callable[[onnx.ModelProto, bytes, random.Random, "CaseContext"], object]


@dataclass(frozen=True)
class Mutation:
    name: str
    category: str
    fn: MutateFn
    control: bool = False      # an equivalent model: the session must be correct


# -- helpers ------------------------------------------------------------------------------
def _weights(m: onnx.ModelProto, min_ndim: int = 1) -> list[TensorProto]:
    return [t for t in m.graph.initializer if len(t.dims) >= min_ndim
            and t.data_type == TensorProto.FLOAT]


def _pick(rng: random.Random, items: list):
    return items[rng.randrange(len(items))]


def _big_weights(m: onnx.ModelProto) -> list[TensorProto]:
    ws = [t for t in _weights(m, 2)]
    return ws or _weights(m)


def canary_bytes(token: str, size: int) -> bytes:
    """Canary content: the token, then float32 7777.0 (implausible weights)."""
    head = CANARY_PREFIX + token.encode()
    body = np.full(max(0, (size - len(head)) // 4 + 1), 7777.0, np.float32).tobytes()
    return (head + body)[:max(size, len(head))]


def externalize(m: onnx.ModelProto, ctx: CaseContext, location: str,
                tensors: list[TensorProto] | None = None, write: bool = True) -> None:
    """Move tensors' data to external file `location` (relative to the model folder,
    or any string: the mutation decides where it points)."""
    offset = 0
    chunks = []
    for t in tensors if tensors is not None else _weights(m):
        raw = numpy_helper.to_array(t).tobytes()
        t.ClearField("float_data")
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        del t.external_data[:]
        for k, v in (("location", location), ("offset", str(offset)),
                     ("length", str(len(raw)))):
            e = t.external_data.add()
            e.key, e.value = k, v
        chunks.append(raw)
        offset += len(raw)
    if write:
        target = ctx.model_dir / location
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"".join(chunks))


def _set_ext(t: TensorProto, key: str, value: str) -> None:
    for e in t.external_data:
        if e.key == key:
            e.value = value
            return
    e = t.external_data.add()
    e.key, e.value = key, value


def _node_with_inputs(m: onnx.ModelProto, rng: random.Random, op: str | None = None):
    nodes = [n for n in m.graph.node if n.input and (op is None or n.op_type == op)]
    return _pick(rng, nodes) if nodes else _pick(rng, list(m.graph.node))


# -- byte-level mutations ----------------------------------------------------------------
def truncate_at(frac: float | None = None, absolute: int | None = None) -> MutateFn:
    def fn(m, raw, rng, ctx):
        n = absolute if absolute is not None else int(len(raw) * frac)
        return raw[:max(0, min(n, len(raw) - 1))]
    return fn


def bitflips(count: int, region: str) -> MutateFn:
    def fn(m, raw, rng, ctx):
        b = bytearray(raw)
        n = len(b)
        lo, hi = {"head": (0, min(n, 16_384)), "tail": (max(0, n - 4096), n),
                  "anywhere": (0, n)}[region]
        for _ in range(count):
            i = rng.randrange(lo, hi)
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b)
    return fn


def byte_burst(region: str) -> MutateFn:
    def fn(m, raw, rng, ctx):
        b = bytearray(raw)
        lo, hi = {"head": (0, min(len(b), 16_384)), "tail": (max(0, len(b) - 4096), len(b))}[
            region]
        i = rng.randrange(lo, hi - 16)
        b[i:i + 16] = bytes([rng.choice((0x00, 0xFF))]) * 16
        return bytes(b)
    return fn


# -- structural mutations ----------------------------------------------------------------
def init_dtype(dtype: int) -> MutateFn:
    def fn(m, raw, rng, ctx):
        _pick(rng, _big_weights(m)).data_type = dtype
        return m
    return fn


def io_dtype(which: str, dtype: int) -> MutateFn:
    def fn(m, raw, rng, ctx):
        vi = _pick(rng, list(m.graph.input if which == "input" else m.graph.output))
        vi.type.tensor_type.elem_type = dtype
        return m
    return fn


def init_dims(kind: str) -> MutateFn:
    def fn(m, raw, rng, ctx):
        t = _pick(rng, _big_weights(m))
        dims = list(t.dims)
        if kind == "swap" and len(dims) >= 2:
            dims[0], dims[1] = dims[1], dims[0]
            if dims[0] == dims[1]:
                dims[0] += 1
        elif kind == "grow":
            dims[0] += 1
        elif kind == "drop":
            dims = dims[1:]
        elif kind == "rank_up":
            dims = [1, *dims, 1]
        elif kind == "negative":
            dims[0] = -dims[0]
        elif kind == "zero":
            dims[0] = 0
        del t.dims[:]
        t.dims.extend(dims)
        return m
    return fn


def huge_init_dim(value: int) -> MutateFn:
    def fn(m, raw, rng, ctx):
        t = _pick(rng, _big_weights(m))
        t.dims[0] = value
        return m
    return fn


def io_shape(kind: str, value: int = 0) -> MutateFn:
    def fn(m, raw, rng, ctx):
        vi = _pick(rng, list(m.graph.input))
        dims = vi.type.tensor_type.shape.dim
        if kind == "rank_down" and len(dims) > 1:
            del dims[0]
        elif kind == "rank_up":
            dims.add().dim_value = 1
        elif kind == "dim":
            d = dims[rng.randrange(len(dims))]
            d.ClearField("dim_param")
            d.dim_value = value
        elif kind == "symbolic":
            for d in dims:
                d.dim_param = "dyn"
        return m
    return fn


def wrong_value_info(m: onnx.ModelProto, raw: bytes, rng: random.Random, ctx: CaseContext):
    node = _node_with_inputs(m, rng)
    m.graph.value_info.append(helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT,
                                                            [3, 5, 7, 11]))
    return m


def wrong_output_shape(m: onnx.ModelProto, raw: bytes, rng: random.Random, ctx: CaseContext):
    vi = m.graph.output[0]
    dims = vi.type.tensor_type.shape.dim
    dims.add().dim_value = 13
    return m


def reshape_target(values: list[int]) -> MutateFn:
    def fn(m, raw, rng, ctx):
        inits = {t.name: t for t in m.graph.initializer}
        shapes = [inits[n.input[1]] for n in m.graph.node
                  if n.op_type == "Reshape" and len(n.input) > 1 and n.input[1] in inits]
        if not shapes:
            return init_dims("grow")(m, raw, rng, ctx)
        t = _pick(rng, shapes)
        t.CopyFrom(numpy_helper.from_array(np.array(values, np.int64), t.name))
        return m
    return fn


def expand_huge(m: onnx.ModelProto, raw: bytes, rng: random.Random, ctx: CaseContext):
    """Insert Expand(x, [2^20, 2^20, 384]) on a graph input: a 4 TB tensor request."""
    vi = m.graph.input[0]
    shape_name = "fuzz_expand_shape"
    m.graph.initializer.append(numpy_helper.from_array(
        np.array([1 << 20, 1 << 20, 1], np.int64), shape_name))
    out = vi.name + "_expanded"
    m.graph.node.insert(0, helper.make_node("Expand", [vi.name, shape_name], [out],
                                            name="fuzz_expand"))
    for n in m.graph.node[1:]:
        for i, x in enumerate(n.input):
            if x == vi.name:
                n.input[i] = out
    return m


def dangling(kind: str) -> MutateFn:
    def fn(m, raw, rng, ctx):
        if kind == "input":
            n = _node_with_inputs(m, rng)
            n.input[rng.randrange(len(n.input))] = "fuzz_missing_tensor"
        elif kind == "output":
            n = _pick(rng, list(m.graph.node)[:-1])
            n.output[0] = "fuzz_renamed_output"
        elif kind == "graph_output":
            m.graph.output[0].name = "fuzz_no_such_output"
        elif kind == "drop_init":
            ws = _big_weights(m)
            m.graph.initializer.remove(_pick(rng, ws))
        elif kind == "empty_input":
            n = _node_with_inputs(m, rng, "MatMul")
            n.input[0] = ""
        elif kind == "drop_graph_input":
            m.graph.input.remove(m.graph.input[0])
        elif kind == "drop_node":
            m.graph.node.remove(_pick(rng, list(m.graph.node)))
        return m
    return fn


def cycle(kind: str) -> MutateFn:
    def fn(m, raw, rng, ctx):
        nodes = list(m.graph.node)
        if kind == "self":
            n = _node_with_inputs(m, rng)
            n.input[0] = n.output[0]
        elif kind == "back_edge":  # an early node consumes a later node's output
            i = rng.randrange(1, len(nodes) // 2)
            j = rng.randrange(len(nodes) // 2, len(nodes))
            if nodes[i].input:
                nodes[i].input[0] = nodes[j].output[0]
        elif kind == "matmul_loop":  # a MatMul fed by its own consumer
            mm = [k for k, n in enumerate(nodes) if n.op_type == "MatMul"]
            k = _pick(rng, mm) if mm else 0
            consumers = [n for n in nodes if nodes[k].output[0] in n.input]
            if consumers:
                nodes[k].input[0] = consumers[0].output[0]
        elif kind == "two_node":
            i = rng.randrange(len(nodes) - 1)
            a, b = nodes[i], nodes[i + 1]
            if a.input and b.input:
                a.input[0], b.input[0] = b.output[0], a.output[0]
        return m
    return fn


def opset(version: int | None) -> MutateFn:
    def fn(m, raw, rng, ctx):
        if version is None:
            del m.opset_import[:]
        else:
            for o in m.opset_import:
                if o.domain in ("", "ai.onnx"):
                    o.version = version
        return m
    return fn


def ir_version(v: int) -> MutateFn:
    def fn(m, raw, rng, ctx):
        m.ir_version = v
        return m
    return fn


def op_type(new: str, domain: str = "") -> MutateFn:
    def fn(m, raw, rng, ctx):
        n = _pick(rng, list(m.graph.node))
        n.op_type = new
        n.domain = domain
        return m
    return fn


def duplicate(kind: str) -> MutateFn:
    def fn(m, raw, rng, ctx):
        nodes = list(m.graph.node)
        a, b = rng.sample(range(len(nodes)), 2)
        if kind == "name":
            nodes[b].name = nodes[a].name
        else:  # two producers of one tensor
            nodes[b].output[0] = nodes[a].output[0]
        return m
    return fn


def attribute(kind: str) -> MutateFn:
    def fn(m, raw, rng, ctx):
        with_attrs = [n for n in m.graph.node if n.attribute]
        n = _pick(rng, with_attrs)
        a = n.attribute[0]
        if kind == "type":
            a.CopyFrom(helper.make_attribute(a.name, "fuzz"))
        elif kind == "huge":
            a.CopyFrom(helper.make_attribute(a.name, (1 << 31) - 1 if a.type != 2 else
                                             1 << 40))
        elif kind == "nan" and a.type == onnx.AttributeProto.FLOAT:
            a.f = float("nan")
        elif kind == "drop":
            n.attribute.remove(a)
        elif kind == "perm":
            tr = [x for x in m.graph.node if x.op_type == "Transpose"]
            if tr:
                t = _pick(rng, tr)
                del t.attribute[:]
                t.attribute.append(helper.make_attribute("perm", [0, 0, 5, 1]))
        return m
    return fn


# -- external data --------------------------------------------------------------------------
def ext_valid(per_tensor: bool) -> MutateFn:
    """A control: weights moved to external files inside the model folder."""
    def fn(m, raw, rng, ctx):
        if per_tensor:
            for i, t in enumerate(_weights(m)):
                externalize(m, ctx, f"w/{i}.bin", [t])
        else:
            externalize(m, ctx, "weights.bin")
        return m
    return fn


def ext_outside(kind: str) -> MutateFn:
    """External data pointing at the canary outside the folder, by several routes."""
    def fn(m, raw, rng, ctx):
        ws = _weights(m)
        size = sum(numpy_helper.to_array(t).nbytes for t in ws)
        ctx.outside.write_bytes(canary_bytes(ctx.token, size + 64))
        rel_out = os.path.relpath(ctx.outside, ctx.model_dir)
        location = {
            "relative": rel_out,
            "absolute": str(ctx.outside),
            "dotdot_inside": "sub/../" + rel_out,
            "symlink_file": "link.bin",
            "symlink_dir": "linkdir/canary.bin",
            "cwd_only": "weights_cwd.bin",
        }[kind]
        if kind == "symlink_file":
            (ctx.model_dir / "link.bin").symlink_to(ctx.outside)
        if kind == "symlink_dir":
            (ctx.model_dir / "linkdir").symlink_to(ctx.outside.parent, target_is_directory=True)
        if kind == "cwd_only":  # exists in the cwd (a canary), not in the model folder
            (ctx.cwd / "weights_cwd.bin").write_bytes(canary_bytes(ctx.token, size + 64))
        externalize(m, ctx, location, write=False)
        return m
    return fn


def ext_system(location: str, length: int | None = None) -> MutateFn:
    def fn(m, raw, rng, ctx):
        t = _pick(rng, _weights(m))
        externalize(m, ctx, location, [t], write=False)
        if length is not None:
            _set_ext(t, "length", str(length))
        return m
    return fn


def _ext_tensors(m: onnx.ModelProto) -> list[TensorProto]:
    return [t for t in m.graph.initializer if t.data_location == TensorProto.EXTERNAL]


# kind -> (external_data key, value): offsets/lengths past the file, nonsense numbers
_BOUNDS = {"offset_past_end": ("offset", str(1 << 40)), "negative_offset": ("offset", "-4096"),
           "length_past_end": ("length", str(1 << 40)), "bad_number": ("offset", "12abc"),
           "empty_location": ("location", ""), "dir_location": ("location", "adir")}


def ext_bounds(kind: str) -> MutateFn:
    """Weights in weights.bin inside the folder, one tensor's entry made invalid."""
    def fn(m, raw, rng, ctx):
        externalize(m, ctx, "weights.bin")
        t = _pick(rng, _ext_tensors(m))
        key, value = _BOUNDS[kind]
        if kind == "dir_location":
            (ctx.model_dir / "adir").mkdir()
        _set_ext(t, key, value)
        return m
    return fn


# -- the catalogue --------------------------------------------------------------------------
def unchanged(m: onnx.ModelProto, raw: bytes, rng: random.Random, ctx: CaseContext) -> bytes:
    return raw


CONTROL = Mutation("control/unchanged", "control", unchanged, control=True)


def catalogue(n_random_flips: int = 28) -> list[Mutation]:
    """Every mutation (the unchanged control CONTROL is run separately, first)."""
    cats: list[Mutation] = []
    add = cats.append
    for frac in (0.0, 0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.999):
        add(Mutation(f"truncate/{frac}", "truncation", truncate_at(frac=frac)))
    for n in (1, 2, 16, 200):
        add(Mutation(f"truncate/abs{n}", "truncation", truncate_at(absolute=n)))
    for region in ("head", "tail"):
        for count in (1, 2, 4, 8, 32):
            for k in range(2):
                add(Mutation(f"bitflip/{region}/{count}/{k}", "bitflip",
                             bitflips(count, region)))
        for k in range(3):
            add(Mutation(f"burst/{region}/{k}", "bitflip", byte_burst(region)))
    for k in range(n_random_flips):
        add(Mutation(f"bitflip/anywhere/{k}", "bitflip", bitflips(1 + k % 8, "anywhere")))
    for dt in (TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.INT8, TensorProto.INT64,
               TensorProto.STRING, TensorProto.UNDEFINED, TensorProto.BOOL, 999):
        add(Mutation(f"dtype/initializer/{dt}", "dtype", init_dtype(dt)))
    for which, dt in (("input", TensorProto.INT64), ("input", TensorProto.FLOAT16),
                      ("input", 0), ("output", TensorProto.INT8), ("output", 77)):
        add(Mutation(f"dtype/{which}/{dt}", "dtype", io_dtype(which, dt)))
    for kind in ("swap", "grow", "drop", "rank_up", "negative", "zero"):
        add(Mutation(f"shape/initializer/{kind}", "shape", init_dims(kind)))
    for kind, v in (("rank_down", 0), ("rank_up", 0), ("dim", 7), ("symbolic", 0)):
        add(Mutation(f"shape/input/{kind}", "shape", io_shape(kind, v)))
    add(Mutation("shape/value_info", "shape", wrong_value_info))
    add(Mutation("shape/output", "shape", wrong_output_shape))
    add(Mutation("shape/reshape_product", "shape", reshape_target([1, -1, 7, 5])))
    add(Mutation("shape/reshape_two_minus_one", "shape", reshape_target([-1, -1, 6, 64])))
    for kind in ("input", "output", "graph_output", "drop_init", "empty_input",
                 "drop_graph_input", "drop_node"):
        add(Mutation(f"dangling/{kind}", "dangling", dangling(kind)))
    for kind in ("self", "back_edge", "matmul_loop", "two_node"):
        for k in range(2):
            add(Mutation(f"cycle/{kind}/{k}", "cycle", cycle(kind)))
    for v in (1 << 31, 1 << 40, 1 << 62, (1 << 63) - 1):
        add(Mutation(f"huge/initializer/{v}", "huge_dim", huge_init_dim(v)))
    for v in (1 << 31, 1 << 40, 0):
        add(Mutation(f"huge/input/{v}", "huge_dim", io_shape("dim", v)))
    add(Mutation("huge/reshape", "huge_dim", reshape_target([1 << 40, 1 << 20, 1, 1])))
    add(Mutation("huge/expand", "huge_dim", expand_huge))
    add(Mutation("huge/attribute", "huge_dim", attribute("huge")))
    add(Mutation("ext/valid_one_file", "external_data", ext_valid(False), control=True))
    add(Mutation("ext/valid_per_tensor", "external_data", ext_valid(True), control=True))
    for kind in ("relative", "absolute", "dotdot_inside", "symlink_file", "symlink_dir",
                 "cwd_only"):
        add(Mutation(f"ext/outside/{kind}", "external_data", ext_outside(kind)))
    for loc, length in (("/proc/self/environ", None), ("/dev/zero", 1 << 36),
                        ("/etc/passwd", None), ("/proc/self/mem", None)):
        add(Mutation(f"ext/system{loc.replace('/', '_')}", "external_data",
                     ext_system(loc, length)))
    for kind in ("offset_past_end", "negative_offset", "length_past_end", "bad_number",
                 "empty_location", "dir_location"):
        add(Mutation(f"ext/bounds/{kind}", "external_data", ext_bounds(kind)))
    for v in (None, 1, 6, 99):
        add(Mutation(f"opset/{v}", "opset", opset(v)))
    for v in (0, 2, 99):
        add(Mutation(f"ir_version/{v}", "opset", ir_version(v)))
    add(Mutation("op/unknown", "op_type", op_type("FuzzNoSuchOp")))
    add(Mutation("op/unknown_domain", "op_type", op_type("MatMul", "fuzz.domain")))
    add(Mutation("op/wrong_known", "op_type", op_type("Softmax")))
    add(Mutation("duplicate/node_name", "duplicate", duplicate("name")))
    add(Mutation("duplicate/producer", "duplicate", duplicate("producer")))
    for kind in ("type", "nan", "drop", "perm"):
        add(Mutation(f"attribute/{kind}", "attribute", attribute(kind)))
    return cats


def case_seed(base: str, mutation: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{base}:{mutation}".encode()).digest()[:8], "little")


def write_case(base_name: str, base: onnx.ModelProto, base_bytes: bytes, mutation: Mutation,
               case_dir: Path, inputs: dict[str, tuple[list[int], str]]) -> Path:
    """Writes the mutated model folder and case.json; returns case.json's path."""
    token = hashlib.sha256(f"{base_name}:{mutation.name}".encode()).hexdigest()[:24]
    ctx = CaseContext(case_dir, case_dir / "model", case_dir / "outside" / "canary.bin", token)
    for d in (ctx.model_dir, ctx.outside.parent, ctx.cwd, case_dir / "cache"):
        d.mkdir(parents=True, exist_ok=True)
    ctx.outside.write_bytes(canary_bytes(token, 4096))
    # canary copies in the cwd under the external data names a model might use
    for name in ("weights.bin", "model.onnx.data"):
        (ctx.cwd / name).write_bytes(canary_bytes(token, 1 << 16))
    rng = random.Random(case_seed(base_name, mutation.name))
    result = mutation.fn(copy.deepcopy(base), base_bytes, rng, ctx)
    data = result if isinstance(result, bytes) else result.SerializeToString()
    (ctx.model_dir / "model.onnx").write_bytes(data)
    canaries = [str(ctx.outside), *(str(p) for p in sorted(ctx.cwd.iterdir()))]
    for c in canaries:  # atime an hour before mtime: any read moves it (relatime)
        st = os.stat(c)
        os.utime(c, (st.st_mtime - 3600, st.st_mtime))
    spec = {"base": base_name, "mutation": mutation.name, "category": mutation.category,
            "control": mutation.control, "model": str(ctx.model_dir / "model.onnx"),
            "model_dir": str(ctx.model_dir), "cache_dir": str(case_dir / "cache"),
            "canaries": canaries, "token": token,
            "inputs": {k: [list(s), dt] for k, (s, dt) in inputs.items()}}
    path = case_dir / "case.json"
    path.write_text(json.dumps(spec))
    return path
