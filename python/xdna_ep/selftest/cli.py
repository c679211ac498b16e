"""`xdna-ep selftest [--device npu|emulator] [--json F]`: the table and the JSON file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .runner import DEVICES, SelftestResult


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "selftest", help="every NPU design and kernel on the device against a baseline, "
                         "byte for byte, then one Whisper encoder window")
    p.add_argument("--device", choices=DEVICES, default="npu",
                   help="npu: the NPU against the host emulator (default); emulator: the "
                        "emulator against the kernels' numpy references (no NPU needed)")
    p.add_argument("--json", type=Path, default=None, metavar="F",
                   help="also write the full result as JSON to F (attach it to an issue)")
    p.add_argument("--model", default=None,
                   help="Whisper model for the encoder window (CTranslate2 or ONNX export "
                        "folder, or an encoder_model.onnx; default: bundled tiny.en)")
    p.add_argument("--no-encoder", action="store_true", help="skip the encoder window")
    p.add_argument("--only", nargs="*", default=None, metavar="DESIGN",
                   help="run only these designs/kernels")
    p.add_argument("--seed", type=int, default=0, help="constants and inputs seed")
    p.set_defaults(run=run)
    return p


def table(res: SelftestResult) -> str:
    """The terminal table: one line per case, then the encoder window."""
    ms = "launch ms" if res.device == "npu" else "emulator ms"
    base = "emulator ms" if res.device == "npu" else "reference ms"
    lines = [f"xdna-ep selftest: {res.device} against {res.baseline} (bit-exact expected)",
             f"{'design':15s} {'shape':34s} {'result':6s} {ms:>11s} {base:>12s}  ERT / note"]
    for c in res.cases:
        states = ",".join(sorted({x.state for x in c.launches})) if c.launches else ""
        device_ms = (sum(x.seconds for x in c.launches) if c.launches else c.seconds) * 1e3
        note = c.error if c.status == "error" else (str(c.difference) if c.difference else "")
        lines.append(f"{c.design:15s} {c.shape[:34]:34s} {c.status.upper():6s} "
                     f"{device_ms:11.2f} {c.baseline_seconds * 1e3:12.2f}  "
                     f"{'  '.join(s for s in (states, note) if s)}")
    e = res.encoder
    if e is not None:
        note = e.difference or e.error
        lines.append(f"{'encoder window':15s} {Path(e.model).parent.name[:34]:34s} "
                     f"{e.status.upper():6s} {e.seconds * 1e3:11.1f} "
                     f"{e.baseline_seconds * 1e3:12.1f}  {e.calls} region call(s) compared"
                     + (f"  {note}" if note else ""))
    n_ok = sum(c.status == "pass" for c in res.cases)
    lines.append(f"{n_ok}/{len(res.cases)} cases pass"
                 + ("" if e is None else f", encoder window {e.status}")
                 + f"; {'PASSED' if res.passed else 'FAILED'} in {res.seconds:.1f} s")
    if res.device != "npu":
        lines.append("note: no NPU involved; emulator times are CPU times")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..runtime.errors import DeviceUnavailableError
    from .runner import run_selftest

    try:
        res = run_selftest(args.device, encoder=not args.no_encoder, model=args.model,
                           seed=args.seed, only=args.only)
    except DeviceUnavailableError as exc:
        print(f"xdna-ep selftest --device npu: no usable NPU here ({exc.missing}): {exc}\n"
              "Run `xdna-ep devices` for the full picture, docs/HARDWARE.md for the set-up, "
              "or `xdna-ep selftest --device emulator` to check the emulator alone.",
              file=sys.stderr)
        return 2
    print(table(res))
    if args.json is not None:
        args.json.write_text(json.dumps(res.to_json(), indent=1, sort_keys=True))
        print(f"JSON written to {args.json}")
    return 0 if res.passed else 1
