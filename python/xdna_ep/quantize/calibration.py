"""Activation ranges from calibration data, through onnxruntime's calibrators.

The NPU program quantizes tensors that are not always tensors of the ONNX
graph (e.g. a matmul output with a BiasGelu bias folded in). Each such tensor
is described by a Tap: an ONNX tensor, optionally plus a constant. The model is
copied, every tap becomes an `Identity` (after an `Add` if needed) whose output
we name, and onnxruntime.quantization's calibrator is pointed at op type
Identity, so MinMax / Entropy / Percentile all see exactly the values the
program will quantize.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort
from onnx import helper
from onnxruntime.quantization.calibrate import (
    CalibrationDataReader,
    CalibrationMethod,
    create_calibrator,
)

log = logging.getLogger("xdna_ep.quantize")

Sample = dict[str, np.ndarray]

METHODS: dict[str, CalibrationMethod] = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}

TAP_SUFFIX = "::xdna_cal"


class CalibrationError(ValueError):
    """Calibration data is missing, empty or not finite."""


def method_name(method: str | CalibrationMethod) -> str:
    """Canonical lower-case name ("minmax", "entropy", "percentile")."""
    if isinstance(method, CalibrationMethod):
        for k, v in METHODS.items():
            if v == method:
                return k
        raise ValueError(f"calibrate_method {method!r} is not supported "
                         f"(use one of {sorted(METHODS)})")
    key = str(method).lower().replace("_", "").replace("-", "")
    if key not in METHODS:
        raise ValueError(f"calibrate_method {method!r} is not supported "
                         f"(use one of {sorted(METHODS)})")
    return key


class ListCalibrationReader(CalibrationDataReader):
    """A rewindable CalibrationDataReader over samples held in memory."""

    def __init__(self, samples: Sequence[Mapping[str, np.ndarray]]) -> None:
        self.samples = [dict(s) for s in samples]
        self._i = 0

    def get_next(self) -> Sample | None:
        if self._i >= len(self.samples):
            return None
        s = self.samples[self._i]
        self._i += 1
        return s

    def rewind(self) -> None:
        self._i = 0

    def __len__(self) -> int:
        return len(self.samples)


class NpzCalibrationReader(ListCalibrationReader):
    """Samples from .npz files: one file per sample, array names = model input names.

    `source` is one .npz file, a directory of them (sorted by name) or a list of
    paths. Arrays are loaded without pickle.
    """

    def __init__(self, source: str | Path | Sequence[str | Path]) -> None:
        paths = _npz_paths(source)
        samples = []
        for p in paths:
            with np.load(p, allow_pickle=False) as z:
                samples.append({k: np.array(z[k]) for k in z.files})
        super().__init__(samples)
        self.paths = paths


def _npz_paths(source: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(source, (str, Path)):
        p = Path(source)
        if p.is_dir():
            paths = sorted(p.glob("*.npz"))
        elif p.is_file():
            paths = [p]
        else:
            raise CalibrationError(f"calibration path {str(p)!r} does not exist")
    else:
        paths = [Path(x) for x in source]
        for p in paths:
            if not p.is_file():
                raise CalibrationError(f"calibration file {str(p)!r} does not exist")
    if not paths:
        raise CalibrationError(f"no .npz calibration samples found in {str(source)!r}")
    return paths


def materialize(source: CalibrationDataReader | str | Path | Iterable[Mapping[str, np.ndarray]],
                input_names: Sequence[str] | None = None) -> list[Sample]:
    """All samples of a reader / npz path / iterable of dicts, validated.

    Calibration sets are small (tens of samples); holding them lets one set feed
    the calibrator, the SQNR measurement and several regions without rewinding
    a user's one-shot reader.
    """
    if isinstance(source, (str, Path)):
        samples = NpzCalibrationReader(source).samples
    elif isinstance(source, CalibrationDataReader):
        samples = []
        while True:
            s = source.get_next()
            if not s:
                break
            samples.append(dict(s))
    else:
        samples = [dict(s) for s in source]
    if not samples:
        raise CalibrationError("calibration data is empty (the reader returned no samples)")
    for i, s in enumerate(samples):
        if input_names is not None:
            missing = [n for n in input_names if n not in s]
            if missing:
                raise CalibrationError(f"calibration sample {i} lacks model input(s) {missing}")
        for k, v in s.items():
            a = np.asarray(v)
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                raise CalibrationError(f"calibration sample {i}, input {k!r} contains NaN or "
                                       f"infinity")
            if a.size == 0:
                raise CalibrationError(f"calibration sample {i}, input {k!r} is empty "
                                       f"(shape {a.shape})")
            s[k] = a
    return samples


@dataclass(frozen=True)
class Tap:
    """A value the program quantizes, expressed on the FP32 model:

        v = tensor                                  (an ONNX tensor), then
        v = (v @ matmul)[..., cols[0]:cols[1]]      if matmul (an initializer), then
        v = v + add[add_cols[0]:add_cols[1]]        if add (an initializer or tensor), then
        v = v[..., take]                            if take (channel indices), then
        v = gelu(v)                                 if gelu ("none" | "tanh")

    e.g. a matmul output with a BiasGelu bias folded in (add), or the q part of
    a packed QKV projection of a fused Attention node (matmul + cols + add), or
    one channel group of the fc1 output / GELU output of an MLP that
    passes/split_outliers.py split (take, gelu).
    """

    tensor: str
    add: str | None = None
    matmul: str | None = None
    cols: tuple[int, int] | None = None
    add_cols: tuple[int, int] | None = None
    take: tuple[int, ...] | None = None
    gelu: str | None = None


def _slice_last(g: onnx.GraphProto, src: str, cols: tuple[int, int], out: str) -> str:
    """Appends Slice(src)[..., cols[0]:cols[1]] to `g`; returns the output name."""
    for suffix, val in (("starts", cols[0]), ("ends", cols[1]), ("axes", -1)):
        g.initializer.append(onnx.numpy_helper.from_array(np.array([val], np.int64),
                                                          f"{out}.{suffix}"))
    g.node.append(helper.make_node("Slice", [src, f"{out}.starts", f"{out}.ends", f"{out}.axes"],
                                   [out], name=f"{out}_node"))
    return out


def _take_cols(g: onnx.GraphProto, src: str, take: tuple[int, ...], out: str) -> str:
    """Appends Gather(src, take, axis=-1): the listed last-axis channels, in that order."""
    g.initializer.append(onnx.numpy_helper.from_array(np.asarray(take, np.int64),
                                                      f"{out}.idx"))
    g.node.append(helper.make_node("Gather", [src, f"{out}.idx"], [out], axis=-1,
                                   name=f"{out}_node"))
    return out


def _gelu(g: onnx.GraphProto, src: str, approximate: str, out: str) -> str:
    """Appends GELU(src) in standard ops: 0.5 x (1 + erf(x / sqrt 2)), or the tanh form."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu tap: approximate must be 'none' or 'tanh', got {approximate!r}")

    def const(name: str, v: float) -> str:
        g.initializer.append(onnx.numpy_helper.from_array(np.array(v, np.float32),
                                                          f"{out}.{name}"))
        return f"{out}.{name}"

    def node(op: str, ins: list[str], name: str) -> str:
        g.node.append(helper.make_node(op, ins, [f"{out}.{name}"], name=f"{out}.{name}_node"))
        return f"{out}.{name}"

    if approximate == "none":
        inner = node("Erf", [node("Mul", [src, const("rsqrt2", 1.0 / np.sqrt(2.0))], "xs")],
                     "erf")
    else:
        x3 = node("Mul", [node("Mul", [src, src], "x2"), src], "x3")
        poly = node("Add", [src, node("Mul", [x3, const("c", 0.044715)], "cx3")], "poly")
        inner = node("Tanh", [node("Mul", [poly, const("k", np.sqrt(2.0 / np.pi))], "kp")],
                     "tanh")
    one_plus = node("Add", [inner, const("one", 1.0)], "onep")
    half_x = node("Mul", [src, const("half", 0.5)], "halfx")
    g.node.append(helper.make_node("Mul", [half_x, one_plus], [out], name=f"{out}_node"))
    return out


