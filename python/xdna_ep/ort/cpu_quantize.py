"""The CPU remainder of a model in ONNX Runtime's dynamic INT8 (provider option
cpu_quantization=dynamic_int8).

Why: the nodes xdna-ep leaves on CPUExecutionProvider run FP32 otherwise. For
Whisper that is the whole per-token decoder (decoder_with_past: the cost model
keeps it off the NPU), which is most of a transcription's time on the host; a
faster-whisper user who asks for compute_type="int8" expects the CPU part to run
int8 GEMMs. The transform is onnxruntime.quantization.quantize_dynamic, ONNX
Runtime's own library (MatMul -> DynamicQuantizeLinear + MatMulInteger, INT8
per-tensor weights), the same transform an ORT user applies by hand and the one
`bench whisper`'s onnxruntime-cpu-int8 engine measures against: only MatMul/Gemm
whose weight is a constant (MatMulConstBOnly) are quantized, so XDNA region nodes
and activation x activation products are left as they are.

Quantizing takes seconds (about 2.4 s for the tiny.en decoder), so a model left
wholly on the CPU is quantized once and kept in <cache_dir>/cpu-int8/, keyed by
the model's content, the onnxruntime version and these settings; a compiled
(rewritten) model is quantized before it enters the compiled-model cache, whose
key names the option.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import uuid
from pathlib import Path

import onnx

from .options import CPU_QUANTIZATION

log = logging.getLogger("xdna_ep")

__all__ = ["CPU_QUANTIZATION", "DESCRIPTION", "cached_quantized_file", "quantize_model",
           "quantizable_nodes"]

OP_TYPES = ("MatMul", "Gemm")
CACHE_SUBDIR = "cpu-int8"
# what the plan, the report and the placement line say
DESCRIPTION = ("CPU nodes: MatMul/Gemm with constant weights in ONNX Runtime dynamic INT8 "
               "(onnxruntime.quantization.quantize_dynamic, provider option "
               "cpu_quantization=dynamic_int8)")


def _settings_key() -> str:
    """What changes the quantized bytes besides the model: the library and our call."""
    import onnxruntime

    return f"ort={onnxruntime.__version__};ops={','.join(OP_TYPES)};w=QInt8;constB"


def quantizable_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the MatMul/Gemm nodes whose weight (input 1) is an initializer:
    what quantize_dynamic with MatMulConstBOnly changes (empty: nothing to do)."""
    inits = {t.name for t in model.graph.initializer}
    return [n.name for n in model.graph.node
            if n.op_type in OP_TYPES and len(n.input) > 1 and n.input[1] in inits]


def _drop_ort_quantization_chatter(record: logging.LogRecord) -> bool:
    """False (drop) for the records onnxruntime.quantization's own code logs on the
    root logger while it runs (the pre-processing hint, "Failed to infer data type
    of tensor" for tensors it leaves alone); records from anywhere else pass."""
    return "/onnxruntime/quantization/" not in record.pathname.replace("\\", "/")


def quantize_file(src: Path | onnx.ModelProto, dst: Path) -> None:
    """quantize_dynamic of `src` into `dst` with this module's settings."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # onnxruntime.quantization logs on the root logger at WARNING on every call (a
    # "consider pre-processing" hint, "Failed to infer data type" for tensors it
    # leaves alone): the transform is deliberate and only MatMul/Gemm weights are
    # quantized, so its records are dropped. A filter on the root logger (not a level
    # change) keeps every other record, from any thread, reaching the user.
    root = logging.getLogger()
    root.addFilter(_drop_ort_quantization_chatter)
    try:
        quantize_dynamic(src, dst, op_types_to_quantize=list(OP_TYPES),
                         weight_type=QuantType.QInt8,
                         extra_options={"MatMulConstBOnly": True})
    finally:
        root.removeFilter(_drop_ort_quantization_chatter)


def quantize_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` (e.g. a rewritten model with region nodes) with its CPU MatMul/Gemm
    in dynamic INT8; returned unchanged when it has none."""
    if not quantizable_nodes(model):
        return model
    with tempfile.TemporaryDirectory(prefix="xdna-ep-int8-") as tmp:
        out = Path(tmp) / "model.onnx"
        quantize_file(model, out)
        return onnx.load(str(out))


def cached_quantized_file(src: str | os.PathLike[str] | bytes, model_digest: str,
                          cache_dir: Path) -> Path:
    """The user's model (path or bytes, content digest `model_digest`) with its
    MatMul/Gemm in dynamic INT8, as a file under `cache_dir` (made on a miss,
    written to a temporary name and renamed, so readers never see half a file)."""
    key = hashlib.sha256(f"{model_digest}|{_settings_key()}".encode()).hexdigest()[:32]
    folder = Path(cache_dir) / CACHE_SUBDIR
    dst = folder / f"{key}.onnx"
    if dst.is_file():
        return dst
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{key}.{uuid.uuid4().hex}.tmp.onnx"
    try:
        if isinstance(src, bytes):
            quantize_file(onnx.load_model_from_string(src), tmp)
        else:
            quantize_file(Path(src), tmp)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("xdna-ep: CPU MatMul/Gemm quantized to dynamic INT8 once: %s", dst)
    return dst
