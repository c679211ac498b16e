"""`xdna-ep` / `python -m xdna_ep`: one entry, one sub-command per job.

Each sub-command lives in its own module and registers itself through
``add_parser(subparsers)``; imports are lazy so `xdna-ep devices` never loads
the Whisper stack.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# sub-command -> module that defines add_parser(subparsers) and run(args) -> int
COMMANDS: dict[str, str] = {
    "bench": "xdna_ep.bench.cli",
    "devices": "xdna_ep.runtime.cli",
    "report": "xdna_ep.report.cli",
    "transcribe": "xdna_ep.whisper.cli",
    "calibrate": "xdna_ep.whisper.calibrate_cli",
    "selftest": "xdna_ep.selftest.cli",
    "compile": "xdna_ep.ort.compile_cli",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xdna-ep",
        description="ONNX Runtime execution provider for AMD XDNA NPUs (Whisper first).",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"xdna-ep {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMANDS.values():
        importlib.import_module(module_name).add_parser(sub)
    parser.set_defaults(_subparsers=sub.choices)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # the sub-command's own usage names the options it takes
        args._subparsers[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
