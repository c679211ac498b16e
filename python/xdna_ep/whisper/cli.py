"""`xdna-ep transcribe`: audio files in, text (and subtitles) out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .audio import AudioError
from .formats import FORMATS, Transcript, render
from .model import DEVICES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("transcribe", help="transcribe audio files with Whisper",
                       description="Transcribe audio (wav/flac/ogg/mp3, any rate and channel "
                                   "count) with Whisper; the NPU path does the heavy work.")
    p.add_argument("files", nargs="*", type=Path, help="audio files")
    p.add_argument("--sample", action="store_true",
                   help="transcribe the bundled real speech sample")
    p.add_argument("--model", default=None,
                   help="CTranslate2 Whisper folder or Optimum ONNX export folder "
                        "(default: bundled tiny.en)")
    p.add_argument("--device", default="auto", choices=DEVICES,
                   help="auto|npu|emulator: xdna-ep; cpu: FP32 on ONNX Runtime's CPU provider")
    p.add_argument("--format", default="txt", choices=(*FORMATS, "all"))
    p.add_argument("--output-dir", default=None,
                   help="write <name>.<format> files here; '-' prints to stdout")
    p.add_argument("--language", default=None, help="language code (multilingual models)")
    p.add_argument("--beam-size", type=int, default=1)
    p.add_argument("--quantization", default=None, choices=("static", "dynamic"),
                   help="INT8 activation scales (default: static with the bundled calibration)")
    p.add_argument("--report", default=None, type=Path,
                   help="write the partitioning report (.json/.html/.txt)")
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    p.set_defaults(run=run)


def _outputs(t: Transcript, src: Path, fmt: str, out_dir: str | None) -> None:
    formats = FORMATS if fmt == "all" else (fmt,)
    if out_dir is None:
        if fmt == "txt":
            for seg in t.segments:
                print(f"[{seg.start:7.2f} -> {seg.end:7.2f}] {seg.text.strip()}")
            return
        out_dir = "-"
    for f in formats:
        text = render(t, f)
        if out_dir == "-":
            sys.stdout.write(text)
        else:
            d = Path(out_dir)
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{src.stem}.{f}").write_text(text, encoding="utf-8")


def run(args: argparse.Namespace) -> int:
    from .api import transcribe
    from .model import WhisperModel

    files: list[Path] = list(args.files)
    if args.sample:
        from .samples import bundled_sample

        files.append(bundled_sample().audio)
    if not files:
        print("xdna-ep transcribe: give audio files or --sample", file=sys.stderr)
        return 2
    if args.beam_size < 1:
        print("xdna-ep transcribe: --beam-size must be >= 1", file=sys.stderr)
        return 2
    opts: dict[str, object] = {}
    if args.quantization:
        opts["quantization"] = args.quantization
    if args.report:
        opts["report"] = str(args.report)
    try:
        model = WhisperModel.load(args.model, args.device, opts if args.device != "cpu" else None)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"xdna-ep transcribe: {exc}", file=sys.stderr)
        return 2
    failed = 0
    for src in files:
        try:
            t = transcribe(src, model, language=args.language, beam_size=args.beam_size,
                           progress=False if args.no_progress else None)
        except (FileNotFoundError, AudioError, ValueError) as exc:
            print(f"xdna-ep transcribe: {exc}", file=sys.stderr)
            failed += 1
            continue
        _outputs(t, src, args.format, args.output_dir)
        share = f"{t.npu_mac_share:.1%} of MACs on the NPU path" if t.device != "cpu" else \
            "CPU FP32 reference path"
        print(f"{src.name}: audio {t.duration:.1f} s, wall {t.wall_time:.1f} s, "
              f"RTF {t.rtf:.3f}, device {t.device}, {share}", file=sys.stderr)
    return 1 if failed else 0
