"""`xdna-ep` / `python -m xdna_ep`: one entry, one sub-command per job.

Each sub-command lives in its own module and registers itself through
``add_parser(subparsers)``; imports are lazy so `xdna-ep devices` never loads
the Whisper stack. When argv names a sub-command, only that module is imported
(`xdna-ep transcribe` does not pay for bench, report, selftest, compile and
their onnx, rich and jinja2 imports); the top-level help lists them all.
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


def command_of(argv: list[str]) -> str | None:
    """The sub-command argv names, None when there is none (help, --version, typo).

    The top-level parser's options (-h, --version) take no value, so a
    sub-command comes first; anything else (`xdna-ep -h transcribe`) gets the
    full parser.
    """
    return argv[0] if argv and argv[0] in COMMANDS else None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `xdna-ep` parser: every sub-command, or only `command`'s (its module alone imported)."""
    parser = argparse.ArgumentParser(
        prog="xdna-ep",
        description="ONNX Runtime execution provider for AMD XDNA NPUs (Whisper first).",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"xdna-ep {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    names = [command] if command in COMMANDS else list(COMMANDS)
    for name in names:
        importlib.import_module(COMMANDS[name]).add_parser(sub)
    parser.set_defaults(_subparsers=sub.choices)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(command_of(argv))
    args, extra = parser.parse_known_args(argv)
    if extra:  # the sub-command's own usage names the options it takes
        args._subparsers[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
