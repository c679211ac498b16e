"""`python -m xdna_ep bench accuracy`: INT8 encoder vs FP32 on real speech.

What it measures (tiny.en encoder by default, the bundled real speech clips):
- a split: calibration clips and held-out clips (never both), so the figures
  describe speech the scales were not fitted to;
- per held-out 30 s window (each clip alone, plus one window filled with
  several held-out clips back to back): cosine and SQNR of the partitioned
  INT8 encoder's `last_hidden_state` against the FP32 encoder;
- per region: SQNR of its outputs inside the partitioned run (errors of the
  regions before it included), against the FP32 model;
- per quantized tensor: the SQNR of quantizing its FP32 values with the
  program's scale (rounding + clipping), worst first: where the error enters;
- the configurations: dynamic with no calibration data at all (the provider's
  default), static with each onnxruntime calibrator (calibration data from the
  calibration clips), and both without the MLP outlier split;
- greedy transcripts with the FP32 decoder fed by the FP32 encoder and by the
  INT8 encoder: WER of each against the published reference, and whether the
  two transcripts are identical.

The INT8 encoder runs the way users run it: an ONNX Runtime session with
XDNAExecutionProvider (xdna_ep.ort: provider core + adapter), device=emulator,
fallback=error, a fresh compiled-model cache per measurement. The default
configuration is exactly the provider's default compile; the other
configurations differ only by their CompileOptions fields (`compile_overrides`
of the provider core, since no provider option names them). The provider's
region observer records each region's outputs inside the session's run.
All figures are host-emulator figures; the emulator computes the same integer
arithmetic as the NPU kernels.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

SAMPLE_RATE = 16000
WINDOW_SECONDS = 30.0
GAP_SECONDS = 0.3  # silence between clips joined into one window


@dataclass(frozen=True)
class Clip:
    """One real speech recording with its published transcript."""

    name: str
    audio: np.ndarray  # float32 mono 16 kHz
    reference: str


@dataclass(frozen=True)
class Window:
    """One 30 s encoder window: its features and the clip(s) it holds."""

    name: str
    features: np.ndarray  # [1, n_mels, 3000] float32
    audio: np.ndarray
    reference: str


@dataclass(frozen=True)
class Config:
    """One quantization configuration to measure."""

    name: str
    quantization: str = "static"
    calibrate_method: str = "percentile"
    percentile: float = 99.999
    extra: dict[str, Any] = field(default_factory=dict)  # further CompileOptions fields
    calibrated: bool = True  # False: the session gets no calibration data at all

    def compile_overrides(self) -> dict[str, Any]:
        """The CompileOptions fields this configuration sets away from the
        provider's defaults (none for the default configuration)."""
        from ..compile import CompileOptions

        default = CompileOptions()
        chosen = {"calibrate_method": self.calibrate_method, "percentile": self.percentile,
                  **self.extra}
        return {k: v for k, v in chosen.items() if getattr(default, k) != v}


CONFIGS: dict[str, Config] = {
    # the provider's default: quantization="dynamic" and no calibration data at all
    # (outlier channels from the weights, passes/split_outliers.py)
    "dynamic": Config("dynamic", quantization="dynamic", calibrated=False),
    "static-percentile": Config("static-percentile"),
    "static-minmax": Config("static-minmax", calibrate_method="minmax"),
    "static-entropy": Config("static-entropy", calibrate_method="entropy"),
    # the same without the MLP outlier split (passes/split_outliers.py): the "before" figures
    "dynamic-nosplit": Config("dynamic-nosplit", quantization="dynamic", calibrated=False,
                              extra={"split_outliers": False}),
    "static-percentile-nosplit": Config("static-percentile-nosplit",
                                        extra={"split_outliers": False}),
}


# -- data ---------------------------------------------------------------------------------
def load_clips() -> list[Clip]:
    """The bundled speech clips (python/xdna_ep/data), sorted by file name."""
    from ..whisper.audio import load_audio
    from ..whisper.samples import list_samples

    clips = [Clip(s.audio.stem, np.asarray(load_audio(s.audio), np.float32), s.reference)
             for s in list_samples()]
    if len(clips) < 2:
        raise FileNotFoundError("bench accuracy needs at least 2 bundled speech clips "
                                "(python/xdna_ep/data)")
    return clips


def split_clips(clips: Sequence[Clip]) -> tuple[list[Clip], list[Clip]]:
    """(calibration, held-out): alternate clips, so both halves hold both speakers/sets."""
    return list(clips[0::2]), list(clips[1::2])


