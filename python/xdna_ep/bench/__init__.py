"""Benchmarks behind `xdna-ep bench <what>` (see bench/cli.py).

One module per benchmark, each exposing ``add_parser(subparsers)`` and
``run(args) -> int``: kernels.py (int8 kernels vs numpy/onnxruntime),
session.py and whisper.py (added by their owners). All figures are CPU
measurements of the host emulator unless a module says otherwise.
"""
