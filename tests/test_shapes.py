"""The shapes that run (issue 15 item 2) and placement said in proportion (item 5).

A dynamic-axes BERT (random init from a small transformers BertConfig, torch's
TorchScript export, batch and sequence axes dynamic) is exported once per
module. Its dims get sizes from the provider option `dims`, ONNX Runtime's
free-dimension overrides, the calibration arrays, or else the first run's
input shape; the cost model never decides at a guessed size of 1.
"""

from __future__ import annotations

import json
import logging
import math
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from xdna_ep.ort.dims import parse_dims, resolve, session_overrides
from xdna_ep.ort.errors import XDNAFallbackWarning, XDNAPlacementWarning
from xdna_ep.ort.options import ProviderOptionError
from xdna_ep.ort.session import InferenceSession
from xdna_ep.partition import partition_model

EP = "XDNAExecutionProvider"
VOCAB = 256


@pytest.fixture(scope="module")
def bert(tmp_path_factory) -> str:
    import torch  # the [export] extra, installed by the README's test command:
    import transformers  # a missing one fails the test, never skips it
    cfg = transformers.BertConfig(vocab_size=VOCAB, hidden_size=256, num_hidden_layers=2,
                                  num_attention_heads=4, intermediate_size=1024,
                                  max_position_embeddings=256, attn_implementation="eager")
    torch.manual_seed(0)
    model = transformers.BertModel(cfg).eval()
    ids = torch.randint(0, VOCAB, (2, 16))
    path = tmp_path_factory.mktemp("bert") / "bert.onnx"
    axes = {0: "batch", 1: "sequence"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (ids, torch.ones_like(ids)), str(path),
                          input_names=["input_ids", "attention_mask"],
                          output_names=["last_hidden_state", "pooler_output"],
                          dynamic_axes={"input_ids": axes, "attention_mask": axes,
                                        "last_hidden_state": axes},
                          opset_version=17, dynamo=False)
    return str(path)


