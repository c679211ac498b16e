"""`xdna-ep bench session --json`: runs and reports the documented keys (no timing
assertions: figures are measured, not tested)."""

from __future__ import annotations

import json

from xdna_ep.cli import main


def test_bench_session_json(capsys):
    assert main(["bench", "session", "--json", "--layers", "1", "--repeats", "1",
                 "--calls", "5"]) == 0
    doc = json.loads(capsys.readouterr().out)
    for key in ("first_start_s", "cached_start_s", "cache_speedup", "region_call_overhead_us"):
        assert isinstance(doc[key], float), key
    assert doc["first_start_s"] > 0 and doc["cached_start_s"] > 0
    assert doc["regions"] >= 1
    assert set(doc["result_path_ms"]) == {"array", "list"}
