"""The self-contained HTML page (one file, inline CSS, no external assets),
rendered with jinja2 from the template shipped as package data."""

from __future__ import annotations

from typing import Any

import jinja2

TEMPLATE = "report.html.j2"


def _macs(n: int | float | None) -> str:
    if not n:
        return "0"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.2f} {unit}"
    return str(int(n))


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("xdna_ep.report", "templates"),
        autoescape=True,  # node names and reasons are user data
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["macs"] = _macs
    return env


def render_html(doc: dict[str, Any]) -> str:
    return _env().get_template(TEMPLATE).render(doc=doc)
