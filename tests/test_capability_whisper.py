"""Partitioning the real Whisper graphs (Optimum's exporter, tiny.en architecture).

The weights are random (nothing downloads from a model hub): the partitioner
only looks at the graph structure, which is the exporter's, and the MACs,
which follow from the shapes.
"""

from __future__ import annotations

from collections import Counter

import pytest
from synthetic import graphs as ms

from xdna_ep.capability import analyze, load_model
from xdna_ep.partition import partition

pytestmark = pytest.mark.slow

D, FFN, T, LAYERS, HEADS = 384, 1536, 1500, 4, 6


@pytest.fixture(scope="module")
def whisper(tmp_path_factory) -> dict[str, str]:
    return ms.export_random_whisper(tmp_path_factory.mktemp("whisper_tiny_en"))


def test_encoder_macs_on_npu(whisper) -> None:
    plan = partition(whisper["encoder_model"])
    # MACs by hand: conv1 (80->384, k3, 3000 frames), conv2 (384->384, k3, 1500 frames),
    # per layer 4 projections + 2 FFN matmuls + QK^T and PV
    conv = D * 80 * 3 * 2 * T + D * D * 3 * T
    layer = 4 * T * D * D + 2 * T * D * FFN + 2 * T * T * D
    assert plan.total_macs == conv + LAYERS * layer
    assert plan.npu_mac_share >= 0.99
    assert all(r.placement == "npu" for r in plan.regions)
    kinds = Counter(m.kind for r in plan.regions for m in r.matches)
    assert kinds == {"matmul": 6 * LAYERS, "attention": LAYERS, "layernorm": 2 * LAYERS + 1,
                     "gelu": 2 + LAYERS, "add": 2 * LAYERS + 1, "conv1d": 2}
    # the front end's Transpose + position Add is a region node too, so the whole
    # encoder (conv front end to final layernorm) is one region
    assert len(plan.regions) == 1
    pos = [m for r in plan.regions for m in r.matches if m.pattern == "TransposePositionAdd"]
    assert len(pos) == 1 and pos[0].attrs.transpose_a
    for r in plan.regions:
        for m in r.matches:
            if m.kind == "attention":
                assert m.attrs.num_heads == HEADS and m.attrs.head_dim == D // HEADS
                assert m.attrs.scale == pytest.approx((D // HEADS) ** -0.5)


def test_decoders_attention_and_cost(whisper) -> None:
    for name in ("decoder_model", "decoder_with_past_model", "decoder_model_merged"):
        res = analyze(load_model(whisper[name]))
        atts = [m for m in res.matches if m.kind == "attention"]
        branches = 2 if name == "decoder_model_merged" else 1
        assert len(atts) == 2 * LAYERS * branches, name  # self + cross per layer
        assert all(a.attrs.num_heads == HEADS for a in atts), name
    plan = partition(whisper["decoder_with_past_model"])
    per_token = [r for r in plan.regions if not any(
        getattr(m.attrs, "n", None) == 51864 for m in r.matches)]
    assert per_token and all(r.placement == "cpu" for r in per_token)
    assert all("stays on CPU" in r.cost_reason for r in per_token)
    wp = analyze(load_model(whisper["decoder_with_past_model"]))
    self_att = [m for m in wp.matches if m.kind == "attention" and m.attrs.past_key]
    assert len(self_att) == LAYERS
    assert all(m.attrs.k_layout == "bhsd" and m.attrs.nan_guard for m in self_att)


def test_real_tiny_en_encoder() -> None:
    """The bundled tiny.en checkpoint, converted by xdna_ep.models (cached)."""
    from xdna_ep.models import ensure_onnx_model

    plan = partition(ensure_onnx_model() / "encoder_model.onnx")
    conv = D * 80 * 3 * 2 * T + D * D * 3 * T
    layer = 4 * T * D * D + 2 * T * D * FFN + 2 * T * T * D
    assert plan.total_macs == conv + LAYERS * layer
    assert plan.npu_mac_share >= 0.99
    assert all(r.placement == "npu" for r in plan.regions)
