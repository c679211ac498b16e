"""The sizes of a model's symbolic input dims, for placement and compilation.

A dynamic-axes export (torch BERT, Optimum feature-extraction) names its input
dims (`batch`, `sequence`) without sizes. MACs, the cost model and the
compiled programs need sizes, and pricing an unknown dim at 1 makes every
region look too small for the NPU. The sizes come from, in this order:

1. the provider option `dims` (`"batch=4,sequence=128"` or `{"batch": 4}`);
2. ONNX Runtime's free-dimension overrides in the SessionOptions the user
   passes (`add_free_dimension_override_by_name` / `_by_denotation`);
3. the shapes of the calibration arrays (the first sample);
4. otherwise the input shape of each run: the provider compiles per concrete
   input shape at the first run with that shape (cached per shape, as
   TensorRT does with optimisation profiles); provider.py / session.py.

Names the Whisper defaults of capability/shapes.py bind (batch_size,
encoder_sequence_length, ...) count as known; any other symbolic dim without a
size is "unknown" and defers compilation to the first run.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import onnx

from ..capability.shapes import SymbolicDim, bind_dim, symbolic_input_dims
from .options import ProviderOptionError

log = logging.getLogger("xdna_ep")

SOURCE_OPTION = "option"
SOURCE_SESSION = "session_options"
SOURCE_CALIBRATION = "calibration"
SOURCE_FIRST_RUN = "first_run"


@dataclass(frozen=True)
class DimsChoice:
    """Symbolic dims with a known size before any run, and the ones without."""

    dims: dict[str, int] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)
    unknown: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.dims.items())


def shape_key(dims: Mapping[str, int]) -> str:
    """A stable text key of one binding ("batch=4,sequence=128")."""
    return ",".join(f"{k}={int(v)}" for k, v in sorted(dims.items()))


def _size(key: str, value: Any) -> int:
    try:
        n = int(value)
        if isinstance(value, (float, bool)) or n < 1:
            raise ValueError
    except (TypeError, ValueError):
        raise ProviderOptionError(f"XDNAExecutionProvider option dims: size of {key!r} must "
                                  f"be an integer >= 1, got {value!r}") from None
    return n


def parse_dims(value: Any) -> dict[str, int]:
    """The `dims` option: "name=size,name=size" or a mapping name -> size.

    A name is a dim_param of a model input (`batch`, `sequence`), or
    `<input>:<axis>` for a dynamic dim without one (`input_ids:1`)."""
    if value is None or value == "":
        return {}
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, str):
        items = []
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, size = part.rpartition("=")
            if not sep or not name.strip():
                raise ProviderOptionError(
                    f"XDNAExecutionProvider option dims={value!r} is invalid: expected "
                    "'name=size,name=size' (e.g. 'batch=4,sequence=128')")
            items.append((name.strip(), size.strip()))
    else:
        raise ProviderOptionError(f"XDNAExecutionProvider option dims={value!r} is invalid: "
                                  "expected 'name=size,...' or a dict name -> size")
    out: dict[str, int] = {}
    for name, size in items:
        if not isinstance(name, str) or not name:
            raise ProviderOptionError(f"XDNAExecutionProvider option dims: bad name {name!r}")
        out[name] = _size(name, size)
    return out


def dims_from_arrays(model_dims: Sequence[SymbolicDim],
                     arrays: Mapping[str, Any]) -> dict[str, int]:
    """Bind the symbolic dims to the shapes of `arrays` (input name -> array or
    anything with a `shape`); inputs not given bind nothing. Two inputs that
    disagree on one named dim are an error (ONNX Runtime would run them, but
    then no single compiled shape describes the run)."""
    out: dict[str, int] = {}
    for d in model_dims:
        arr = arrays.get(d.input)
        if arr is None:
            continue
        shape = arr.shape() if callable(getattr(arr, "shape", None)) else arr.shape
        if d.axis >= len(shape):
            raise ValueError(f"input {d.input!r} has rank {len(shape)}; the model declares "
                             f"a dynamic dim at axis {d.axis}")
        size = int(shape[d.axis])
        if d.name in out and out[d.name] != size:
            raise ValueError(f"inputs disagree on symbolic dim {d.name!r}: {out[d.name]} "
                             f"and {size} ({d.input!r} axis {d.axis})")
        out[d.name] = size
    return out


def _probe_model(model: onnx.ModelProto, model_dims: Sequence[SymbolicDim]) -> onnx.ModelProto:
    """A model of one Identity per input with dynamic dims, typed like the
    user's inputs (dim_params and denotations kept): ONNX Runtime applies the
    session's free-dimension overrides to its inputs, and get_inputs() shows them."""
    wanted = {d.input for d in model_dims}
    inputs, outputs, nodes = [], [], []
    for vi in model.graph.input:
        if vi.name not in wanted:
            continue
        probe_in = onnx.ValueInfoProto()
        probe_in.CopyFrom(vi)
        probe_in.name = f"in{len(inputs)}"
        inputs.append(probe_in)
        out = onnx.helper.make_tensor_value_info(f"out{len(outputs)}",
                                                 vi.type.tensor_type.elem_type, None)
        outputs.append(out)
        nodes.append(onnx.helper.make_node("Identity", [probe_in.name], [out.name]))
    graph = onnx.helper.make_graph(nodes, "xdna_dims_probe", inputs, outputs)
    probe = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    probe.ir_version = 8
    return probe