def _feed(batch: int, seq: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, seq), np.int64)
    mask[-1, seq // 2:] = 0  # one padded sequence: the mask path is exercised
    return {"input_ids": rng.integers(0, VOCAB, (batch, seq)).astype(np.int64),
            "attention_mask": mask}


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _cpu(bert: str, feed: dict[str, np.ndarray]) -> np.ndarray:
    return ort.InferenceSession(bert, providers=["CPUExecutionProvider"]).run(
        ["last_hidden_state"], feed)[0]


@pytest.mark.slow
def test_dynamic_bert_default_options_compiles_at_first_run(bert, tmp_path, caplog):
    """Done criterion: batch 4 x 128 tokens, default options: >= 90% of MACs on
    the NPU (emulator) and cosine >= 0.99 against ONNX Runtime CPU."""
    report = tmp_path / "report.json"
    with caplog.at_level(logging.INFO, logger="xdna_ep"), warnings.catch_warnings():
        warnings.simplefilter("error", XDNAPlacementWarning)
        sess = InferenceSession(bert, providers=[EP],
                                provider_options=[{"cache_dir": str(tmp_path / "c"),
                                                   "report": str(report)}])
        assert sess.xdna_start.source == "deferred" and sess.xdna_plan is None
        assert EP in sess.get_providers()
        assert any("first run" in r.getMessage() and "sequence" in r.getMessage()
                   for r in caplog.records)  # said at start, not silent
        feed = _feed(4, 128)
        out = sess.run(["last_hidden_state"], feed)[0]
    plan = sess.xdna_plan
    assert plan.dims == {"batch": 4, "sequence": 128}
    assert plan.dims_source == {"batch": "first_run", "sequence": "first_run"}
    assert plan.npu_mac_share >= 0.90, plan.fallbacks
    assert _cosine(out, _cpu(bert, feed)) >= 0.99
    lines = [r.getMessage() for r in caplog.records if "placement for input shape" in
             r.getMessage()]
    assert len(lines) == 1 and "batch=4,sequence=128" in lines[0]
    assert f"{math.floor(1000 * plan.npu_mac_share) / 10:.1f}% of MACs on the NPU" in lines[0]
    doc = json.loads(report.read_text())
    assert doc["dims"] == {"batch": 4, "sequence": 128}
    # the same shape again: no new compile
    n_compiled = len(sess._xdna_provider_core.shapes_compiled)
    sess.run(["last_hidden_state"], feed)
    assert len(sess._xdna_provider_core.shapes_compiled) == n_compiled == 1


@pytest.mark.slow
def test_dims_option_then_a_new_shape_compiles_and_rewrites_the_report(bert, tmp_path):
    report = tmp_path / "report.json"
    sess = InferenceSession(bert, providers=[EP], provider_options=[{
        "cache_dir": str(tmp_path / "c"), "report": str(report),
        "dims": "batch=4,sequence=128"}])
    assert sess.xdna_start.source == "compiled"  # at session start, from the option
    assert sess.xdna_plan.dims_source == {"batch": "option", "sequence": "option"}
    # pinned dims: the compile partitions the Shape-folded copy (a reparse of the
    # source would leave the head merge's Shape reads and the attention on the CPU)
    assert sess.xdna_plan.npu_mac_share >= 0.90, sess.xdna_plan.fallbacks
    assert json.loads(report.read_text())["dims"] == {"batch": 4, "sequence": 128}
    feed = _feed(4, 128, seed=1)
    assert _cosine(sess.run(["last_hidden_state"], feed)[0], _cpu(bert, feed)) >= 0.99
    # a shape never compiled: placed and compiled now (at 1 x 32 the cost model keeps
    # it on the CPU, announced), and the numbers are right
    other = _feed(1, 32, seed=2)
    with pytest.warns(XDNAFallbackWarning, match="places no node on the NPU"):
        out = sess.run(["last_hidden_state"], other)[0]
    np.testing.assert_allclose(out, _cpu(bert, other), rtol=1e-4, atol=1e-4)
    doc = json.loads(report.read_text())
    assert doc["dims"] == {"batch": 1, "sequence": 32}
    assert doc["dims_source"] == {"batch": "first_run", "sequence": "first_run"}
    assert any("batch=4,sequence=128; batch=1,sequence=32" in n for n in doc["notes"])
    assert _cosine(sess.run(["last_hidden_state"], feed)[0], _cpu(bert, feed)) >= 0.99


@pytest.mark.slow
def test_free_dimension_overrides_and_calibration_shapes(bert, tmp_path):
    so = ort.SessionOptions()
    so.add_free_dimension_override_by_name("batch", 2)
    so.add_free_dimension_override_by_name("sequence", 48)
    sess = InferenceSession(bert, so, providers=[EP],
                            provider_options=[{"cache_dir": str(tmp_path / "c")}])
    assert sess.xdna_plan.dims == {"batch": 2, "sequence": 48}
    # priced at the launches compile makes of it (8), the encoder is worth the NPU
    # at 2 x 48 tokens (at one launch per matched op, 27, it stayed on the CPU)
    main = max(sess.xdna_plan.regions, key=lambda r: r.macs)
    assert main.placement == "npu" and "NPU faster" in main.cost_reason
    assert set(sess.xdna_plan.dims_source.values()) == {"session_options"}
    assert sess.get_inputs()[0].shape == [2, 48]  # ORT applied them too
    assert so.optimized_model_filepath == ""  # the probe left the options as they were

    sample = tmp_path / "sample.npz"
    np.savez(sample, **_feed(3, 40))
    sess = InferenceSession(bert, providers=[EP], provider_options=[{
        "cache_dir": str(tmp_path / "c"), "calibration": str(sample),
        "dims": {"batch": 3}}])
    assert sess.xdna_plan.dims == {"batch": 3, "sequence": 40}
    assert sess.xdna_plan.dims_source == {"batch": "option", "sequence": "calibration"}


def test_low_share_is_a_warning_with_the_top_reasons(bert, tmp_path):
    with pytest.warns(XDNAPlacementWarning, match=r"% of MACs on the NPU.*below 90%.*"
                      r"top reasons: excluded"):
        InferenceSession(bert, providers=[EP], provider_options=[{
            "cache_dir": str(tmp_path / "c"), "dims": "batch=4,sequence=128",
            "exclude_nodes": "/encoder/layer.1/intermediate/dense/MatMul,"
                             "/encoder/layer.1/output/dense/MatMul"}])


def test_guessed_dims_never_decide_by_cost(bert):
    plan = partition_model(onnx.load(bert))
    assert plan.dims_guessed == ["sequence"]
    assert plan.regions and all(r.cost_reason.startswith("cost not evaluated: symbolic dims "
                                                         "sequence") for r in plan.regions)


def test_dims_option_spelling_and_errors(bert, tmp_path):
    assert parse_dims("batch=4, sequence=128") == {"batch": 4, "sequence": 128}
    assert parse_dims({"input_ids:1": "7"}) == {"input_ids:1": 7}
    for bad in ("batch", "batch=0", "batch=x", "=3", 5):
        with pytest.raises(ProviderOptionError, match="dims"):
            parse_dims(bad)
    with pytest.raises(ProviderOptionError, match=r"\['tokens'\].*symbolic dims: "
                       r"\['batch', 'sequence'\]"):
        InferenceSession(bert, providers=[EP], provider_options=[{
            "cache_dir": str(tmp_path), "dims": "tokens=5"}])


def test_overrides_by_denotation_and_unnamed_dims_read_through_the_probe():
    """SessionOptions has no getter: ONNX Runtime applies the overrides to a probe
    of the model's inputs (by name and by denotation; a dim without a name is
    '<input>:<axis>'), also with ep.context_enable set."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", None])
    x.type.tensor_type.shape.dim[2].denotation = "DATA_CHANNEL"
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    so = ort.SessionOptions()
    so.add_free_dimension_override_by_name("seq", 12)
    so.add_free_dimension_override_by_denotation("DATA_CHANNEL", 5)
    so.add_session_config_entry("ep.context_enable", "1")
    overrides, note = session_overrides(model, so)
    assert note == "" and overrides == {"seq": 12, "x:2": 5}
    choice = resolve(model, {}, so, [{"x": np.zeros((3, 7, 5), np.float32)}])
    assert choice.dims == {"seq": 12, "x:2": 5, "batch": 3}
    assert choice.source == {"seq": "session_options", "x:2": "session_options",
                             "batch": "calibration"}
    assert choice.unknown == ()
