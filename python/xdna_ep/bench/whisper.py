"""`python -m xdna_ep bench whisper`: engines side by side on the same audio.

Engines (each in its own subprocess so peak RSS is its own):
  onnxruntime-cpu-fp32   the FP32 export on ONNX Runtime's CPU provider
  onnxruntime-cpu-int8   the same export after onnxruntime's quantize_dynamic
  faster-whisper-int8    CTranslate2 int8 on the same checkpoint (if installed)
  xdna-ep-emulator       xdna-ep's INT8 NPU kernels run by the host emulator, the
                         CPU remainder at compute_type "default" (int8: ONNX
                         Runtime dynamic INT8 MatMul/Gemm)
  xdna-ep-emulator-float32  the same with compute_type "float32" (CPU remainder FP32)
Every engine reports the compute type its CPU part ran. All speeds are CPU speeds on this machine. The NPU encoder time printed is a
projection from the cost model, labelled as such, never a measurement.

Start-up as a user meets it: `xdna-ep transcribe --sample` (the README's main job,
a 7 s clip) as a whole process, warm (each device run once first), `--device
emulator` against `--device cpu` (ORT CPU FP32), alternating, median wall time
and peak RSS of each (`--cli-runs`; issue target: emulator within 1.5x of cpu).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ENGINES = ("onnxruntime-cpu-fp32", "onnxruntime-cpu-int8", "faster-whisper-int8",
           "xdna-ep-emulator", "xdna-ep-emulator-float32")
# the xdna-ep engines: compute_type asked of WhisperModel
XDNA_COMPUTE = {"xdna-ep-emulator": "default", "xdna-ep-emulator-float32": "float32"}


@dataclass(frozen=True)
class Settings:
    """Decoding settings every engine runs with (like for like), faster-whisper's names."""

    beam_size: int = 1
    temperature: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    vad_filter: bool = False

    def kwargs(self) -> dict[str, Any]:
        return {"beam_size": self.beam_size, "temperature": self.temperature,
                "vad_filter": self.vad_filter, "language": "en"}

    def argv(self) -> list[str]:
        return ["--beam-size", str(self.beam_size), "--temperature",
                ",".join(str(t) for t in self.temperature)] + (
            ["--vad-filter"] if self.vad_filter else [])


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("whisper", help="Whisper end to end: ORT FP32/INT8, faster-whisper, "
                                       "xdna-ep emulator, same audio, one run")
    p.add_argument("--model", default=None, help="CTranslate2 checkpoint (default: tiny.en)")
    p.add_argument("--engines", default=",".join(ENGINES),
                   help=f"comma-separated subset of {', '.join(ENGINES)}")
    p.add_argument("--beam-size", "--beam_size", dest="beam_size", type=int, default=1,
                   help="beam size for every engine (default 1)")
    p.add_argument("--temperature", default="0,0.2,0.4,0.6,0.8,1.0",
                   help="fallback temperatures for every engine, comma-separated")
    p.add_argument("--vad-filter", "--vad_filter", dest="vad_filter", action="store_true",
                   help="Silero VAD for every engine")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--cli-runs", type=int, default=3,
                   help="warm `xdna-ep transcribe --sample` runs per device for the start-up "
                        "comparison (0: skip)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.set_defaults(run=run)


