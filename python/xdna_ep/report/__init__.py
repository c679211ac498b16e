"""report stage of xdna-ep: what went where, why, MAC share, launches, SQNR.

    report_dict(plan) -> dict          (JSON schema: docs/REPORT_SCHEMA.md)
    render_text(doc) / render_html(doc) -> str
    write_report(plan, path)           (.json / .html / .txt by suffix)
"""

from .document import SCHEMA, SCHEMA_VERSION, report_dict
from .html import render_html
from .text import render_text
from .write import SUFFIXES, write_report

__all__ = ["SCHEMA", "SCHEMA_VERSION", "SUFFIXES", "render_html", "render_text", "report_dict",
           "write_report"]
