"""`xdna-ep calibrate AUDIO...`: static INT8 calibration data from your own recordings."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="build static-INT8 calibration data from audio",
                       description="Runs the FP32 model over the recordings and stores what "
                                   "each model file sees, for provider option 'calibration'.")
    p.add_argument("audio", nargs="+", type=Path)
    p.add_argument("--model", default=None, help="checkpoint or ONNX export (default tiny.en)")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--max-samples", type=int, default=24,
                   help="samples kept per model file (spread over the audio)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .audio import AudioError
    from .calibrate import build_calibration

    try:
        out = build_calibration(args.audio, args.model, args.out, args.max_samples)
    except (FileNotFoundError, AudioError, ValueError) as exc:
        print(f"xdna-ep calibrate: {exc}", file=sys.stderr)
        return 2
    counts = {d.name: len(list(d.glob("*.npz"))) for d in sorted(out.iterdir()) if d.is_dir()}
    print(f"calibration written to {out}: " +
          ", ".join(f"{k} {v} samples" for k, v in counts.items()))
    print(f"use it with provider option calibration={out}/<model file stem>")
    return 0