# -- worker side (one engine, one process) ----------------------------------------------
def _int8_export(onnx_dir: Path, out: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out.mkdir(parents=True, exist_ok=True)
    for f in onnx_dir.iterdir():
        if f.suffix != ".onnx" and f.is_file():
            shutil.copy2(f, out / f.name)
    for name in ("encoder_model", "decoder_model", "decoder_with_past_model"):
        quantize_dynamic(onnx_dir / f"{name}.onnx", out / f"{name}.onnx",
                         weight_type=QuantType.QInt8)
    return out


def _corpus_wer(samples: list[Any], hyps: list[str]) -> float:
    """WER over all clips at once (errors / reference words): a three-word clip
    weighs three words, not as much as a long sentence (the per-clip mean, also
    reported, lets the short "cards" clips dominate)."""
    from ..whisper.wer import word_error_rate

    return word_error_rate(" ".join(s.reference for s in samples), " ".join(hyps))


def _run_onnx_engine(engine: str, model: str | None, samples: list[Any],
                     settings: Settings | None = None) -> dict[str, Any]:
    from ..whisper.api import WhisperModel
    from ..whisper.model import LoadedModel, resolve_onnx_dir
    from ..whisper.timing import TimedBackend
    from ..whisper.wer import word_error_rate

    onnx_dir = resolve_onnx_dir(model)
    extra: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if engine == "onnxruntime-cpu-int8":
            onnx_dir = _int8_export(onnx_dir, Path(tmp) / "int8")
        device = "emulator" if engine in XDNA_COMPUTE else "cpu"
        t_load, c_load = time.perf_counter(), time.process_time()
        # the ORT engines run their export as it is (fp32, or int8 quantized above)
        wm = LoadedModel.load(onnx_dir, device,
                              compute_type=XDNA_COMPUTE.get(engine, "float32"))
        extra["compute_type"] = ("int8" if engine == "onnxruntime-cpu-int8"
                                 else wm.compute_type.name)
        extra["load_s"] = round(time.perf_counter() - t_load, 3)
        extra["load_cpu_s"] = round(time.process_time() - c_load, 3)
        timed = TimedBackend(wm.backend)
        wm.backend = timed
        api_model = WhisperModel.from_loaded(wm)
        kwargs = (settings or Settings()).kwargs()
        wers, hyps, audio_s, wall = [], [], 0.0, 0.0
        c_run = time.process_time()
        for s in samples:
            t0 = time.perf_counter()
            segs, info = api_model.transcribe(str(s.audio), **kwargs)
            text = "".join(seg.text for seg in segs).strip()
            wall += time.perf_counter() - t0
            wers.append(word_error_rate(s.reference, text))
            hyps.append(text)
            audio_s += info.duration
            extra.setdefault("texts", []).append(text)
        extra["cpu_rtf"] = (time.process_time() - c_run) / audio_s if audio_s else 0.0
        if device != "cpu":
            from ..whisper.api import npu_share

            extra["npu_mac_share"], extra["device"] = npu_share(wm)
            plan = getattr(wm.sessions["encoder"], "xdna_plan", None)
            if plan is not None:
                try:
                    from ..cost import projected_npu_time

                    proj = projected_npu_time(plan)
                    # the whole encoder inference: NPU regions at NPU cost + the CPU rest
                    extra["projected_npu_encoder_ms"] = round(1000 * proj.total_s, 2)
                    extra["projected_npu_regions_ms"] = round(1000 * proj.npu_s, 2)
                except ImportError:
                    extra["projected_npu_encoder_ms"] = None
    return {"engine": engine, "rtf": wall / audio_s if audio_s else 0.0,
            "wer": _corpus_wer(samples, hyps), "wer_mean_per_clip": sum(wers) / len(wers),
            "encoder_ms": timed.stats.encoder_ms,
            "decoder_ms_per_token": timed.stats.decoder_ms_per_token, **extra}


def _run_faster_whisper(model: str | None, samples: list[Any],
                        settings: Settings | None = None) -> dict[str, Any]:
    try:
        from faster_whisper import WhisperModel as FwModel
    except ImportError:
        return {"engine": "faster-whisper-int8", "error": "faster-whisper is not installed "
                "(pip install 'xdna-ep[bench]')"}
    from ..whisper.audio import load_audio
    from ..whisper.model import bundled_checkpoint
    from ..whisper.wer import word_error_rate

    ckpt = Path(model) if model else bundled_checkpoint()
    t_load, c_load = time.perf_counter(), time.process_time()
    fw = FwModel(str(ckpt), device="cpu", compute_type="int8", cpu_threads=2)
    load_s = round(time.perf_counter() - t_load, 3)
    load_cpu_s = round(time.process_time() - c_load, 3)
    c_run = time.process_time()
    kwargs = (settings or Settings()).kwargs()
    wers, hyps, audio_s, wall = [], [], 0.0, 0.0
    for s in samples:
        audio = load_audio(s.audio)
        t = time.perf_counter()
        segs, _info = fw.transcribe(audio, **kwargs)
        text = "".join(seg.text for seg in segs)
        wall += time.perf_counter() - t
        audio_s += len(audio) / 16000
        wers.append(word_error_rate(s.reference, text))
        hyps.append(text)
    return {"engine": "faster-whisper-int8", "rtf": wall / audio_s,
            "wer": _corpus_wer(samples, hyps), "wer_mean_per_clip": sum(wers) / len(wers),
            "encoder_ms": None, "decoder_ms_per_token": None, "load_s": load_s,
            "compute_type": "int8",
            "load_cpu_s": load_cpu_s,
            "cpu_rtf": (time.process_time() - c_run) / audio_s if audio_s else 0.0}


def _worker(engine: str, model: str | None, settings: Settings) -> dict[str, Any]:
    from ..whisper.samples import list_samples

    samples = list_samples()
    if engine == "faster-whisper-int8":
        out = _run_faster_whisper(model, samples, settings)
    else:
        out = _run_onnx_engine(engine, model, samples, settings)
    out["settings"] = asdict(settings)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


# -- parent side ----------------------------------------------------------------------------
def _fmt(value: float | None, places: int = 1) -> str:
    return "-" if value is None else f"{value:.{places}f}"


def _spawn(engine: str, model: str | None, settings: Settings) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "xdna_ep", "bench", "whisper", "--worker", engine,
           *settings.argv()]
    if model:
        cmd += ["--model", model]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"engine": engine, "error": proc.stderr.strip().splitlines()[-1:] or
                ["failed"]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# the CLI in a child that reports its own peak RSS on its last stderr line
