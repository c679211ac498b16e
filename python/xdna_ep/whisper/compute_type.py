"""faster-whisper's compute_type, given its meaning for the part that runs on the CPU.

NPU regions (and the emulator that reproduces them) always compute INT8; what
compute_type chooses is how the nodes xdna-ep leaves on ONNX Runtime's CPU
provider run (for Whisper, chiefly the per-token decoder, which the cost model
keeps off the NPU):

  int8, int8_float32, int8_float16, int8_bfloat16
      MatMul/Gemm with constant weights in ONNX Runtime dynamic INT8
      (onnxruntime.quantization.quantize_dynamic; provider option
      cpu_quantization=dynamic_int8). The float part is computed as float32:
      ONNX Runtime's CPU provider has no float16/bfloat16 kernels to speak of.
  float32, float16, bfloat16
      FP32 on the CPU (float16 and bfloat16 are computed as float32).
  default, auto
      int8 on the npu/emulator/auto devices (measured: faster and as accurate on
      the bundled clips, docs/WHISPER.md); float32 on device "cpu", which stays
      the FP32 reference unless a compute type asks otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

INT8_TYPES = ("int8", "int8_float32", "int8_float16", "int8_bfloat16")
FLOAT_TYPES = ("float32", "float16", "bfloat16")
DEFAULT_TYPES = ("default", "auto")
COMPUTE_TYPES = DEFAULT_TYPES + INT8_TYPES + FLOAT_TYPES
# faster-whisper/CTranslate2 types we do not implement (an error that says so)
NOT_IMPLEMENTED = ("int16",)


@dataclass(frozen=True)
class ComputeType:
    """A compute_type resolved for one device."""

    requested: str  # as the caller spelled it (lower case)
    cpu_int8: bool  # CPU MatMul/Gemm in ONNX Runtime dynamic INT8

    @property
    def name(self) -> str:
        """What ran on the CPU, in faster-whisper's spelling: int8 or float32."""
        return "int8" if self.cpu_int8 else "float32"

    def describe(self) -> str:
        """One line for reports: the request and what it meant."""
        how = ("CPU MatMul/Gemm in ONNX Runtime dynamic INT8" if self.cpu_int8
               else "CPU nodes in FP32")
        return f"compute_type {self.requested} -> {self.name} ({how})"


def resolve(compute_type: str, device: str) -> ComputeType:
    """`compute_type` for `device` ("auto", "npu", "emulator" or "cpu").

    Raises ValueError for an unknown name (listing the choices) and
    NotImplementedError for a faster-whisper type xdna-ep does not implement."""
    if not isinstance(compute_type, str):
        raise ValueError(f"compute_type must be a string, one of {', '.join(COMPUTE_TYPES)}; "
                         f"got {compute_type!r}")
    key = compute_type.strip().lower()
    if key in NOT_IMPLEMENTED:
        raise NotImplementedError(f"compute_type {compute_type!r} is not implemented by "
                                  f"xdna-ep (choices: {', '.join(COMPUTE_TYPES)})")
    if key not in COMPUTE_TYPES:
        raise ValueError(f"unknown compute_type {compute_type!r} (choices: "
                         f"{', '.join(COMPUTE_TYPES)})")
    if key in DEFAULT_TYPES:
        return ComputeType(key, device != "cpu")
    return ComputeType(key, key in INT8_TYPES)
