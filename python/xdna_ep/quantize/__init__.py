"""quantize stage of xdna-ep: INT8 weights per output channel and activation
scales, from calibration data (onnxruntime's calibrators) or dynamic."""

from .calibration import (
    CalibrationError,
    ListCalibrationReader,
    NpzCalibrationReader,
    Tap,
    collect_ranges,
    materialize,
    method_name,
    scale_from_range,
)
from .region import QuantizedRegion, quantize_constants, quantize_region
from .weights import WeightError, check_float_weight, quantize_per_channel

__all__ = [
    "CalibrationError", "ListCalibrationReader", "NpzCalibrationReader", "QuantizedRegion",
    "Tap", "WeightError", "check_float_weight", "collect_ranges", "materialize", "method_name",
    "quantize_constants", "quantize_per_channel", "quantize_region", "scale_from_range",
]