def _features(audio: np.ndarray) -> np.ndarray:
    from ..whisper.features import log_mel_spectrogram

    n = int(WINDOW_SECONDS * SAMPLE_RATE)
    return np.ascontiguousarray(log_mel_spectrogram(audio[:n])[None], dtype=np.float32)


def clip_window(clip: Clip) -> Window:
    return Window(clip.name, _features(clip.audio), clip.audio, clip.reference)


def joined_window(clips: Sequence[Clip], name: str,
                  seconds: float = WINDOW_SECONDS - 1.0) -> Window:
    """The clips back to back (short silences between), cycled until `seconds` is
    filled with speech: a full window like those of long-form transcription."""
    if not clips:
        raise ValueError("joined_window needs at least one clip")
    gap = np.zeros(int(GAP_SECONDS * SAMPLE_RATE), np.float32)
    parts: list[np.ndarray] = []
    refs: list[str] = []
    total, i = 0, 0
    limit = int(seconds * SAMPLE_RATE)
    while True:
        c = clips[i % len(clips)]
        if total + len(c.audio) > limit and parts:
            break
        parts += [c.audio, gap]
        refs.append(c.reference)
        total += len(c.audio) + len(gap)
        i += 1
    audio = np.concatenate(parts).astype(np.float32)
    return Window(name, _features(audio), audio, " ".join(refs))


def windows_for(clips: Sequence[Clip], joined_name: str) -> list[Window]:
    return [clip_window(c) for c in clips] + [joined_window(clips, joined_name)]


# -- the partitioned model -----------------------------------------------------------------
def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    den = float(np.linalg.norm(a64) * np.linalg.norm(b64))
    return float(np.dot(a64, b64) / den) if den > 0 else float("nan")


@dataclass
class EncoderRun:
    """The INT8 encoder as users run it (ONNX Runtime session, XDNAExecutionProvider
    on the emulator) and what its provider saw: the programs by region id, and each
    region's outputs of the last call (per-region error without a second run)."""

    session: Any
    model: onnx.ModelProto  # the model as the provider loaded it (node names of the plan)
    programs: dict[int, Any]
    region_outputs: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)

    @property
    def plan(self) -> Any:
        return self.session.xdna_plan

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """last_hidden_state for one window."""
        self.region_outputs.clear()
        return self.session.run(None, feed)[0]


