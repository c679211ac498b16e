"""`xdna-ep compile MODEL.onnx -o MODEL_ctx.onnx`: an EPContext model for the plugin library.

Partition + quantize + compile with the provider core (ort/provider.py, the
same path and cache as a Python session), then every XDNA region becomes a
com.microsoft EPContext node (ort/epcontext.py); CPU nodes stay ordinary ONNX
nodes. Any ONNX Runtime application runs the result with libxdna_ep_provider.so.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "compile", help="compile a model into an EPContext model for the XDNA plugin library",
        description="Partition, quantize and compile MODEL; write an ONNX model whose XDNA "
                    "regions are com.microsoft EPContext nodes (docs/EPCONTEXT.md).")
    p.add_argument("model", help="path of the .onnx model")
    p.add_argument("-o", "--output", required=True, help="path of the EPContext model to write")
    p.add_argument("--quantization", choices=("static", "dynamic"), default="dynamic",
                   help="INT8 activation scales: from calibration (static) or per call (dynamic)")
    p.add_argument("--calibration", metavar="F",
                   help=".npz file or folder of them (required for --quantization static)")
    p.add_argument("--report", metavar="F", help="write the partition report (.json/.html/.txt)")
    p.add_argument("--embed-mode", type=int, choices=(0, 1), default=1,
                   help="1: payload inside the model (default); 0: a side file beside it")
    p.add_argument("--exclude-op", action="append", default=[], metavar="OP",
                   help="keep this op type on CPU (repeatable)")
    p.add_argument("--exclude-node", action="append", default=[], metavar="NAME",
                   help="keep this node on CPU (repeatable)")
    p.add_argument("--cache-dir", metavar="D", help="compiled-model cache (default as sessions)")
    p.add_argument("--dims", metavar="NAME=N,...",
                   help="sizes of symbolic input dims to compile for (provider option dims)")
    p.set_defaults(run=run)
    return p


def compile_to_epcontext(model: str | Path, output: str | Path, *, embed_mode: int = 1,
                         options: dict[str, object] | None = None) -> Path:
    """Library form of the command: returns the written path; raises
    XDNAUnavailableError when no region of the model can run on XDNA."""
    from ..capability.shapes import pin_symbolic_dims
    from .dims import shape_key as dims_text
    from .epcontext import write_epcontext_model
    from .errors import XDNAUnavailableError
    from .options import parse_options
    from .provider import XDNAProvider
    from .stages import write_report

    src = Path(model)
    if not src.is_file():
        raise FileNotFoundError(f"model file not found: {src}")
    opts = parse_options({"device": "emulator", "fallback": "error", **(options or {})})
    provider = XDNAProvider(opts)
    provider.start.device, provider.start.device_reason = "emulator", "xdna-ep compile"
    rewritten, programs, plan = provider.compile_model(src)
    if plan is not None and opts.report is not None:
        write_report(plan, opts.report)
    if not programs:
        why = "no region of the model can run on XDNA"
        if plan is not None:
            reasons = sorted({n.reason for n in plan.nodes if n.placement == "cpu"})[:3]
            why += f" (e.g. {'; '.join(reasons)})" if reasons else ""
        raise XDNAUnavailableError(f"xdna-ep compile: {why}; nothing to write")
    if plan is not None and plan.dims and provider.pinned(plan.dims, plan.dims_source):
        # compiled for this one input shape (Shape nodes folded): the file says so
        rewritten = pin_symbolic_dims(rewritten, dict(plan.dims))
        logging.getLogger("xdna_ep").info(
            "xdna-ep compile: compiled for input dims %s; the model's inputs are fixed to "
            "these sizes (compile again for others)", dims_text(plan.dims))
    return write_epcontext_model(rewritten, programs, output, embed_mode=embed_mode,
                                 dims=plan.dims if plan is not None else None)


def run(args: argparse.Namespace) -> int:
    options: dict[str, object] = {"quantization": args.quantization}
    for key, value in (("calibration", args.calibration), ("report", args.report),
                       ("cache_dir", args.cache_dir), ("dims", args.dims)):
        if value is not None:
            options[key] = value
    if args.exclude_op:
        options["exclude_ops"] = args.exclude_op
    if args.exclude_node:
        options["exclude_nodes"] = args.exclude_node
    try:
        out = compile_to_epcontext(args.model, args.output, embed_mode=args.embed_mode,
                                   options=options)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"xdna-ep compile: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    fixed = _fixed_input_dims(out) if args.dims else ""
    if fixed:
        print(f"compiled for one input shape: {fixed} (compile again for other sizes)")
    return 0


def _fixed_input_dims(path: Path) -> str:
    """The written model's input signature ("input_ids[4,128], ..."), read without
    side files."""
    import onnx

    def dims(vi: onnx.ValueInfoProto) -> str:
        return ",".join(str(d.dim_value or d.dim_param or "?")
                        for d in vi.type.tensor_type.shape.dim)

    m = onnx.load(str(path), load_external_data=False)
    return ", ".join(f"{i.name}[{dims(i)}]" for i in m.graph.input)
