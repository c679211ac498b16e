"""The compiler's fused q/k/v default with the real split-output matmul kernel.

compile/ fuses the q/k/v projections by default when the matmul kernel
announces SUPPORTS_SPLIT; these tests run the resulting programs on the
runtime's EmulatorDevice (the registered kernels, not compile/'s contract
reference) and check them against the unfused program, which computes the
same per-channel weights, biases and scales in three separate stages and so
must give the same bytes.
"""

from __future__ import annotations

import numpy as np
import pytest
from synthetic.regions import encoder_layer

from xdna_ep.compile import CompileOptions, compile_region
from xdna_ep.compile.execute import ProgramRunner
from xdna_ep.kernel_specs import manifest
from xdna_ep.kernel_specs.matmul import SUPPORTS_SPLIT


@pytest.fixture(scope="module")
def layer():  # type: ignore[no-untyped-def]
    sm = encoder_layer(t=48, seed=3)
    return sm, sm.samples(3, seed=4)


def test_matmul_announces_split() -> None:
    assert SUPPORTS_SPLIT


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_default_fuses_qkv_into_three_launches_per_layer(layer, mode: str) -> None:  # type: ignore[no-untyped-def]
    sm, samples = layer
    fused, plan = compile_region(sm.model, sm.region, CompileOptions(mode, samples))
    assert fused is not None, plan.fallbacks
    assert fused.meta["fused_qkv"]
    qkv = [st for st in fused.stages() if st.kernel == "matmul" and "split" in st.attrs]
    assert len(qkv) == 1 and qkv[0].attrs["split"] == [384, 384, 384]
    assert len(qkv[0].outputs) == 3  # q, k, v (int8 static; float32 dynamic)
    if mode == "static":
        assert qkv[0].attrs["out"] == "int8" and len(qkv[0].attrs["out_scales"]) == 3
        # one encoder layer = 3 launches with the manifest's fused designs
        assert fused.num_launches == 3 and plan.regions[0].launches == 3
        assert [ln.design for ln in fused.launches] == [
            manifest.find_design(list(c)).name for c in
            (("layernorm", "matmul"), ("attention", "matmul", "add"),
             ("layernorm", "matmul", "gelu", "matmul", "add"))]
    # measured on the registered kernels through the runtime's EmulatorDevice
    assert set(fused.meta["sqnr_executor"].values()) == {"emulator-device"}
    unfused, _ = compile_region(sm.model, sm.region,
                                CompileOptions(mode, samples, fuse_qkv=False))
    assert unfused is not None and not unfused.meta["fused_qkv"]
    assert unfused.num_launches == fused.num_launches + 2  # three projections -> one
    rf, ru = ProgramRunner(fused), ProgramRunner(unfused)
    assert set(rf.used.values()) == {"emulator-device"}
    name = sm.input_name
    for s in samples:
        a = rf.run({name: s[name]}).outputs
        b = ru.run({name: s[name]}).outputs
        assert a.keys() == b.keys()
        for k in a:
            assert a[k].tobytes() == b[k].tobytes(), k
    assert np.isfinite(plan.regions[0].sqnr_db)
