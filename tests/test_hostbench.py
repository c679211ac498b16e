"""The cost model's CPU side from the host: measured once, cached per machine,
injectable (conftest.py pins the constants for every other test)."""

from __future__ import annotations

import json

import pytest

from xdna_ep import hostbench
from xdna_ep.cost import CpuCostModel, host_cpu, place_by_cost
from xdna_ep.plan import OpMatch, Region


def test_measured_once_then_cached_per_machine(tmp_path):
    figures, source = hostbench.load_or_measure(tmp_path)
    assert source == "measured"
    assert figures.cpu == hostbench.cpu_name() and figures.cores >= 1
    for v in (figures.fp32_gemm_macs_per_s, figures.int8_gemm_macs_per_s,
              figures.fp32_gemv_macs_per_s, figures.elements_per_s, figures.node_dispatch_s):
        assert 0 < v < float("inf")
    # a GEMM of 256 rows runs far faster per MAC than one row at a time
    assert figures.fp32_gemm_macs_per_s > figures.fp32_gemv_macs_per_s
    cached = tmp_path / f"{hostbench.host_key()}.json"
    assert cached.is_file()
    again, source = hostbench.load_or_measure(tmp_path)
    assert source == "cache" and again == figures
    cached.write_text("{not json")  # unreadable: measured again and rewritten
    third, source = hostbench.load_or_measure(tmp_path)
    assert source == "measured"
    assert json.loads(cached.read_text())["fp32_gemm_macs_per_s"] == third.fp32_gemm_macs_per_s


def test_env_figures_and_bad_spelling(monkeypatch):
    cpu = hostbench.figures_from_env("gemm=1e12,dispatch=1e-6")
    assert cpu.gemm_macs_per_s == 1e12 and cpu.node_dispatch_s == 1e-6
    assert cpu.gemv_macs_per_s == CpuCostModel().gemv_macs_per_s
    with pytest.raises(ValueError, match="XDNA_EP_CPU_FIGURES"):
        hostbench.figures_from_env("gemm=fast")
    with pytest.raises(ValueError, match="XDNA_EP_CPU_FIGURES"):
        hostbench.figures_from_env("flops=1e9")


def _region(macs: int, rows: int) -> Region:
    m = OpMatch("matmul", ("mm",), ("x",), ("y",), {"m": rows}, macs=macs, pattern="MatMul")
    return Region(0, [m], ["x"], ["y"], macs=macs)


def test_injected_figures_decide_placement():
    """The same region goes to the NPU against a slow host CPU and stays on a fast one."""
    try:
        hostbench.set_host_figures(CpuCostModel(name="slow", gemm_macs_per_s=1e9))
        assert host_cpu().name == "slow"
        r = _region(50_000_000, 512)
        place_by_cost([r])
        assert r.placement == "npu"
        hostbench.set_host_figures(CpuCostModel(name="fast", gemm_macs_per_s=1e13))
        r = _region(50_000_000, 512)
        place_by_cost([r])
        assert r.placement == "cpu"
    finally:
        hostbench.set_host_figures(CpuCostModel())  # what conftest.py pins