def session_overrides(model: onnx.ModelProto, so: Any) -> tuple[dict[str, int], str]:
    """The free-dimension overrides of SessionOptions `so` for this model's
    dims, and a note when they could not be read.

    SessionOptions has setters but no getter for the overrides, so ONNX Runtime
    itself applies them: a probe session (one Identity per input) is created
    with `so`, and its get_inputs() shows the overridden sizes. The options
    that would make that session write files (optimized_model_filepath,
    enable_profiling) are cleared for the probe and restored; the probe model
    is a temporary file (removed)."""
    model_dims = symbolic_input_dims(model)
    if so is None or not model_dims:
        return {}, ""
    import onnxruntime as ort

    saved_path, saved_prof = so.optimized_model_filepath, so.enable_profiling
    try:
        so.optimized_model_filepath, so.enable_profiling = "", False
        # from a file, not bytes: with ep.context_enable ORT refuses a model given
        # as bytes without ep.context_file_path (it writes nothing for a CPU-only probe)
        with tempfile.TemporaryDirectory(prefix="xdna_dims_") as tmp:
            probe = os.path.join(tmp, "probe.onnx")
            onnx.save(_probe_model(model, model_dims), probe)
            sess = ort.InferenceSession(probe, so, providers=["CPUExecutionProvider"])
            shapes = {i.name: i.shape for i in sess.get_inputs()}
            del sess
    except Exception as exc:  # noqa: BLE001 - any failure is reported, never fatal
        return {}, (f"the SessionOptions' free-dimension overrides could not be read "
                    f"({type(exc).__name__}: {exc}); give the sizes with provider option dims")
    finally:
        so.optimized_model_filepath, so.enable_profiling = saved_path, saved_prof
    order = {name: i for i, name in enumerate(
        vi.name for vi in model.graph.input if vi.name in {d.input for d in model_dims})}
    out: dict[str, int] = {}
    for d in model_dims:
        shape = shapes.get(f"in{order[d.input]}")
        if shape is not None and d.axis < len(shape) and isinstance(shape[d.axis], int):
            out[d.name] = int(shape[d.axis])
    return out, ""


def resolve(model: onnx.ModelProto, option_dims: Mapping[str, int], so: Any,
            samples: Sequence[Mapping[str, Any]] | None) -> DimsChoice:
    """Sizes known at session start, by precedence (module docstring)."""
    model_dims = symbolic_input_dims(model)
    names = list(dict.fromkeys(d.name for d in model_dims))
    stray = sorted(set(option_dims) - set(names))
    if stray:
        raise ProviderOptionError(
            f"XDNAExecutionProvider option dims names {stray}, which are not symbolic input "
            f"dims of this model (its symbolic dims: {names or 'none'}; a dynamic dim without "
            "a name is '<input>:<axis>')")
    dims: dict[str, int] = {}
    source: dict[str, str] = {}
    notes: list[str] = []
    for name, size in option_dims.items():
        dims[name], source[name] = int(size), SOURCE_OPTION
    if len(dims) < len(names):
        overrides, note = session_overrides(model, so)
        if note:
            notes.append(note)
        for name, size in overrides.items():
            if name not in dims:
                dims[name], source[name] = size, SOURCE_SESSION
    if len(dims) < len(names) and samples:
        try:
            cal = dims_from_arrays(model_dims, samples[0])
        except ValueError as exc:
            raise ProviderOptionError(f"XDNAExecutionProvider calibration arrays do not fit "
                                      f"the model's inputs: {exc}") from None
        for name, size in cal.items():
            if name not in dims:
                dims[name], source[name] = size, SOURCE_CALIBRATION
    unknown = tuple(n for n in names if n not in dims and bind_dim(n, None)[1])
    return DimsChoice(dims, source, unknown, tuple(notes))