def tap_model(model: onnx.ModelProto, taps: Mapping[str, Tap]) -> onnx.ModelProto:
    """Copy of `model` with one Identity per tap, output `<key>::xdna_cal`.

    Identity nodes already in the model are calibrated too (the calibrator
    selects by op type); their ranges are simply not read.
    """
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    for key, tap in sorted(taps.items()):
        src = tap.tensor
        if tap.matmul is not None:
            g.node.append(helper.make_node("MatMul", [src, tap.matmul], [f"{key}::xdna_mm"],
                                           name=f"{key}::xdna_mm_node"))
            src = f"{key}::xdna_mm"
            if tap.cols is not None:
                src = _slice_last(g, src, tap.cols, f"{key}::xdna_cols")
        if tap.add is not None:
            b = tap.add
            if tap.add_cols is not None:
                b = _slice_last(g, b, tap.add_cols, f"{key}::xdna_add_cols")
            g.node.append(helper.make_node("Add", [src, b], [f"{key}::xdna_add"],
                                           name=f"{key}::xdna_add_node"))
            src = f"{key}::xdna_add"
        if tap.take is not None:
            src = _take_cols(g, src, tap.take, f"{key}::xdna_take")
        if tap.gelu is not None:
            src = _gelu(g, src, tap.gelu, f"{key}::xdna_gelu")
        g.node.append(helper.make_node("Identity", [src], [key + TAP_SUFFIX],
                                       name=f"{key}::xdna_cal_node"))
        g.output.append(helper.make_tensor_value_info(key + TAP_SUFFIX, onnx.TensorProto.FLOAT,
                                                      None))
    return m


