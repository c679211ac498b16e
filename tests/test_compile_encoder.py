"""Synthetic Whisper encoder layers (384 dims, 6 heads) -> Programs: accuracy, stages,
launches, serialisation.

SQNR bounds (stated here, checked below): a static or dynamic INT8 encoder
layer output (residual stream included) >= 30 dB against the FP32 graph run
by onnxruntime; the attention/MLP branch alone (layer output minus its input)
>= 20 dB; the conv front end (two int8 GELU outputs) >= 25 dB.
Measured when written (seed 0, 4 samples, T=100, see the report): ~33.5 dB
layer, 20-35 dB branch depending on method, ~27 dB front end.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from synthetic.regions import conv_frontend, encoder_layer

from xdna_ep.compile import CompileOptions, Program, compile_plan, compile_region
from xdna_ep.compile.build import group_launches
from xdna_ep.compile.execute import ProgramRunner
from xdna_ep.compile.observe import sqnr_db
from xdna_ep.kernel_specs import manifest
from xdna_ep.plan import PartitionPlan

LAYER_SQNR_DB = 30.0
BRANCH_SQNR_DB = 20.0
FRONTEND_SQNR_DB = 25.0

# The fused designs the brief asks the manifest for (kernels/manifest.json "designs").
DESIGNS = {
    ("layernorm", "matmul"): "layernorm_matmul",
    ("attention", "matmul", "add"): "attention_matmul_add",
    ("layernorm", "matmul", "gelu", "matmul", "add"): "layernorm_mlp_add",
}


def find_design(chain: list[str] | tuple[str, ...]) -> str | None:
    chain = tuple(chain)
    if len(chain) == 1:
        return chain[0]
    return DESIGNS.get(chain)


def _fp32(model, samples):  # type: ignore[no-untyped-def]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return [sess.run(None, s)[0] for s in samples]


def _program_outputs(prog: Program, samples, name: str):  # type: ignore[no-untyped-def]
    runner = ProgramRunner(prog)
    return [runner.run({name: s[name]}).outputs[prog.outputs[0].name] for s in samples]


@pytest.fixture(scope="module")
def layer():  # type: ignore[no-untyped-def]
    sm = encoder_layer(t=100, seed=0)
    return sm, sm.samples(4, seed=1)


def _manifest_design(chain: tuple[str, ...]) -> str:
    found = manifest.find_design(list(chain))
    assert found is not None, chain
    return found.name


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_static_layer_accuracy_and_launches(layer, method: str) -> None:  # type: ignore[no-untyped-def]
    """Default design lookup = the kernel manifest (kernels/manifest.json)."""
    sm, samples = layer
    opts = CompileOptions("static", samples, method, fuse_qkv=True)
    prog, plan = compile_region(sm.model, sm.region, opts)
    assert prog is not None, plan.fallbacks
    region = plan.regions[0]
    # independent SQNR: onnxruntime FP32 graph vs program run here
    ref = _fp32(sm.model, samples)
    out = _program_outputs(prog, samples, sm.input_name)
    db = sqnr_db(ref, out)
    assert db >= LAYER_SQNR_DB
    assert region.sqnr_db == pytest.approx(db, abs=0.01)
    assert prog.meta["sqnr_db"] == region.sqnr_db
    x = [s[sm.input_name] for s in samples]
    branch = sqnr_db([r - xi for r, xi in zip(ref, x, strict=True)],
                     [o - xi for o, xi in zip(out, x, strict=True)])
    assert branch >= BRANCH_SQNR_DB
    # stages: q/k/v fused, int8 between NPU ops (no dequantize, no quantize in static mode)
    kernels = [st.kernel for st in prog.stages()]
    assert kernels == ["layernorm", "matmul", "attention", "matmul", "add",
                       "layernorm", "matmul", "gelu", "matmul", "add"]
    qkv = prog.stages()[1]
    assert qkv.attrs["split"] == [384, 384, 384] and len(qkv.outputs) == 3
    assert qkv.attrs["out"] == "int8" and len(qkv.attrs["out_scales"]) == 3
    assert prog.constants[qkv.consts["weight"]].shape == (384, 1152)
    assert prog.constants[qkv.consts["weight"]].dtype == np.int8
    assert prog.stages()[0].attrs["out"] == "int8"          # layernorm -> int8
    assert prog.stages()[3].attrs["out"] == "float32"       # out_proj -> residual add
    assert prog.stages()[6].attrs["out"] == "int8"          # fc1 -> gelu
    # launches: <= 3 per encoder layer with the fused designs
    assert [ln.design for ln in prog.launches] == [_manifest_design(c) for c in DESIGNS]
    assert prog.kernel_version == manifest.kernel_version() != ""
    assert region.launches == 3
    assert prog.meta["quantization"] == "static"
    assert prog.meta["calibration_method"] == method
    assert prog.meta["macs"] >= 0 and len(prog.meta["source_nodes"]) == len(sm.region.nodes)
    assert plan.quantization == f"int8 static ({method})"


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_unfused_qkv_runs_on_the_registered_kernels(layer, mode: str) -> None:  # type: ignore[no-untyped-def]
    """Without the split matmul: three projection stages, 5 launches, all on the emulator."""
    sm, samples = layer
    prog, plan = compile_region(sm.model, sm.region,
                                CompileOptions(mode, samples, fuse_qkv=False,
                                               find_design=find_design))
    assert prog is not None
    assert not prog.meta["fused_qkv"]
    assert [st.kernel for st in prog.stages()].count("matmul") == 6
    if mode == "static":
        assert prog.num_launches == 5
    assert set(prog.meta["sqnr_executor"].values()) == {"emulator-device"}
    assert plan.regions[0].sqnr_db >= LAYER_SQNR_DB
    db = sqnr_db(_fp32(sm.model, samples), _program_outputs(prog, samples, sm.input_name))
    assert plan.regions[0].sqnr_db == pytest.approx(db, abs=0.01)


def test_calibration_methods_give_different_scales(layer) -> None:  # type: ignore[no-untyped-def]
    sm, samples = layer
    scales = {}
    for method in ("minmax", "percentile"):
        prog, _ = compile_region(sm.model, sm.region,
                                 CompileOptions("static", samples, method, measure_sqnr=False))
        scales[method] = prog.meta["scales"]  # type: ignore[union-attr]
    assert scales["minmax"].keys() == scales["percentile"].keys()
    assert all(scales["percentile"][k] <= scales["minmax"][k] * (1 + 1e-6)
               for k in scales["minmax"])
    assert scales["percentile"] != scales["minmax"]


def test_dynamic_layer(layer) -> None:  # type: ignore[no-untyped-def]
    sm, samples = layer
    prog, plan = compile_region(sm.model, sm.region,
                                CompileOptions("dynamic", samples, fuse_qkv=True,
                                               find_design=find_design))
    assert prog is not None
    assert plan.regions[0].sqnr_db is not None and plan.regions[0].sqnr_db >= LAYER_SQNR_DB
    db = sqnr_db(_fp32(sm.model, samples), _program_outputs(prog, samples, sm.input_name))
    assert plan.regions[0].sqnr_db == pytest.approx(db, abs=0.01)
    assert prog.meta["quantization"] == "dynamic" and prog.meta["scales"] == {}
    for st in prog.stages():
        if st.kernel in ("matmul", "gelu", "quantize", "attention"):
            assert st.attrs.get("dynamic") is True, st
            assert not any(k.endswith("_scale") and k != "softmax_scale" for k in st.attrs)
        if st.kernel == "matmul":
            assert st.attrs["out"] == "float32"
    # every int8 buffer travels with its scale buffer
    for st in prog.stages():
        for bufs in (st.inputs, st.outputs):
            for i, b in enumerate(bufs):
                if b.endswith("::q8"):
                    assert bufs[i + 1] == b + ".scale"
    assert plan.quantization == "int8 dynamic"


def test_dynamic_without_calibration_has_no_sqnr(layer) -> None:  # type: ignore[no-untyped-def]
    sm, _ = layer
    prog, plan = compile_region(sm.model, sm.region, CompileOptions("dynamic"))
    assert prog is not None and plan.regions[0].sqnr_db is None and "sqnr_db" not in prog.meta


@pytest.mark.slow
def test_two_layers_t300_six_launches() -> None:
    sm = encoder_layer(t=300, layers=2, seed=3)
    samples = sm.samples(2, seed=5)
    progs_plan = PartitionPlan("synthetic", [], [sm.region])
    progs = compile_plan(sm.model, progs_plan,
                         CompileOptions("static", samples, "minmax", fuse_qkv=True,
                                        find_design=find_design))
    prog = progs[0]
    assert prog.num_launches == 6 and progs_plan.launches_per_inference == 6
    assert progs_plan.regions[0].sqnr_db >= LAYER_SQNR_DB - 3.0  # two layers of error


def test_launch_grouping_without_designs_is_one_stage_per_launch(layer) -> None:  # type: ignore[no-untyped-def]
    sm, samples = layer
    prog, _ = compile_region(sm.model, sm.region,
                             CompileOptions("static", samples, measure_sqnr=False, fuse_qkv=True,
                                            find_design=lambda chain: None))
    assert prog is not None
    assert prog.num_launches == len(prog.stages())
    assert [ln.design for ln in prog.launches] == [st.kernel for st in prog.stages()]
    # grouping is greedy longest-first and never reorders stages
    grouped = group_launches(prog.stages(), find_design)
    assert [st for ln in grouped for st in ln.stages] == prog.stages()
    assert len(grouped) == 3


def test_program_round_trips_bit_identically(layer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sm, samples = layer
    prog, _ = compile_region(sm.model, sm.region,
                             CompileOptions("static", samples, fuse_qkv=True,
                                            find_design=find_design))
    assert prog is not None
    # (the zip containers carry timestamps, so the comparison is on their content:
    # the JSON document and every constant's dtype, shape and bytes)
    back = Program.from_bytes(prog.to_bytes())
    loaded = Program.load(prog.save(tmp_path / "p"))
    for other in (back, loaded):
        assert other.to_json_dict() == prog.to_json_dict()
        assert other.digest() == prog.digest()
        assert other.constants.keys() == prog.constants.keys()
        for k, v in prog.constants.items():
            c = other.constants[k]
            assert (c.dtype, c.shape) == (v.dtype, v.shape) and c.tobytes() == v.tobytes()
    a = _program_outputs(prog, samples[:1], sm.input_name)[0]
    b = _program_outputs(loaded, samples[:1], sm.input_name)[0]
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_conv_frontend(mode: str) -> None:
    sm = conv_frontend(t=200, seed=2)
    samples = sm.samples(3, seed=4)
    prog, plan = compile_region(sm.model, sm.region, CompileOptions(mode, samples))
    assert prog is not None, plan.fallbacks
    assert plan.regions[0].sqnr_db >= FRONTEND_SQNR_DB
    kernels = [st.kernel for st in prog.stages()]
    assert kernels.count("conv1d") == 2 and kernels.count("gelu") == 2
    conv = [st for st in prog.stages() if st.kernel == "conv1d"]
    assert conv[1].attrs["stride"] == 2 and conv[0].attrs["pad"] == 1
    w = prog.constants[conv[0].consts["weight"]]
    assert w.dtype == np.int8 and w.shape == (384, 80, 3)
    assert prog.outputs[0].dtype == "float32"
    assert kernels[-1] == "dequantize"  # gelu's int8 output leaves the region as float32


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_conv_frontend_with_position_add_is_one_launch(mode: str) -> None:
    """conv1d -> gelu -> conv1d -> gelu -> transposed position add: the whole chain
    (quantize/dequantize glue included) is the manifest's conv_frontend design, one
    launch, in static and in dynamic mode; the result matches onnxruntime FP32 on
    [B, T/2, D]."""
    sm = conv_frontend(t=200, seed=2, positions=True)
    samples = sm.samples(3, seed=4)
    prog, plan = compile_region(sm.model, sm.region, CompileOptions(mode, samples))
    assert prog is not None, plan.fallbacks
    add = prog.stages()[-1]
    assert add.kernel == "add" and add.attrs["transpose_a"] and add.attrs["table_rows"] == 100
    assert prog.constants[add.consts["b"]].shape == (100, 384)
    # dynamic mode too: conv_frontend's dynamic form reduces the scales on the array
    assert [ln.design for ln in prog.launches] == ["conv_frontend"]
    assert plan.launches_per_inference == 1
    if mode == "dynamic":
        assert [st.kernel for st in prog.stages()] == [
            "conv1d", "quantize", "gelu", "dequantize", "conv1d", "quantize", "gelu",
            "dequantize", "add"]
        assert all(st.attrs.get("dynamic") for st in prog.stages() if st.kernel != "add")
    want = _fp32(sm.model, samples)
    got = _program_outputs(prog, samples, sm.input_name)
    assert got[0].shape == want[0].shape == (1, 100, 384)
    worst = min(sqnr_db(w, g) for w, g in zip(want, got, strict=True))
    assert worst >= FRONTEND_SQNR_DB, worst


def _stages(kernels: list[str], dynamic: bool = False) -> list:
    from xdna_ep.compile.program import Stage

    attrs = {"dynamic": True} if dynamic else {}
    return [Stage(k, (f"i{n}",), (f"o{n}",), {}, dict(attrs)) for n, k in enumerate(kernels)]


FFN = ["layernorm", "matmul", "gelu", "matmul", "add"]


def test_grouping_takes_the_fewest_launches_not_the_longest_first() -> None:
    """Whisper's last layer with the outlier split: ffn_block, ffn_block, final
    layernorm. Greedy longest-first would start with ffn_ln_matmul (first block +
    the second block's layernorm -> fc1) and leave gelu, matmul, add, layernorm as
    four launches (5 in all); the fewest is 3."""
    def find(chain):  # the manifest's designs
        return manifest.find_design(list(chain))

    launches = group_launches(_stages(FFN + FFN + ["layernorm"]), find)
    assert [ln.design for ln in launches] == ["ffn_block", "ffn_block", "layernorm"]
    # a layer's MLP followed by the next layer's layernorm -> q/k/v: one launch
    launches = group_launches(_stages(FFN + ["layernorm", "matmul", "attention"]), find)
    assert [ln.design for ln in launches] == ["ffn_ln_matmul", "attention"]
    # ties keep the longer first launch: ln_matmul + single, not single + ...
    launches = group_launches(_stages(["layernorm", "matmul", "quantize"]), find)
    assert [ln.design for ln in launches] == ["ln_matmul", "quantize"]
    # stages are never reordered or dropped
    st = _stages(FFN + FFN + ["layernorm"])
    assert [s for ln in group_launches(st, find) for s in ln.stages] == st


def test_dynamic_front_end_groups_only_into_conv_frontends_dynamic_form() -> None:
    """The dynamic front end (conv1d, quantize(neg_limit), gelu, dequantize, ...) is
    conv_frontend's chain with its glue: ONE launch, because the manifest entry lists
    it as its "dynamic_stages"; the same entry without them leaves every dynamic stage
    alone, while a static chain is grouped either way."""
    chain = ["conv1d", "quantize", "gelu", "dequantize", "conv1d", "quantize", "gelu",
             "dequantize", "add"]

    def find(c):
        return manifest.find_design(list(c))

    def find_static_only(c):
        found = manifest.find_design(list(c))
        return None if found is None else dataclasses.replace(found, dynamic_stages=())

    assert [ln.design for ln in group_launches(_stages(chain), find)] == ["conv_frontend"]
    assert [ln.design for ln in group_launches(_stages(chain, dynamic=True), find)] == \
        ["conv_frontend"]
    assert [ln.design for ln in group_launches(_stages(chain), find_static_only)] == \
        ["conv_frontend"]
    assert [ln.design for ln in group_launches(_stages(chain, dynamic=True),
                                               find_static_only)] == chain


@pytest.mark.parametrize("size", ["tiny", "large-v3"])
def test_dynamic_whisper_front_end_is_one_launch(size: str, tmp_path: Path) -> None:
    """The default mode (dynamic, no calibration) on a one-layer random Whisper encoder
    of the size's real widths (bench sizes' export; large-v3: 128 mels, d 1280): the
    front end's nine dynamic stages (two convs, their quantize -> gelu -> dequantize,
    the position add) are ONE conv_frontend launch, and no other launch holds a conv."""
    import onnx

    from xdna_ep.bench.sizes import export_encoder
    from xdna_ep.partition import partition_model

    path = export_encoder(size, tmp_path / "enc.onnx", layers=1, frames=200)
    model = onnx.load(str(path))
    plan = partition_model(model, model_name=size)
    progs = compile_plan(model, plan, CompileOptions(quantization="dynamic",
                                                     measure_sqnr=False))
    front = [(prog, ln) for prog in progs.values() for ln in prog.launches
             if any(st.kernel == "conv1d" for st in ln.stages)]
    assert [ln.design for _, ln in front] == ["conv_frontend"]
    ((prog, ln),) = front
    assert [st.kernel for st in ln.stages] == ["conv1d", "quantize", "gelu", "dequantize"] * 2 \
        + ["add"]
    assert ln.stages[1].attrs["neg_limit"] > 0 and ln.stages[5].attrs["neg_limit"] > 0
    assert all(st.attrs.get("dynamic") for st in ln.stages[:-1])
    # the cost model prices its four float reductions (mel, c1, h, c2: cost.py)
    from xdna_ep.cost import dynamic_traffic

    assert dynamic_traffic(dataclasses.replace(prog, launches=(ln,)),
                           {"conv_frontend"}).reductions == 4
    w = prog.constants[ln.stages[0].consts["weight"]]
    assert w.shape[:2] == ({"tiny": 384, "large-v3": 1280}[size],
                           {"tiny": 80, "large-v3": 128}[size])
