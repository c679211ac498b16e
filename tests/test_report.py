"""report: JSON schema, text, self-contained HTML, and the `xdna-ep report` CLI."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import onnx
import pytest
from synthetic import graphs as ms

from xdna_ep.cli import main
from xdna_ep.compile.estimate import GROUPED
from xdna_ep.partition import partition
from xdna_ep.report import render_html, render_text, report_dict, write_report

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def plan():
    return partition(ms.encoder_layer(d=384, heads=6, ffn=1536, t=1500, front_end=True, mels=80))


@pytest.fixture(scope="module")
def decoder_plan():
    return partition(ms.merged_decoder())


def test_json_required_fields(plan) -> None:
    doc = json.loads(json.dumps(report_dict(plan), allow_nan=False))
    assert 0.0 <= doc["npu_mac_share"] <= 1.0
    assert isinstance(doc["launches_per_inference"], int)
    npu_regions = [r for r in plan.regions if r.placement == "npu"]
    assert doc["npu_mac_share"] == pytest.approx(sum(r.macs for r in npu_regions)
                                                 / plan.total_macs)
    assert len(doc["nodes"]) == len(plan.nodes)
    for n in doc["nodes"]:
        assert set(n) >= {"name", "op_type", "placement", "reason", "region"}
        assert n["placement"] in ("npu", "cpu") and n["reason"]
    for r in doc["regions"]:
        assert set(r) >= {"id", "nodes", "macs", "sqnr_db"}
        assert r["sqnr_db"] is None  # not quantized yet
    assert doc["launches_source"] == "estimate"
    # before compile: what compile's grouping makes of each region's stage chain
    assert doc["launches_per_inference"] == sum(r.estimated_launches for r in npu_regions)
    assert all(r["launches_estimate_rule"] == GROUPED for r in doc["regions"])
    assert "projection" in doc["projection"]["label"]


def test_later_stages_fill_sqnr_and_launches(plan) -> None:
    for r in plan.regions:
        r.sqnr_db, r.launches = 31.5, 3
    plan.quantization = "dynamic"
    try:
        doc = report_dict(plan)
        assert doc["launches_source"] == "compiled"
        assert doc["launches_per_inference"] == 3 * len(plan.regions)
        assert all(r["sqnr_db"] == 31.5 and r["launches"] == 3 for r in doc["regions"])
        assert doc["quantization"] == "dynamic"
        assert "31.5" in render_html(doc) and "31.5" in render_text(doc)
    finally:
        for r in plan.regions:
            r.sqnr_db, r.launches = None, 0
        plan.quantization = ""


def test_schema_doc_lists_every_key(plan, decoder_plan) -> None:
    text = (ROOT / "docs" / "REPORT_SCHEMA.md").read_text()
    doc = report_dict(decoder_plan)
    for key in list(doc) + list(doc["regions"][0]) + list(doc["nodes"][0]) + list(
            doc["counts"]) + list(doc["projection"]):
        assert f"`{key}`" in text, key


def test_html_is_self_contained_and_lists_every_node(decoder_plan) -> None:
    page = render_html(report_dict(decoder_plan))
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "<link" not in page and "@import" not in page
    for n in decoder_plan.nodes:
        assert html.escape(n.name) in page
    assert "Fallbacks" in page and "Regions" in page


def test_html_escapes_node_names() -> None:
    model = ms.gelu_model("erf")
    model.graph.node[0].name = "<script>alert(1)</script>"
    page = render_html(report_dict(partition(model)))
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_text_report(plan) -> None:
    text = render_text(report_dict(plan))
    assert "NPU MAC share" in text and "Regions" in text
    assert all(n.name in text for n in plan.nodes[:5])


def test_write_report_by_suffix(tmp_path: Path, decoder_plan) -> None:
    for suffix in (".json", ".html", ".txt"):
        out = write_report(decoder_plan, tmp_path / f"r{suffix}")
        assert out.stat().st_size > 0
    assert json.loads((tmp_path / "r.json").read_text())["model"] == decoder_plan.model_name
    with pytest.raises(ValueError, match="suffix"):
        write_report(decoder_plan, tmp_path / "r.pdf")


def test_cli_report(tmp_path: Path, capsys) -> None:
    model = tmp_path / "encoder_model.onnx"
    onnx.save(ms.encoder_layer(front_end=True), str(model))
    j, h, t = tmp_path / "r.json", tmp_path / "r.html", tmp_path / "r.txt"
    rc = main(["report", str(model), "--json", str(j), "--html", str(h), "--txt", str(t),
               "--no-cost", "--dim", "batch_size=1"])
    assert rc == 0
    doc = json.loads(j.read_text())
    assert doc["model"] == "encoder_model.onnx"
    assert doc["npu_mac_share"] == pytest.approx(1.0)
    assert h.read_text().startswith("<!DOCTYPE html>")
    assert "NPU MAC share" in t.read_text()
    assert "NPU MAC share" in capsys.readouterr().out


def test_cli_report_bad_file(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(ms.encoder_layer().SerializeToString()[:100])
    assert main(["report", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "broken.onnx" in err and "error" in err
    assert main(["report", str(tmp_path / "missing.onnx")]) == 2
    with pytest.raises(SystemExit):
        main(["report", str(bad), "--dim", "nonsense"])
