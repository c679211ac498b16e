"""`xdna-ep bench <what>`: the benchmark sub-commands.

Each benchmark is its own module in this package exposing
``add_parser(subparsers)`` (which sets ``run`` as the parser default) and
``run(args) -> int``. A module that is not in this checkout yet is skipped,
so `bench kernels` works before `bench session` / `bench whisper` exist.
"""

from __future__ import annotations

import argparse
import importlib

# bench sub-command -> module
BENCHMARKS: dict[str, str] = {
    "kernels": "xdna_ep.bench.kernels",
    "session": "xdna_ep.bench.session",
    "whisper": "xdna_ep.bench.whisper",
    "accuracy": "xdna_ep.bench.accuracy",
    "sizes": "xdna_ep.bench.sizes",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench", help="benchmarks (kernels, session, whisper, accuracy, sizes)")
    bench_sub = parser.add_subparsers(dest="bench_command", required=True)
    for module_name in BENCHMARKS.values():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # benchmark not built yet in this checkout
            raise
        module.add_parser(bench_sub)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # The chosen benchmark's add_parser set args.run to its own run(); this
    # function is only reached if a sub-parser forgot to (a bug, not user error).
    raise NotImplementedError(f"bench {args.bench_command!r} did not register a run function")
