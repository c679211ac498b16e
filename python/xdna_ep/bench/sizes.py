"""`xdna-ep bench sizes`: the Whisper encoder of every published size, placed
and compiled: regions, share of MACs on the NPU path, launches per layer and
the cost model's projected NPU time per 30 s window (a projection from
cost.NpuCostModel, not a measurement: there is no NPU on the machines this
runs on).

The configs are built in code from the published dimensions (random init: the
placement, launches and projected time depend on shapes only, and nothing is
downloaded); the encoder is exported by torch (TorchScript, opset 17) with the
real 3000-frame window. `--layers N` keeps the real widths with N layers (the
tests use 2); the default is full depth.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class WhisperDims:
    """Published encoder dimensions of one Whisper size."""

    d_model: int
    heads: int
    layers: int
    ffn: int
    mels: int = 80


# openai/whisper and the Hugging Face model cards (encoder side; turbo and
# distil-large-v3 keep large-v3's 32-layer encoder and shrink the decoder)
WHISPER_SIZES: dict[str, WhisperDims] = {
    "tiny": WhisperDims(384, 6, 4, 1536),
    "base": WhisperDims(512, 8, 6, 2048),
    "small": WhisperDims(768, 12, 12, 3072),
    "medium": WhisperDims(1024, 16, 24, 4096),
    "large-v3": WhisperDims(1280, 20, 32, 5120, 128),
    "large-v3-turbo": WhisperDims(1280, 20, 32, 5120, 128),
    "distil-large-v3": WhisperDims(1280, 20, 32, 5120, 128),
}

WINDOW_FRAMES = 3000  # 30 s of 10 ms mel frames -> 1500 encoder positions


@dataclass
class SizeRow:
    size: str
    layers: int
    d_model: int
    share: float  # MACs on the NPU path / all MACs
    npu_regions: int
    launches: int
    launches_per_layer: float
    projected_npu_ms: float  # cost model, per window
    projected_cpu_ms: float  # what stays on the CPU, per window
    fallbacks: list[str]


def export_encoder(size: str, path: Path, layers: int | None = None,
                   frames: int = WINDOW_FRAMES) -> Path:
    """A random-init Whisper encoder of `size` (real widths; `layers` overrides the
    depth) exported by torch TorchScript at opset 17 for `frames` mel frames."""
    import torch
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    if size not in WHISPER_SIZES:
        raise ValueError(f"unknown Whisper size {size!r}; known: {list(WHISPER_SIZES)}")
    if frames % 2:
        raise ValueError(f"frames must be even (the second conv halves it), got {frames}")
    d = WHISPER_SIZES[size]
    cfg = WhisperConfig(d_model=d.d_model, encoder_attention_heads=d.heads,
                        encoder_ffn_dim=d.ffn, encoder_layers=layers or d.layers,
                        num_mel_bins=d.mels, max_source_positions=frames // 2)
    torch.manual_seed(0)

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = WhisperEncoder(cfg)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.enc(x).last_hidden_state

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Encoder().eval(), (torch.zeros(1, d.mels, frames),), str(path),
                          input_names=["input_features"], output_names=["last_hidden_state"],
                          opset_version=17, dynamo=False)
    return path


def measure_size(size: str, layers: int | None = None, frames: int = WINDOW_FRAMES,
                 workdir: Path | None = None) -> SizeRow:
    """Partition (cost model on) and compile (default quantization: dynamic, no
    calibration) one size; the program is not run."""
    import onnx

    from ..compile.api import CompileOptions, compile_plan
    from ..cost import projected_npu_time
    from ..partition import partition_model

    n_layers = layers or WHISPER_SIZES[size].layers
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        path = export_encoder(size, Path(tmp) / f"{size}.onnx", n_layers, frames)
        model = onnx.load(str(path))
    plan = partition_model(model, model_name=f"whisper-{size}-encoder")
    compile_plan(model, plan, CompileOptions(quantization="dynamic", measure_sqnr=False))
    proj = projected_npu_time(plan)
    launches = plan.launches_per_inference
    return SizeRow(size=size, layers=n_layers, d_model=WHISPER_SIZES[size].d_model,
                   share=plan.npu_mac_share,
                   npu_regions=sum(r.placement == "npu" for r in plan.regions),
                   launches=launches, launches_per_layer=launches / n_layers,
                   projected_npu_ms=proj.npu_s * 1e3, projected_cpu_ms=proj.cpu_s * 1e3,
                   fallbacks=list(plan.fallbacks))


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sizes", help="Whisper encoders of every size: placement, launches "
                                     "and projected NPU time per window (cost model)")
    p.add_argument("--size", action="append", choices=list(WHISPER_SIZES),
                   help="sizes to measure (repeatable; default: all)")
    p.add_argument("--layers", type=int, default=None,
                   help="layers per encoder (default: the published depth)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    rows = [measure_size(s, args.layers) for s in (args.size or list(WHISPER_SIZES))]
    if args.json:
        print(json.dumps({"rows": [asdict(r) for r in rows],
                          "note": "projected times come from the cost model, not an NPU"}))
        return 0
    print("Whisper encoders (random init, 30 s window; projected ms: cost model, not measured)")
    print(f"{'size':<16}{'layers':>7}{'share':>8}{'regions':>9}{'launches':>10}"
          f"{'/layer':>8}{'NPU ms':>9}{'CPU ms':>9}")
    for r in rows:
        print(f"{r.size:<16}{r.layers:>7}{r.share:>8.1%}{r.npu_regions:>9}{r.launches:>10}"
              f"{r.launches_per_layer:>8.1f}{r.projected_npu_ms:>9.2f}{r.projected_cpu_ms:>9.2f}")
        for f in r.fallbacks[:3]:
            print(f"    fallback: {f}")
    return 0
