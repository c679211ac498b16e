"""XDNAExecutionProvider provider options: parsing and validation in one place.

ONNX Runtime passes provider options as a dict of strings (users of the Python
API also pass real objects: a CalibrationDataReader, a list of op types). Every
option is checked here so a typo fails at session creation with a message that
lists what is valid, instead of being ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .digest_index import DigestIndex

DEVICES = ("auto", "npu", "emulator")
QUANTIZATION = ("static", "dynamic")
FALLBACK = ("allow", "error")
REPORT_SUFFIXES = (".json", ".html", ".txt")
CPU_QUANTIZATION = ("none", "dynamic_int8")  # ort/cpu_quantize.py

OPTION_HELP: dict[str, str] = {
    "device": f"one of {'|'.join(DEVICES)} (default auto)",
    "quantization": f"one of {'|'.join(QUANTIZATION)} (default dynamic)",
    "calibration": "a CalibrationDataReader, or a path to an .npz file (one sample, arrays "
                   "named after the model inputs) or a directory of them",
    "cache_dir": "directory of the compiled-model cache (default ~/.cache/xdna-ep/compiled)",
    "report": f"path of a partition report, suffix one of {'|'.join(REPORT_SUFFIXES)}",
    "fallback": f"one of {'|'.join(FALLBACK)} (default allow): what to do when nothing "
                "or not everything can run on the NPU",
    "exclude_ops": "op types kept on CPU (list or comma-separated string)",
    "exclude_nodes": "node names kept on CPU (list or comma-separated string)",
    "num_threads": "emulator threads, an integer >= 1 (default: all cores)",
    "dims": "sizes of symbolic input dims, 'name=size,...' or a dict (e.g. "
            "'batch=4,sequence=128'); default: SessionOptions free-dimension overrides, "
            "the calibration arrays, else compiled per input shape at its first run",
    "cpu_quantization": f"one of {'|'.join(CPU_QUANTIZATION)} (default none): dynamic_int8 "
                        "runs the MatMul/Gemm with constant weights that stay on "
                        "CPUExecutionProvider in ONNX Runtime dynamic INT8",
}


class ProviderOptionError(ValueError):
    """A provider option is unknown or has a bad value."""


def _valid_list() -> str:
    return "; ".join(f"{k}: {v}" for k, v in OPTION_HELP.items())


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(os.environ.get("XDNA_EP_CACHE_DIR") or os.path.join(base, "xdna-ep", "compiled"))


@dataclass(frozen=True)
class ProviderOptions:
    """Validated provider options of one session."""

    device: str = "auto"
    quantization: str = "dynamic"
    calibration: Any = None  # CalibrationDataReader, Path to .npz, or None
    cache_dir: Path = field(default_factory=default_cache_dir)
    report: Path | None = None
    fallback: str = "allow"
    exclude_ops: tuple[str, ...] = ()
    exclude_nodes: tuple[str, ...] = ()
    num_threads: int | None = None
    dims: tuple[tuple[str, int], ...] = ()  # (symbolic dim, size), as given
    cpu_quantization: str = "none"  # the CPU remainder's MatMul/Gemm (cpu_quantize.py)

    def compile_key(self) -> dict[str, Any]:
        """The options that change the compiled model (cache key part). The
        calibration data enters the key by content, see calibration_digest().
        cpu_quantization enters only when set, so the keys of sessions without
        it stay what they always were."""
        key: dict[str, Any] = {
            "quantization": self.quantization,
            "exclude_ops": sorted(self.exclude_ops),
            "exclude_nodes": sorted(self.exclude_nodes),
        }
        if self.cpu_quantization != "none":
            key["cpu_quantization"] = self.cpu_quantization
        return key

    def to_json(self) -> str:
        return json.dumps(self.compile_key(), sort_keys=True)


def _choice(key: str, value: Any, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if not isinstance(value, str) or value.strip().lower() not in choices:
        raise ProviderOptionError(
            f"XDNAExecutionProvider option {key}={value!r} is invalid: expected one of "
            f"{', '.join(choices)}")
    return value.strip().lower()


def _names(key: str, value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, Iterable):
        items = list(value)
    else:
        raise ProviderOptionError(f"XDNAExecutionProvider option {key}={value!r} is invalid: "
                                  "expected a list of names or a comma-separated string")
    if not all(isinstance(v, str) and v for v in items):
        raise ProviderOptionError(f"XDNAExecutionProvider option {key}={value!r} is invalid: "
                                  "every entry must be a non-empty string")
    return tuple(items)


def _calibration(value: Any) -> Any:
    if value is None or value == "":
        return None
    if isinstance(value, (str, os.PathLike)):
        p = Path(value)
        if p.is_dir():
            if not any(p.glob("*.npz")):
                raise ProviderOptionError(f"XDNAExecutionProvider option calibration: "
                                          f"directory {p} holds no .npz files")
            return p
        if p.suffix != ".npz":
            raise ProviderOptionError(f"XDNAExecutionProvider option calibration={value!r} is "
                                      "invalid: a path must name an .npz file (one sample) or "
                                      "a directory of them")
        if not p.is_file():
            raise ProviderOptionError(f"XDNAExecutionProvider option calibration: file not "
                                      f"found: {p}")
        return p
    if callable(getattr(value, "get_next", None)):
        return value
    raise ProviderOptionError(
        f"XDNAExecutionProvider option calibration={value!r} is invalid: expected an "
        "onnxruntime.quantization.CalibrationDataReader (an object with get_next()) or a "
        "path to an .npz file")


def parse_options(raw: Mapping[str, Any] | None) -> ProviderOptions:
    """Validate `raw` (ORT-style string values or Python objects)."""
    raw = dict(raw or {})
    unknown = sorted(set(raw) - set(OPTION_HELP))
    if unknown:
        raise ProviderOptionError(
            f"unknown XDNAExecutionProvider option(s) {unknown}. Valid options: {_valid_list()}")
    kw: dict[str, Any] = {}
    if "device" in raw:
        kw["device"] = _choice("device", raw["device"], DEVICES)
    if "quantization" in raw:
        kw["quantization"] = _choice("quantization", raw["quantization"], QUANTIZATION)
    if "fallback" in raw:
        kw["fallback"] = _choice("fallback", raw["fallback"], FALLBACK)
    if raw.get("cpu_quantization") not in (None, ""):
        kw["cpu_quantization"] = _choice("cpu_quantization", raw["cpu_quantization"],
                                         CPU_QUANTIZATION)
    if "calibration" in raw:
        kw["calibration"] = _calibration(raw["calibration"])
    if kw.get("quantization") == "static" and kw.get("calibration") is None:
        raise ProviderOptionError("XDNAExecutionProvider option quantization=static needs "
                                  "calibration (a CalibrationDataReader or an .npz path)")
    if raw.get("cache_dir") not in (None, ""):
        if not isinstance(raw["cache_dir"], (str, os.PathLike)):
            raise ProviderOptionError(f"XDNAExecutionProvider option cache_dir="
                                      f"{raw['cache_dir']!r} is invalid: expected a path")
        kw["cache_dir"] = Path(raw["cache_dir"]).expanduser()
        if kw["cache_dir"].exists() and not kw["cache_dir"].is_dir():
            raise ProviderOptionError(f"XDNAExecutionProvider option cache_dir="
                                      f"{raw['cache_dir']!r} is not a directory")
    if raw.get("report") not in (None, ""):
        if not isinstance(raw["report"], (str, os.PathLike)):
            raise ProviderOptionError(f"XDNAExecutionProvider option report={raw['report']!r} "
                                      "is invalid: expected a path")
        rp = Path(raw["report"]).expanduser()
        if rp.suffix.lower() not in REPORT_SUFFIXES:
            raise ProviderOptionError(
                f"XDNAExecutionProvider option report={raw['report']!r} is invalid: the file "
                f"suffix must be one of {', '.join(REPORT_SUFFIXES)}")
        kw["report"] = rp
    for key in ("exclude_ops", "exclude_nodes"):
        if key in raw:
            kw[key] = _names(key, raw[key])
    if raw.get("num_threads") not in (None, ""):
        v = raw["num_threads"]
        try:
            n = int(v)
            if isinstance(v, (float, bool)) or n < 1:
                raise ValueError
        except (TypeError, ValueError):
            raise ProviderOptionError(f"XDNAExecutionProvider option num_threads={v!r} is "
                                      "invalid: expected an integer >= 1") from None
        kw["num_threads"] = n
    if "dims" in raw:
        from .dims import parse_dims  # dims.py imports this module

        kw["dims"] = tuple(parse_dims(raw["dims"]).items())
    return ProviderOptions(**kw)


def calibration_digest(opts: ProviderOptions, samples: list[dict[str, Any]] | None) -> str:
    """sha256 of the calibration samples (part of the cache key)."""
    if samples is None:
        return ""
    import numpy as np

    h = hashlib.sha256()
    for sample in samples:
        for name in sorted(sample):
            a = np.ascontiguousarray(sample[name])
            h.update(name.encode() + str(a.dtype).encode() + str(a.shape).encode())
            h.update(a.tobytes())
    return h.hexdigest()


def calibration_files_digest(path: Path, index: DigestIndex | None = None) -> str:
    """sha256 of a calibration path's .npz files (names and bytes, streamed).

    The cache key of a path calibration: a warm start then reads no sample into
    memory (the Whisper decoder's set is ~425 MB), and only a cache miss that
    compiles materialises them (read_calibration). With `index`, the digest is
    remembered with the stamps of the path and of every file: the directory's
    stamp moves when a sample is added, removed or renamed (the glob is flat),
    a file's when it is written."""
    if index is not None:
        return index.digest("calibration", path, _calibration_digest_and_files)
    return _calibration_digest_and_files(path)[0]


def _calibration_digest_and_files(path: Path) -> tuple[str, list[Path]]:
    from ..quantize.calibration import _npz_paths

    h = hashlib.sha256(b"npz-files")
    files = _npz_paths(path)
    for f in files:
        h.update(f.name.encode() + b"\0")
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest(), files


def read_calibration(opts: ProviderOptions) -> list[dict[str, Any]] | None:
    """All calibration samples as a list of {input name: array}: a reader is
    consumed once (the list is hashed for the cache key and replayed to the
    quantizer); a path is one .npz file per sample, or a directory of them
    (the compile stage's convention, xdna_ep.quantize.calibration)."""
    cal = opts.calibration
    if cal is None:
        return None
    if isinstance(cal, Path):
        from ..quantize.calibration import materialize

        return [dict(s) for s in materialize(cal)]
    samples = []
    while True:
        item = cal.get_next()
        if item is None:
            break
        if not isinstance(item, Mapping):
            raise ProviderOptionError("calibration reader get_next() must return a dict of "
                                      f"input name -> array, got {type(item).__name__}")
        samples.append(dict(item))
    if not samples:
        raise ProviderOptionError("calibration reader returned no samples")
    return samples


def first_calibration_sample(opts: ProviderOptions) -> list[dict[str, Any]] | None:
    """The first sample of a path calibration alone (as a one-item list), for its
    input shapes: a session start that hits the cache never reads the rest."""
    if not isinstance(opts.calibration, Path):
        return read_calibration(opts)
    from ..quantize.calibration import materialize

    first = opts.calibration if opts.calibration.is_file() else _first_npz(opts.calibration)
    return [dict(s) for s in materialize(first)]


def _first_npz(folder: Path) -> Path:
    from ..quantize.calibration import _npz_paths

    return _npz_paths(folder)[0]
