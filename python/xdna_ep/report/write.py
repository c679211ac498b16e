"""Writing a report file in the format its suffix names (.json, .html, .txt)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..plan import PartitionPlan
from .document import report_dict
from .html import render_html
from .text import render_text

SUFFIXES = (".json", ".html", ".txt")


def write_report(plan: PartitionPlan, path: str | os.PathLike[str]) -> Path:
    """Write `plan`'s report to `path`; the suffix picks the format."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"report path {str(p)!r}: suffix must be one of {', '.join(SUFFIXES)}")
    doc = report_dict(plan)
    if suffix == ".json":
        text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    elif suffix == ".html":
        text = render_html(doc)
    else:
        text = render_text(doc)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p
