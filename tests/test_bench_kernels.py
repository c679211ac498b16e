"""`xdna-ep bench kernels`: the report's structure on tiny shapes (no timing
assertions: figures depend on the machine and its load)."""

from __future__ import annotations

import json

import pytest

from xdna_ep import _emulator, cli
from xdna_ep.bench import kernels as bk


def test_bench_kernels_json(monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(bk, "MATMUL_SHAPES", ((3, 40, 70), (1, 16, 130)))
    monkeypatch.setattr(bk, "ATTENTION", {"heads": 2, "frames": 20, "head_dim": 8})
    before = (_emulator.active_kernel_path(), _emulator.num_threads())
    assert cli.main(["bench", "kernels", "--json", "--repeats", "1", "--path", "portable",
                     "--threads", "1"]) == 0
    assert (_emulator.active_kernel_path(), _emulator.num_threads()) == before
    report = json.loads(capsys.readouterr().out)
    assert report["kernel_path"] == "portable" and report["threads"] == 1
    assert [r["shape"] for r in report["matmul"]] == [[3, 40, 70], [1, 16, 130]]
    for row in report["matmul"]:
        for key in ("emulator_gops", "numpy_fp32_gops", "ort_fp32_gops",
                    "ort_matmulinteger_gops"):
            assert row[key] > 0
        assert row["ratio_vs_numpy_fp32"] == pytest.approx(
            row["emulator_gops"] / row["numpy_fp32_gops"])
    att = report["attention"]
    assert att["available"] is False or att["emulator_gops"] > 0


def test_bench_kernels_rejects_bad_path() -> None:
    with pytest.raises(SystemExit, match="--path"):
        cli.main(["bench", "kernels", "--path", "sse9", "--repeats", "1"])
