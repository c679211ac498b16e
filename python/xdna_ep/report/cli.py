"""`xdna-ep report MODEL.onnx [--json F] [--html F] [--txt F]`: partition a model
and show where every node goes and why (no quantization, no device needed)."""

from __future__ import annotations

import argparse
import sys


def _dim(text: str) -> tuple[str, int]:
    name, sep, value = text.rpartition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--dim expects NAME=SIZE, got {text!r}")
    try:
        size = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--dim {text!r}: SIZE must be an integer") from None
    if size <= 0:
        raise argparse.ArgumentTypeError(f"--dim {text!r}: SIZE must be positive")
    return name, size


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report", help="partition an ONNX model and report what runs on the NPU and why",
        description="Partition MODEL (capability -> regions -> placement by cost) and print "
                    "the report; optionally write it as JSON, HTML and/or text.")
    p.add_argument("model", help="path of the .onnx model")
    p.add_argument("--json", metavar="F", help="write the JSON report (docs/REPORT_SCHEMA.md)")
    p.add_argument("--html", metavar="F", help="write the self-contained HTML report")
    p.add_argument("--txt", metavar="F", help="write the text report (every node)")
    p.add_argument("--exclude-op", action="append", default=[], metavar="OP",
                   help="keep this op type on CPU (repeatable)")
    p.add_argument("--exclude-node", action="append", default=[], metavar="NAME",
                   help="keep this node on CPU (repeatable)")
    p.add_argument("--dim", action="append", default=[], type=_dim, metavar="NAME=SIZE",
                   help="size of a symbolic input dim for MAC counts (repeatable)")
    p.add_argument("--no-cost", action="store_true",
                   help="place every region on the NPU regardless of the cost model")
    p.add_argument("--all-nodes", action="store_true", help="print every node on the terminal")
    p.add_argument("--quiet", action="store_true", help="print nothing on the terminal")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..capability import ModelLoadError
    from ..partition import partition
    from .document import report_dict
    from .text import render
    from .write import write_report

    try:
        plan = partition(args.model, exclude_ops=list(args.exclude_op),
                         exclude_nodes=list(args.exclude_node), dims=dict(args.dim) or None,
                         use_cost_model=not args.no_cost)
    except ModelLoadError as exc:
        print(f"xdna-ep report: error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        render(report_dict(plan), Console(), all_nodes=args.all_nodes)
    for path in (args.json, args.html, args.txt):
        if path:
            try:
                out = write_report(plan, path) if path.lower().endswith(
                    (".json", ".html", ".txt")) else _write_as(plan, path, args)
            except OSError as exc:
                print(f"xdna-ep report: error: cannot write {path}: {exc}", file=sys.stderr)
                return 2
            if not args.quiet:
                print(f"wrote {out}")
    return 0


def _write_as(plan, path: str, args: argparse.Namespace):
    """--json/--html/--txt with another suffix: the flag decides the format."""
    import json
    from pathlib import Path

    from .document import report_dict
    from .html import render_html
    from .text import render_text

    doc = report_dict(plan)
    if path == args.json:
        text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    elif path == args.html:
        text = render_html(doc)
    else:
        text = render_text(doc)
    p = Path(path)
    p.write_text(text, encoding="utf-8")
    return p
