"""MLP outlier-channel split (passes/split_outliers.py) on a synthetic encoder layer.

Outlier channels are planted: fc1 columns 7 and 100 (and their bias) scaled by 60,
so their GELU outputs are ~60x the others', as in tiny.en's last layer on real
speech. Without the split one per-tensor GELU scale either clips them or flushes
the rest; with it, each group has its own scale. Bound checked: split >= plain + 3 dB
(and >= 25 dB for the encoder layer). Measured when written (4 calibration / 3
held-out samples): encoder layer (FFN-block form) static 20.7 -> 34.0 dB, dynamic
23.1 -> 35.0 dB; bare fc1 -> gelu -> fc2 (split-matmul form) static 22.9 -> 29.3 dB.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from synthetic.regions import encoder_layer

from xdna_ep.compile import CompileOptions, compile_region
from xdna_ep.compile.execute import ProgramRunner
from xdna_ep.compile.observe import sqnr_db
from xdna_ep.passes.split_outliers import outlier_channels
from xdna_ep.quantize.calibration import Tap, collect_ranges, tap_model

PLANTED = [7, 100]


def _planted(seed: int = 0):  # type: ignore[no-untyped-def]
    sm = encoder_layer(d=64, heads=2, ffn=256, t=60, seed=seed)
    for init in sm.model.graph.initializer:
        if init.name in ("layers.0.fc1.weight", "layers.0.fc1.bias"):
            a = onnx.numpy_helper.to_array(init).copy()
            a[..., PLANTED] *= np.float32(60.0)
            init.CopyFrom(onnx.numpy_helper.from_array(a, init.name))
    return sm


@pytest.fixture(scope="module")
def planted():  # type: ignore[no-untyped-def]
    sm = _planted()
    return sm, sm.samples(4, seed=1), sm.samples(3, seed=7)


def _sqnr(sm, prog, samples) -> float:  # type: ignore[no-untyped-def]
    sess = ort.InferenceSession(sm.model.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = [sess.run(None, s)[0] for s in samples]
    runner = ProgramRunner(prog)
    out = [runner.run({sm.input_name: s[sm.input_name]}).outputs[prog.outputs[0].name]
           for s in samples]
    return sqnr_db(ref, out)


@pytest.mark.parametrize("mode", ["static", "dynamic"])
@pytest.mark.parametrize("fuse", [True, False])
def test_split_finds_planted_channels_and_improves_accuracy(planted, mode: str,
                                                            fuse: bool) -> None:  # type: ignore[no-untyped-def]
    sm, cal, held = planted
    split, _ = compile_region(sm.model, sm.region, CompileOptions(mode, cal, fuse_qkv=fuse))
    plain, _ = compile_region(sm.model, sm.region,
                              CompileOptions(mode, cal, fuse_qkv=fuse, split_outliers=False))
    assert split is not None and plain is not None
    assert split.meta["outlier_channels"] == {"layers.0.fc1.out": PLANTED}
    assert "outlier_channels" not in plain.meta
    kernels = [st.kernel for st in split.stages()]
    assert kernels.count("gelu") == 2 and kernels.count("gelu") == 1 + [
        st.kernel for st in plain.stages()].count("gelu")
    db_split, db_plain = _sqnr(sm, split, held), _sqnr(sm, plain, held)
    assert db_split >= db_plain + 3.0, (db_split, db_plain)
    assert db_split >= 25.0, db_split


def test_ffn_block_becomes_two_ffn_blocks(planted) -> None:  # type: ignore[no-untyped-def]
    """A whole FFN block splits into two manifest `ffn_block` chains: one more launch."""
    sm, cal, _ = planted
    prog, _ = compile_region(sm.model, sm.region, CompileOptions("static", cal))
    plain, _ = compile_region(sm.model, sm.region,
                              CompileOptions("static", cal, split_outliers=False))
    assert prog is not None and plain is not None
    designs = [ln.design for ln in prog.launches]
    assert designs.count("ffn_block") == 2 and prog.num_launches == plain.num_launches + 1
    kernels = [st.kernel for st in prog.stages()]
    assert kernels.count("layernorm") == 3  # ln1, ln2 and ln2 recomputed for block two
    gel = [st for st in prog.stages() if st.kernel == "gelu"]
    # the outlier group (first block) got a much larger GELU output scale than the rest
    assert gel[0].attrs["out_scale"] > 10 * gel[1].attrs["out_scale"]


def _bare_mlp(seed: int = 0):  # type: ignore[no-untyped-def]
    """x -> fc1 -> Gelu -> fc2 -> y (no layernorm, no residual), outliers planted."""
    from synthetic.graphs import GraphBuilder
    from synthetic.regions import OPSET, SyntheticModel, matmul

    from xdna_ep.plan import OpMatch, Region

    g = GraphBuilder(seed=seed)
    f1, m1 = matmul(g, "fc1", "x", 64, 256)
    ge = g.node("Gelu", [f1], ["gelu"], "Gelu")
    mg = OpMatch("gelu", ("Gelu",), (f1,), (ge,), {"approximate": "none", "bias": None},
                 pattern="Gelu")
    f2, m2 = matmul(g, "fc2", ge, 256, 64)
    graph = helper.make_graph(
        g.nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 60, 64])],
        [helper.make_tensor_value_info(f2, TensorProto.FLOAT, [1, 60, 64])], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    for init in model.graph.initializer:
        if init.name in ("fc1.weight", "fc1.bias"):
            a = onnx.numpy_helper.to_array(init).copy()
            a[..., PLANTED] *= np.float32(60.0)
            init.CopyFrom(onnx.numpy_helper.from_array(a, init.name))
    return SyntheticModel(model, Region(0, [m1, mg, m2], ["x"], [f2]), "x", (1, 60, 64))


@pytest.mark.parametrize("fuse", [True, False])
def test_bare_mlp_split_matmul_form(fuse: bool) -> None:
    """Without a layernorm/residual around it: fc1 as one split matmul (or two), two gelu,
    two fc2 matmuls and one add."""
    sm = _bare_mlp()
    cal, held = sm.samples(4, seed=1), sm.samples(3, seed=7)
    prog, _ = compile_region(sm.model, sm.region, CompileOptions("static", cal, fuse_qkv=fuse))
    plain, _ = compile_region(sm.model, sm.region,
                              CompileOptions("static", cal, fuse_qkv=fuse, split_outliers=False))
    assert prog is not None and plain is not None
    assert prog.meta["outlier_channels"] == {"fc1.out": PLANTED}
    kernels = [st.kernel for st in prog.stages()]
    assert kernels.count("gelu") == 2 and kernels.count("add") == 1
    fc1 = [st for st in prog.stages() if st.kernel == "matmul" and st.attrs.get("split")]
    if fuse:
        assert len(fc1) == 1 and fc1[0].attrs["split"] == [256 - len(PLANTED), len(PLANTED)]
        assert prog.constants[fc1[0].consts["weight"]].shape == (64, 256)
        assert kernels.count("matmul") == 3
    else:
        assert not fc1 and kernels.count("matmul") == 4
    db_split, db_plain = _sqnr(sm, prog, held), _sqnr(sm, plain, held)
    assert db_split >= db_plain + 3.0, (db_split, db_plain)


def test_no_outliers_no_split() -> None:
    sm = encoder_layer(d=64, heads=2, ffn=256, t=60, seed=0)
    prog, _ = compile_region(sm.model, sm.region, CompileOptions("static", sm.samples(3, 1)))
    assert prog is not None
    assert "outlier_channels" not in prog.meta
    assert [st.kernel for st in prog.stages()].count("gelu") == 1


def test_outlier_channel_rule() -> None:
    m = np.ones(200, np.float32)
    m[[3, 50]] = [40.0, 9.0]
    assert outlier_channels(m, ratio=8.0) == [3, 50]
    assert outlier_channels(m, ratio=10.0) == [3]
    assert outlier_channels(m, ratio=8.0, max_share=1 / 200) == [3]  # largest first
    assert outlier_channels(np.zeros(10), ratio=8.0) == []
    with pytest.raises(ValueError, match="ratio"):
        outlier_channels(m, ratio=1.0)
    with pytest.raises(ValueError, match="outlier_ratio"):
        CompileOptions("dynamic", outlier_ratio=0.5)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_take_gelu_tap_matches_numpy(approximate: str) -> None:
    """Tap.take / Tap.gelu observe gelu(x[..., take]) on the FP32 model."""
    from math import erf, pi, sqrt, tanh

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"], name="id")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    x = np.array([[-3, -0.5, 0, 0.7, 4], [2, -1, 1.5, -6, 0.1]], np.float32)
    take = (4, 1, 3)
    tm = tap_model(model, {"t": Tap("y", take=take, gelu=approximate)})
    sess = ort.InferenceSession(tm.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(["t::xdna_cal"], {"x": x})[0]

    def g(v: float) -> float:
        if approximate == "none":
            return 0.5 * v * (1 + erf(v / sqrt(2)))
        return 0.5 * v * (1 + tanh(sqrt(2 / pi) * (v + 0.044715 * v ** 3)))

    want = np.vectorize(g)(x[:, list(take)].astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    lo, hi = collect_ranges(model, {"t": Tap("y", take=take, gelu=approximate)},
                            [{"x": x}], "minmax")["t"]
    assert max(abs(lo), abs(hi)) == pytest.approx(float(np.abs(want).max()), rel=1e-5)
    with pytest.raises(ValueError, match="approximate"):
        tap_model(model, {"t": Tap("y", gelu="fast")})


def test_data_free_split_finds_planted_channels(planted) -> None:  # type: ignore[no-untyped-def]
    """No calibration data (the provider's default): the channels come from the weight
    bound |b1 + beta W1| + sqrt(C) ||gamma * W1[:, c]|| alone, and the split still pays."""
    sm, _, held = planted
    split, _ = compile_region(sm.model, sm.region, CompileOptions("dynamic"))
    plain, _ = compile_region(sm.model, sm.region, CompileOptions("dynamic", split_outliers=False))
    assert split is not None and plain is not None
    assert split.meta["outlier_channels"] == {"layers.0.fc1.out": PLANTED}
    db_split, db_plain = _sqnr(sm, split, held), _sqnr(sm, plain, held)
    assert db_split >= db_plain + 3.0, (db_split, db_plain)


def test_data_free_bound_holds_and_leaves_ordinary_layers_alone() -> None:
    """The bound is a real bound (no value of fc1's output exceeds it), and an
    ordinary layer (no planted channels) and a bare MLP (no layernorm: no bound) are
    not split without calibration data."""
    from xdna_ep.compile.lower import lower_region
    from xdna_ep.compile.model_index import ModelIndex
    from xdna_ep.compile.observe import observe
    from xdna_ep.passes.split_outliers import find_mlp_chains, weight_bounds

    sm = _planted()
    lr = lower_region(ModelIndex(sm.model), sm.region, True)
    (chain,) = find_mlp_chains(lr)
    bounds = weight_bounds(lr, chain)
    assert bounds is not None
    h = lr.ops[chain.fc1].outputs[0]
    vals = observe(sm.model, [h], sm.samples(3, seed=5))
    peak = np.max([np.abs(v[h]).reshape(-1, bounds.size).max(axis=0) for v in vals], axis=0)
    assert np.all(peak <= bounds * (1 + 1e-5)), float(np.max(peak / bounds))

    ordinary = encoder_layer(d=64, heads=2, ffn=256, t=60, seed=0)
    prog, _ = compile_region(ordinary.model, ordinary.region, CompileOptions("dynamic"))
    assert prog is not None and "outlier_channels" not in prog.meta
    bare = _bare_mlp()
    prog, _ = compile_region(bare.model, bare.region, CompileOptions("dynamic"))
    assert prog is not None and "outlier_channels" not in prog.meta