_CLI_CHILD = ("import resource, sys\n"
              "from xdna_ep.cli import main\n"
              "rc = main(sys.argv[1:])\n"
              "print('peak_rss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
              "file=sys.stderr)\n"
              "sys.exit(rc)\n")


def _cli_once(device: str, model: str | None) -> tuple[float, float]:
    """(wall s, peak RSS MB) of one `xdna-ep transcribe --sample --device DEVICE`."""
    cmd = [sys.executable, "-c", _CLI_CHILD, "transcribe", "--sample", "--device", device]
    if model:
        cmd += ["--model", model]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"xdna-ep transcribe --device {device} failed: "
                           f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    last = proc.stderr.strip().splitlines()[-1].split()
    return wall, int(last[1]) / 1024


def cli_startup(model: str | None, runs: int) -> dict[str, Any]:
    """Warm CLI runs of both devices, alternating; medians and the ratios."""
    import statistics

    for device in ("cpu", "emulator"):  # warm: model export, compiled-model cache, page cache
        _cli_once(device, model)
    walls: dict[str, list[float]] = {"cpu": [], "emulator": []}
    rss: dict[str, list[float]] = {"cpu": [], "emulator": []}
    for _ in range(runs):
        for device in ("cpu", "emulator"):
            w, r = _cli_once(device, model)
            walls[device].append(w)
            rss[device].append(r)
    med = {d: statistics.median(v) for d, v in walls.items()}
    peak = {d: max(v) for d, v in rss.items()}
    return {"runs": runs, "wall_s": med, "peak_rss_mb": peak,
            "wall_ratio_emulator_vs_cpu": med["emulator"] / med["cpu"],
            "peak_rss_ratio_emulator_vs_cpu": peak["emulator"] / peak["cpu"]}


