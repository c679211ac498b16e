"""Terminal rendering of the report document (rich tables)."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

KIND_ABBR = {"matmul": "mm", "layernorm": "ln", "attention": "attn", "conv1d": "conv",
             "gelu": "gelu", "add": "add", "softmax": "smax"}


def _macs(n: int) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.2f} {unit}"
    return str(n)


def render(doc: dict[str, Any], console: Console, all_nodes: bool = False) -> None:
    c = doc["counts"]
    console.print(f"[bold]xdna-ep partition report[/bold]: {escape(str(doc['model']))}")
    console.print(
        f"device: {doc['device'] or 'not selected (partition only)'}   "
        f"quantization: {doc['quantization'] or 'not quantized yet'}"
    )
    console.print(
        f"NPU MAC share: [bold]{doc['npu_mac_share'] * 100:.2f}%[/bold] "
        f"({_macs(doc['npu_macs'])} of {_macs(doc['total_macs'])} MACs)   "
        f"launches/inference: {doc['launches_per_inference']} ({doc['launches_source']})   "
        f"nodes: {c['npu_nodes']} NPU / {c['cpu_nodes']} CPU   "
        f"regions: {c['npu_regions']} NPU of {c['regions']}"
    )
    if doc.get("dims"):
        src = doc.get("dims_source", {})
        shapes = ", ".join(f"{k}={v} ({src.get(k, '?')})" for k, v in doc["dims"].items())
        console.print(f"input dims placed and compiled: {escape(shapes)}")
    p = doc["projection"]
    console.print(f"projected time: NPU {p['npu_ms']:.3f} ms + CPU {p['cpu_ms']:.3f} ms "
                  f"[dim]({escape(p['label'])})[/dim]")
    t = Table(title="Regions (projected ms: cost model, not measured)", show_lines=False)
    for col in ("id", "graph", "place", "nodes", "ops", "MACs", "launches", "SQNR dB",
                "NPU ms", "CPU ms"):
        t.add_column(col, overflow="fold", no_wrap=col in ("MACs", "id"),
                     justify="right" if col in ("MACs", "NPU ms", "CPU ms") else "left")
    for r in doc["regions"]:
        kinds = " ".join(f"{KIND_ABBR.get(k, k)}x{v}" for k, v in r["kinds"].items())
        launches = str(r["launches"]) if r["launches"] is not None else f"~{r['launches_estimate']}"
        sqnr = "-" if r["sqnr_db"] is None else f"{r['sqnr_db']:.1f}"
        t.add_row(str(r["id"]), escape(r["graph"] or "main"), r["placement"],
                  str(len(r["nodes"])), kinds, _macs(r["macs"]), launches, sqnr,
                  f"{r['projected_npu_ms']:.3f}", f"{r['projected_cpu_ms']:.3f}")
    console.print(t)
    if doc["cpu_reasons"]:
        t = Table(title="CPU nodes by reason")
        t.add_column("reason")
        t.add_column("nodes", justify="right")
        for k, v in doc["cpu_reasons"].items():
            t.add_row(escape(k), str(v))
        console.print(t)
    if all_nodes:
        t = Table(title="Nodes")
        for col in ("name", "op", "placement", "region", "MACs", "reason"):
            t.add_column(col, overflow="fold")
        for n in doc["nodes"]:
            t.add_row(escape(n["name"]), n["op_type"], n["placement"],
                      "" if n["region"] is None else str(n["region"]), _macs(n["macs"]),
                      escape(n["reason"]))
        console.print(t)
    if doc["fallbacks"]:
        console.print("[bold]Fallbacks[/bold]")
        for f in doc["fallbacks"]:
            console.print(f"  - {f}", markup=False)
    for n in doc["notes"]:
        console.print(f"[dim]note: {escape(n)}[/dim]")


def render_text(doc: dict[str, Any], width: int = 160) -> str:
    """The full report (every node included) as plain text."""
    buf = io.StringIO()
    render(doc, Console(file=buf, width=width, color_system=None, force_terminal=False),
           all_nodes=True)
    return buf.getvalue()