class _Feeds:
    """A CalibrationDataReader over a list of feeds (provider option calibration)."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]]) -> None:
        self._it = iter(list(feeds))

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def encoder_session(path: Path, config: Config, calibration: Sequence[dict[str, np.ndarray]],
                    cache_dir: str | Path) -> EncoderRun:
    """An XDNA session of the encoder at `path` compiled with `config`."""
    from .. import EP_NAME
    from ..ort import InferenceSession
    from ..ort.provider import XDNAProvider, load_model

    outputs: dict[int, dict[str, np.ndarray]] = {}
    providers: list[XDNAProvider] = []

    def observe(region: int, program: Any, out: Any) -> None:
        outputs[region] = {k: np.asarray(v) for k, v in out.items()}

    class MeasuredSession(InferenceSession):  # type: ignore[misc, valid-type]
        def _xdna_provider(self, options: Any) -> XDNAProvider:
            providers.append(XDNAProvider(options, config.compile_overrides(), observe))
            return providers[-1]

    opts: dict[str, Any] = {"device": "emulator", "quantization": config.quantization,
                            "cache_dir": str(cache_dir), "fallback": "error"}
    if config.calibrated:
        opts["calibration"] = _Feeds(calibration)
    # onnxruntime's calibrators print progress on stdout: keep it free for --json
    with contextlib.redirect_stdout(sys.stderr):
        sess = MeasuredSession(str(path), providers=[EP_NAME, "CPUExecutionProvider"],
                               provider_options=[opts, {}])
    return EncoderRun(sess, load_model(path), dict(providers[-1].region_programs), outputs)


# -- per-tensor quantization error ---------------------------------------------------------
def _taps(model: onnx.ModelProto, plan: Any, programs: dict[int, Any]) -> dict[str, Any]:
    from ..compile.lower import lower_region
    from ..compile.model_index import ModelIndex
    from ..kernel_specs.matmul import SUPPORTS_SPLIT
    from ..passes.split_outliers import find_mlp_chains, split_chain

    idx = ModelIndex(model)
    taps: dict[str, Any] = {}
    for r in plan.regions:
        if r.id in programs:
            fused = bool(programs[r.id].meta.get("fused_qkv", SUPPORTS_SPLIT))
            lr = lower_region(idx, r, fused)
            split = programs[r.id].meta.get("outlier_channels", {})
            for ch in sorted(find_mlp_chains(lr), key=lambda c: -c.fc2):
                h = lr.ops[ch.fc1].outputs[0]
                if h in split:  # the compile split this chain: same taps as it used
                    split_chain(lr, ch, split[h], fused)
            taps.update(lr.taps)
    return taps


def tensor_errors(model: onnx.ModelProto, plan: Any, programs: dict[int, Any],
                  feeds: Sequence[dict[str, np.ndarray]]) -> list[dict[str, Any]]:
    """Quantization SQNR of every static int8 tensor on `feeds`, worst first.

    The tensor's FP32 values (observed on the FP32 model through the same taps the
    calibrator used) are quantized with the program's scale exactly like the
    quantize kernel (sat127(rint(x * (1/scale)))), after subtracting the offset of
    a centred GELU output (compile/build.py); `clipped` is the share of values
    beyond the int8 range.
    """
    import onnxruntime as ort

    from ..compile.observe import sqnr_db
    from ..quantize.calibration import TAP_SUFFIX, tap_model

    scales: dict[str, tuple[int, float]] = {}
    offsets: dict[str, float] = {}
    for rid, p in programs.items():
        for t, s in p.meta.get("scales", {}).items():
            scales[t] = (rid, float(s))
        offsets.update({t: float(o) for t, o in p.meta.get("offsets", {}).items()})
    if not scales:
        return []
    taps = _taps(model, plan, programs)
    taps = {t: taps[t] for t in scales if t in taps}
    tm = tap_model(model, taps)
    with tempfile.TemporaryDirectory(prefix="xdna_acc_") as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save_model(tm, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location="model.data", size_threshold=1 << 20)
        so = ort.SessionOptions()
        so.log_severity_level = 3
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        names = [t + TAP_SUFFIX for t in taps]
        values = [dict(zip(taps, sess.run(names, dict(f)), strict=True)) for f in feeds]
        del sess
    rows = []
    for t, (rid, s) in scales.items():
        if t not in taps:
            continue
        ref = [v[t] for v in values]
        inv = np.float32(1.0) / np.float32(s)
        off = np.float32(offsets.get(t, 0.0))
        q = [np.clip(np.rint((x - off) * inv), -127, 127) * np.float32(s) + off for x in ref]
        clipped = sum(int(np.sum(np.abs((x - off) * inv) > 127.5)) for x in ref)
        total = sum(x.size for x in ref)
        lo = min(float(x.min()) for x in ref)
        hi = max(float(x.max()) for x in ref)
        rows.append({"tensor": t, "region": rid, "scale": s, "offset": float(off),
                     "min": lo, "max": hi,
                     "sqnr_db": round(sqnr_db(ref, q), 2),
                     "clipped": clipped / max(total, 1)})
    rows.sort(key=lambda r: r["sqnr_db"])
    return rows


# -- transcripts ---------------------------------------------------------------------------
@dataclass
class Transcriber:
    """FP32 Whisper (CPU) whose encoder can be swapped for a partitioned INT8 one."""

    wm: Any
    fp32_encoder: Any

    @classmethod
    def load(cls) -> Transcriber:
        from ..whisper.model import LoadedModel

        wm = LoadedModel.load(None, "cpu")
        return cls(wm, wm.backend.encoder)

    def transcribe(self, audio: np.ndarray, encoder: Any | None = None) -> str:
        import soundfile as sf

        from ..whisper.decoding import DecodingOptions
        from ..whisper.longform import TranscribeOptions, transcribe_file

        self.wm.backend.encoder = encoder if encoder is not None else self.fp32_encoder
        try:
            with tempfile.TemporaryDirectory(prefix="xdna_acc_") as tmp:
                path = Path(tmp) / "window.wav"
                sf.write(path, audio, SAMPLE_RATE, subtype="FLOAT")
                opts = TranscribeOptions(DecodingOptions(temperatures=(0.0,)), progress=False)
                return transcribe_file(path, self.wm.backend, self.wm.tokenizer, opts).text.strip()
        finally:
            self.wm.backend.encoder = self.fp32_encoder


# -- the measurement -----------------------------------------------------------------------
def fp32_outputs(model_path: Path, windows: Sequence[Window]) -> list[np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return [sess.run(None, {name: w.features})[0] for w in windows]


def measure_config(model_path: Path, config: Config, cal: Sequence[Window],
                   held: Sequence[Window], fp32: Sequence[np.ndarray],
                   transcriber: Transcriber | None, fp32_text: Sequence[str] | None,
                   top_tensors: int = 12) -> dict[str, Any]:
    """All figures of one configuration on the held-out windows."""
    from ..compile.observe import observe, sqnr_db
    from ..cost import projected_npu_time
    from ..whisper.wer import normalize, word_error_rate

    calib = [{"input_features": w.features} for w in cal]
    with tempfile.TemporaryDirectory(prefix="xdna_acc_cache_") as cache_dir:
        enc = encoder_session(model_path, config, calib, cache_dir)
    compile_s = enc.session.xdna_start.seconds
    plan, programs, m = enc.plan, enc.programs, enc.model
    feeds = [{"input_features": w.features} for w in held]
    region_names = {rid: [t.name for t in p.outputs] for rid, p in programs.items()}
    ref_regions = observe(m, [t for ts in region_names.values() for t in ts], feeds)
    outs, per_region = [], {rid: ([], []) for rid in programs}
    for f, rr in zip(feeds, ref_regions, strict=True):
        outs.append(enc.run(f))
        for rid, names in region_names.items():
            for t in names:
                per_region[rid][0].append(rr[t])
                per_region[rid][1].append(enc.region_outputs[rid][t])
    windows = []
    for i, (w, r, o) in enumerate(zip(held, fp32, outs, strict=True)):
        row: dict[str, Any] = {"window": w.name, "cosine": round(cosine(r, o), 5),
                               "sqnr_db": round(sqnr_db([r], [o]), 2)}
        if transcriber is not None and fp32_text is not None:
            text = transcriber.transcribe(w.audio, enc.session)
            row.update(int8_text=text, fp32_text=fp32_text[i],
                       identical=text == fp32_text[i],
                       same_words=normalize(text) == normalize(fp32_text[i]),
                       wer_fp32=round(word_error_rate(w.reference, fp32_text[i]), 4),
                       wer_int8=round(word_error_rate(w.reference, text), 4))
        windows.append(row)
    tensors = (tensor_errors(m, plan, programs, feeds) if config.quantization == "static"
               else [])
    npu_regions = [r for r in plan.regions if r.placement == "npu"]
    proj = projected_npu_time(plan)
    return {
        "config": asdict(config),
        "compile_seconds": round(compile_s, 2),
        "npu_mac_share": round(plan.npu_mac_share, 4),
        "launches": sum(r.launches for r in npu_regions),
        "projected_npu_ms": round(proj.npu_s * 1e3, 3),  # cost model, not a measurement
        "fallbacks": list(plan.fallbacks),
        "windows": windows,
        "cosine_min": min(w["cosine"] for w in windows),
        "cosine_mean": round(float(np.mean([w["cosine"] for w in windows])), 5),
        "sqnr_db": round(sqnr_db(list(fp32), outs), 2),
        "identical": (all(w["identical"] for w in windows) if transcriber is not None
                      else None),
        "regions": {str(rid): round(sqnr_db(*per_region[rid]), 2) for rid in programs},
        "executors": {str(rid): {k: f"{enc.session.xdna_start.device}-device"
                                 for k in sorted({st.kernel for st in p.stages()})}
                      for rid, p in programs.items()},
        "worst_tensors": tensors[:top_tensors],
    }


def measure(config_names: Sequence[str] | None = None, transcripts: bool = True,
            top_tensors: int = 12, configs: Sequence[Config] | None = None) -> dict[str, Any]:
    """The full report (see the module docstring) for the chosen configurations."""
    from ..models import ensure_onnx_model

    chosen = list(configs or [])
    for n in config_names or ([] if configs else list(CONFIGS)):
        if n not in CONFIGS:
            raise ValueError(f"unknown configuration {n!r} (valid: {', '.join(CONFIGS)})")
        chosen.append(CONFIGS[n])
    onnx_dir = Path(ensure_onnx_model())
    path = onnx_dir / "encoder_model.onnx"
    cal_clips, held_clips = split_clips(load_clips())
    cal = windows_for(cal_clips, "calibration-joined")
    held = windows_for(held_clips, "heldout-joined")
    fp32 = fp32_outputs(path, held)
    transcriber = Transcriber.load() if transcripts else None
    fp32_text = ([transcriber.transcribe(w.audio) for w in held] if transcriber else None)
    report: dict[str, Any] = {
        "model": str(path),
        "executor": ("ONNX Runtime session with XDNAExecutionProvider, device=emulator (the "
                     "integer arithmetic of the NPU kernels); not an NPU run"),
        "calibration_clips": [c.name for c in cal_clips] + ["calibration-joined"],
        "heldout_windows": [w.name for w in held],
        "configs": [],
    }
    if transcriber is not None and fp32_text is not None:
        from ..whisper.wer import word_error_rate

        report["fp32"] = [{"window": w.name, "text": t,
                           "wer": round(word_error_rate(w.reference, t), 4)}
                          for w, t in zip(held, fp32_text, strict=True)]
    for c in chosen:
        report["configs"].append(measure_config(path, c, cal, held, fp32, transcriber,
                                                fp32_text, top_tensors))
    return report


# -- CLI -----------------------------------------------------------------------------------
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("accuracy", help="INT8 encoder vs FP32 on held-out real speech: cosine, "
                                        "SQNR, per-tensor error, transcripts")
    p.add_argument("--configs", default=",".join(CONFIGS),
                   help=f"comma-separated subset of {', '.join(CONFIGS)}")
    p.add_argument("--no-transcripts", action="store_true", help="skip the greedy transcripts")
    p.add_argument("--top", type=int, default=12, help="worst tensors listed per configuration")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--markdown", action="store_true",
                   help="print the summary table (docs/ACCURACY.md)")
    p.set_defaults(run=run)


def _print(report: dict[str, Any]) -> None:
    print(f"model: {report['model']}")
    print(f"({report['executor']})")
    print(f"calibration: {', '.join(report['calibration_clips'])}")
    for f in report.get("fp32", []):
        print(f"  fp32  {f['window']:<44} WER {f['wer']:.3f}  {f['text']!r}")
    for c in report["configs"]:
        cfg = c["config"]
        print(f"\n== {cfg['name']}: cosine min {c['cosine_min']:.4f} mean {c['cosine_mean']:.4f}"
              f", SQNR {c['sqnr_db']:.2f} dB, transcripts identical: {c['identical']}"
              f", regions SQNR {c['regions']}, NPU MAC share {c['npu_mac_share']:.4f}")
        for w in c["windows"]:
            extra = (f"  WER {w['wer_int8']:.3f} (fp32 {w['wer_fp32']:.3f})"
                     f"{'' if w['identical'] else '  DIFFERS: ' + repr(w['int8_text'])}"
                     if "identical" in w else "")
            print(f"  {w['window']:<44} cos {w['cosine']:.4f}  {w['sqnr_db']:6.2f} dB{extra}")
        for t in c["worst_tensors"]:
            off = f" offset {t['offset']:.3g}" if t.get("offset") else ""
            print(f"    {t['sqnr_db']:6.2f} dB  clip {t['clipped']:.1e}  "
                  f"[{t['min']:.3g}, {t['max']:.3g}]  scale {t['scale']:.3g}{off}  {t['tensor']}")


def markdown_table(report: dict[str, Any]) -> str:
    """The summary table of docs/ACCURACY.md, one row per configuration."""
    joined = report["heldout_windows"][-1]
    ncal = len(report["calibration_clips"])
    rows = ["| configuration | calibration | cosine min | cosine mean | SQNR (dB) "
            "| region SQNR (dB) "
            f"| WER INT8 / FP32 ({joined}) | transcripts identical (exact / words) "
            "| launches | projected NPU ms |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for c in report["configs"]:
        w = next(x for x in c["windows"] if x["window"] == joined)
        same = sum(1 for x in c["windows"] if x.get("identical"))
        words = sum(1 for x in c["windows"] if x.get("same_words", x.get("identical")))
        wer = (f"{w['wer_int8']:.3f} / {w['wer_fp32']:.3f}" if "wer_int8" in w else "-")
        regions = ", ".join(f"{k}: {v:.1f}" for k, v in c["regions"].items())
        cal = f"{ncal} windows" if c["config"].get("calibrated", True) else "none"
        rows.append(f"| {c['config']['name']} | {cal} | {c['cosine_min']:.4f} "
                    f"| {c['cosine_mean']:.4f} "
                    f"| {c['sqnr_db']:.2f} | {regions} | {wer} "
                    f"| {same}/{len(c['windows'])} / {words}/{len(c['windows'])} "
                    f"| {c['launches']} | {c['projected_npu_ms']:.2f} |")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    try:
        report = measure(names, not args.no_transcripts, args.top)
    except ValueError as e:
        print(f"bench accuracy: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=1))
    elif args.markdown:
        print(markdown_table(report))
    else:
        _print(report)
    return 0