def collect_ranges(model: onnx.ModelProto, taps: Mapping[str, Tap], samples: Sequence[Sample],
                   method: str | CalibrationMethod = "minmax", percentile: float = 99.99,
                   extra_options: Mapping[str, object] | None = None,
                   ) -> dict[str, tuple[float, float]]:
    """Symmetric range (-a, a) of every tap over `samples`, by the chosen calibrator.

    Ranges are returned as computed, NaN/inf included: a tensor that overflows
    on the calibration data disqualifies the region that quantizes it, not
    the whole model. (The histogram calibrators cannot take non-finite values:
    those taps are found with MinMax first and left out of the histograms.)
    """
    if not taps:
        return {}
    name = method_name(method)
    extra: dict[str, object] = {"symmetric": True}
    if name == "percentile":
        extra["percentile"] = percentile
    elif name == "entropy":
        # onnxruntime's defaults (128 bins, 128 quantized bins) leave the KL search a
        # single candidate, i.e. MinMax; a fine histogram over 255 int8 levels searches.
        extra.update(num_bins=2048, num_quantized_bins=255)
    extra.update(extra_options or {})
    if name == "minmax":
        return _run_calibrator(model, taps, samples, name, extra)
    try:
        return _run_calibrator(model, taps, samples, name, extra)
    except ValueError:
        minmax = _run_calibrator(model, taps, samples, "minmax", {"symmetric": True})
        finite = {k: t for k, t in taps.items() if all(np.isfinite(minmax[k]))}
        if len(finite) == len(taps):
            raise
        out = {k: v for k, v in minmax.items() if k not in finite}
        out.update(_run_calibrator(model, finite, samples, name, extra) if finite else {})
        return out


@contextlib.contextmanager
def saved_model(model: onnx.ModelProto, prefix: str) -> Iterator[Path]:
    """`model` saved as model.onnx in a temporary folder, its tensors above 1 MiB in
    one external file beside it (onnxruntime's sessions and calibrators take a
    path, and a Whisper-size model exceeds protobuf's 2 GB limit in one file)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location="model.data", size_threshold=1 << 20)
        yield path


@contextlib.contextmanager
def cpu_session(model: onnx.ModelProto, prefix: str) -> Iterator[ort.InferenceSession]:
    """An onnxruntime CPU session of `model` (the FP32 reference: observations,
    calibration maxima), quiet, its files removed on exit."""
    with saved_model(model, prefix) as path:
        so = ort.SessionOptions()
        so.log_severity_level = 3
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        try:
            yield sess
        finally:
            del sess


def _run_calibrator(model: onnx.ModelProto, taps: Mapping[str, Tap], samples: Sequence[Sample],
                    name: str, extra: Mapping[str, object]) -> dict[str, tuple[float, float]]:
    """One onnxruntime calibrator run over the tapped copy of `model` (in a temp dir:
    the calibrators take a path; external data is kept in one file next to it)."""
    with saved_model(tap_model(model, taps), "xdna_cal_") as path:
        cal = create_calibrator(path, op_types_to_calibrate=["Identity"],
                                augmented_model_path=str(path.parent / "augmented.onnx"),
                                calibrate_method=METHODS[name], use_external_data_format=True,
                                extra_options=dict(extra))
        # onnxruntime's calibrators print progress to stdout: keep it off the
        # user's terminal (a transcript on stdout must stay clean) and log it instead
        chatter = io.StringIO()
        with contextlib.redirect_stdout(chatter):
            cal.collect_data(ListCalibrationReader(samples))
            data = cal.compute_data()
        if chatter.getvalue().strip():
            log.debug("calibrator %s: %s", name, chatter.getvalue().strip())
        out: dict[str, tuple[float, float]] = {}
        for key in taps:
            tname = key + TAP_SUFFIX
            if tname not in data:
                raise CalibrationError(f"calibrator produced no range for {key!r}")
            lo, hi = (float(np.asarray(x).reshape(-1)[0]) for x in data[tname].range_value)
            out[key] = (lo, hi)  # may be non-finite: the region using it decides (CPU)
        del cal
    return out


def scale_from_range(rng: tuple[float, float]) -> float:
    """Symmetric int8 scale max(|lo|, |hi|)/127; 1.0 when the tensor is always 0."""
    a = max(abs(rng[0]), abs(rng[1]))
    return float(np.float32(a / 127.0)) if a > 0 else 1.0

