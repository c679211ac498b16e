"""cost model: launch overhead vs MACs, per region; projection labelled as such."""

from __future__ import annotations

import pytest
from synthetic import graphs as ms

from xdna_ep.cost import (
    CpuCostModel,
    NpuCostModel,
    place_by_cost,
    projected_npu_time,
    region_cost,
)
from xdna_ep.partition import partition
from xdna_ep.plan import OpMatch, Region


def _region(macs: int, rows: int, n_matches: int = 1, launches: int = 0) -> Region:
    ms_ = [OpMatch("matmul", (f"mm{i}",), ("x",), ("y",), {"m": rows}, macs // n_matches)
           for i in range(n_matches)]
    return Region(0, ms_, ["x"], ["y"], macs=macs, launches=launches)


def test_phoenix_numbers() -> None:
    npu = NpuCostModel()
    assert npu.macs_per_s == pytest.approx(5e12)  # 10 INT8 TOPS = 5 T MAC/s
    assert 0.15e-3 <= npu.launch_overhead_s <= 0.5e-3
    cpu = CpuCostModel()
    assert cpu.mac_rate(1) == cpu.gemv_macs_per_s
    assert cpu.mac_rate(1500) == cpu.gemm_macs_per_s


def test_region_cost_formula() -> None:
    npu, cpu = NpuCostModel(), CpuCostModel()
    r = _region(macs=1500 * 384 * 384, rows=1500, n_matches=2)
    c = region_cost(r, npu, cpu)
    assert c.launches == 2 and c.launches_estimated
    assert c.npu_s == pytest.approx(npu.region_call_s + 2 * npu.launch_overhead_s
                                    + 1500 * 384 * 384 / 5e12)
    assert c.cpu_s == pytest.approx(1500 * 384 * 384 / cpu.gemm_macs_per_s
                                    + 2 * cpu.node_dispatch_s)
    assert c.placement == "npu"
    r.launches = 1  # compile fused the chain: the real figure replaces the estimate
    c1 = region_cost(r, npu, cpu)
    assert c1.launches == 1 and not c1.launches_estimated and c1.npu_s < c.npu_s


def test_one_token_matmul_stays_on_cpu() -> None:
    r = _region(macs=384 * 384, rows=1)  # decoder projection, M = 1
    moved = place_by_cost([r])
    assert moved == [r] and r.placement == "cpu"
    assert "stays on CPU" in r.cost_reason and "launch" in r.cost_reason


def test_encoder_on_npu_decoder_token_on_cpu() -> None:
    enc = partition(ms.encoder_layer(d=384, heads=6, ffn=1536, t=1500))
    assert [r.placement for r in enc.regions] == ["npu"]
    assert enc.npu_mac_share == pytest.approx(1.0)
    dec = partition(ms.decoder_with_past_layer(d=384, heads=6, ffn=1536, past=20, enc=1500))
    assert dec.regions and all(r.placement == "cpu" for r in dec.regions)
    assert dec.npu_mac_share == 0.0
    for n in dec.nodes:
        if n.region is not None:
            assert n.placement == "cpu" and "stays on CPU" in n.reason
    assert sum("stays on CPU" in f for f in dec.fallbacks) == len(dec.regions)
    # the same decoder without the cost model: everything matched goes to the NPU
    forced = partition(ms.decoder_with_past_layer(d=384, heads=6, ffn=1536, past=20, enc=1500),
                       use_cost_model=False)
    assert all(r.placement == "npu" for r in forced.regions)


def test_projection_is_labelled_and_adds_up() -> None:
    plan = partition(ms.encoder_layer(d=384, heads=6, ffn=1536, t=1500))
    p = projected_npu_time(plan)
    assert "projection" in p.label and "not a measurement" in p.label
    (r,) = plan.regions
    assert p.npu_s == pytest.approx(region_cost(r).npu_s)
    assert p.total_s == pytest.approx(p.npu_s + p.cpu_s)
    cpu_only = [n for n in plan.nodes if n.placement == "cpu"]
    assert p.cpu_s == pytest.approx(len(cpu_only) * CpuCostModel().node_dispatch_s)


def test_reductions_and_float_traffic_enter_the_npu_time() -> None:
    """Fused dynamic launches: each on-array reduction costs reduction_s (an assumption)
    and its float32 bytes cross DDR at dram_bytes_per_s (an assumption)."""
    npu, cpu = NpuCostModel(), CpuCostModel()
    r = _region(macs=1500 * 384 * 384, rows=1500, launches=3)
    base = region_cost(r, npu, cpu).npu_s
    r.reductions, r.f32_traffic_bytes = 4, 2 * 4 * 1500 * 384
    assert region_cost(r, npu, cpu).npu_s == pytest.approx(
        base + 4 * npu.reduction_s + 2 * 4 * 1500 * 384 / npu.dram_bytes_per_s)


def test_dynamic_traffic_counts_the_reductions_of_fused_launches() -> None:
    """A compiled 1-layer dynamic encoder: ln_matmul reduces the LN output (made on the
    array: written once, read twice), attn_block q, k, v (read from IN: twice) and o."""
    import numpy as np
    from synthetic.graphs import encoder_layer

    from xdna_ep.compile.api import CompileOptions, compile_plan
    from xdna_ep.cost import dynamic_traffic
    from xdna_ep.kernel_specs import manifest
    from xdna_ep.partition import partition_model

    t, d = 64, 128
    model = encoder_layer(d=d, heads=2, ffn=4 * d, t=t, seed=1)
    plan = partition_model(model, use_cost_model=False)
    prog = next(iter(compile_plan(model, plan, CompileOptions(quantization="dynamic",
                                                              measure_sqnr=False)).values()))
    designs = [ln.design for ln in prog.launches]
    assert designs[:2] == ["ln_matmul", "attn_block"]
    got = dynamic_traffic(prog, set(manifest.load().designs))
    f32 = np.dtype(np.float32).itemsize
    # ln 3x [t, d]; q, k, v 2x each; o 3x; ffn_block: a 3x, fc1 out 3x [t, 4d]
    want = f32 * t * d * (3 + 3 * 2 + 3 + 3) + f32 * t * 4 * d * 3
    assert designs[2] == "ffn_block" and got.reductions == 1 + 4 + 2
    assert got.f32_bytes == want
    assert plan.regions[0].reductions == 7 and plan.regions[0].f32_traffic_bytes == want
    # the same program with nothing fused reduces nothing on the array
    assert dynamic_traffic(prog, set()).reductions == 0


def test_dynamic_traffic_sizes_symbolic_dims_from_the_plan() -> None:
    """A program with symbolic batch and sequence: traffic needs the plan's sizes for
    them (every reduced tensor is [B, T, width], so it grows linearly with T)."""
    from synthetic.graphs import encoder_layer

    from xdna_ep.compile.api import CompileOptions, compile_plan
    from xdna_ep.cost import dynamic_traffic
    from xdna_ep.kernel_specs import manifest
    from xdna_ep.partition import partition_model

    model = encoder_layer(d=128, heads=2, ffn=512, t=64, seed=1, symbolic=True)
    plan = partition_model(model, use_cost_model=False)
    seq = "encoder_sequence_length / 2"
    assert plan.dims == {"batch_size": 1, seq: 1500}          # the Whisper defaults
    prog = next(iter(compile_plan(model, plan, CompileOptions(quantization="dynamic",
                                                              measure_sqnr=False)).values()))
    fused = set(manifest.load().designs)
    assert dynamic_traffic(prog, fused).f32_bytes == 0            # no sizes: not priced
    sized = dynamic_traffic(prog, fused, plan.dims)
    assert sized.reductions == dynamic_traffic(prog, fused).reductions == 7
    assert sized.f32_bytes > 0 and plan.regions[0].f32_traffic_bytes == sized.f32_bytes
    assert dynamic_traffic(prog, fused, {"batch_size": 1, seq: 3000}).f32_bytes \
        == 2 * sized.f32_bytes