def run(args: argparse.Namespace) -> int:
    try:
        temps = tuple(float(t) for t in args.temperature.split(",") if t.strip())
    except ValueError:
        print(f"--temperature: not a list of numbers: {args.temperature!r}", file=sys.stderr)
        return 2
    settings = Settings(args.beam_size, temps, args.vad_filter)
    if args.worker:
        print(json.dumps(_worker(args.worker, args.model, settings)))
        return 0
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        print(f"unknown engines: {sorted(unknown)} (valid: {', '.join(ENGINES)})",
              file=sys.stderr)
        return 2
    runs = [_spawn(e, args.model, settings) for e in engines]
    by = {r["engine"]: r for r in runs}
    fp32, xdna = by.get("onnxruntime-cpu-fp32", {}), by.get("xdna-ep-emulator", {})
    summary: dict[str, Any] = {}
    if fp32.get("rtf") and xdna.get("rtf"):
        summary["speed_ratio_xdna_vs_ort_fp32"] = fp32["rtf"] / xdna["rtf"]
        summary["wer_delta_xdna_vs_ort_fp32"] = xdna["wer"] - fp32["wer"]
    int8 = by.get("onnxruntime-cpu-int8", {})
    if int8.get("rtf") and xdna.get("rtf"):  # like for like: both CPU parts in INT8
        summary["speed_ratio_xdna_vs_ort_int8"] = int8["rtf"] / xdna["rtf"]
        summary["wer_delta_xdna_vs_ort_int8"] = xdna["wer"] - int8["wer"]
    if fp32.get("load_s") and xdna.get("load_s"):
        summary["load_ratio_xdna_vs_ort_fp32"] = xdna["load_s"] / fp32["load_s"]
    if fp32.get("load_cpu_s") and xdna.get("load_cpu_s"):  # fair when the machine is shared
        summary["load_cpu_ratio_xdna_vs_ort_fp32"] = xdna["load_cpu_s"] / fp32["load_cpu_s"]
    if fp32.get("peak_rss_mb") and xdna.get("peak_rss_mb"):
        summary["peak_rss_ratio_xdna_vs_ort_fp32"] = xdna["peak_rss_mb"] / fp32["peak_rss_mb"]
    cli: dict[str, Any] | None = None
    if args.cli_runs > 0 and "xdna-ep-emulator" in engines:
        try:
            cli = cli_startup(args.model, args.cli_runs)
        except RuntimeError as exc:
            cli = {"error": str(exc)}
        else:
            summary["cli_wall_ratio_emulator_vs_cpu"] = cli["wall_ratio_emulator_vs_cpu"]
            summary["cli_peak_rss_ratio_emulator_vs_cpu"] = cli["peak_rss_ratio_emulator_vs_cpu"]
    doc = {"runs": runs, "summary": summary, "settings": asdict(settings), "cli_startup": cli,
           "note": "CPU timings on this machine; projected_npu_encoder_ms is a cost-model "
                   "projection, not a measurement"}
    if args.json:
        print(json.dumps(doc, indent=1))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Whisper end to end (same audio and settings: beam "
                        f"{settings.beam_size}, temperatures {settings.temperature}, VAD "
                        f"{'on' if settings.vad_filter else 'off'}; CPU speeds)")
    for col in ("engine", "CPU compute", "load s", "load CPU-s", "RTF", "CPU RTF", "WER",
                "encoder ms/window", "decoder ms/token", "peak RSS MB"):
        table.add_column(col)
    for r in runs:
        if "error" in r:
            table.add_row(r["engine"], f"[red]{r['error']}[/red]", *[""] * 8)
            continue
        table.add_row(r["engine"], r.get("compute_type", "-"),
                      _fmt(r.get("load_s"), 2), _fmt(r.get("load_cpu_s"), 2),
                      _fmt(r["rtf"], 3), _fmt(r.get("cpu_rtf"), 3),
                      f"{100 * r['wer']:.1f}%",
                      _fmt(r["encoder_ms"]), _fmt(r["decoder_ms_per_token"], 2),
                      _fmt(r["peak_rss_mb"], 0))
    console = Console()
    console.print(table)
    if cli is not None and "error" not in cli:
        console.print(f"warm `xdna-ep transcribe --sample` (7 s clip), median of {cli['runs']}: "
                      f"emulator {cli['wall_s']['emulator']:.2f} s / "
                      f"{cli['peak_rss_mb']['emulator']:.0f} MB, cpu "
                      f"{cli['wall_s']['cpu']:.2f} s / {cli['peak_rss_mb']['cpu']:.0f} MB "
                      "(target: within 1.5x wall, 1.3x RSS)")
    elif cli is not None:
        console.print(f"[red]CLI start-up comparison failed: {cli['error']}[/red]")
    for k, v in summary.items():
        console.print(f"{k}: {v:.3f}")
    if xdna.get("projected_npu_encoder_ms") is not None:
        console.print(f"projected NPU encoder time per window (cost model, not measured): "
                      f"{xdna['projected_npu_encoder_ms']} ms")
    return 0
