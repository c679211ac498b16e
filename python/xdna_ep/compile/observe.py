"""FP32 values of chosen intermediate tensors, by running the model with ORT.

The FP32 subgraph of a region, fed with the region inputs that the FP32
model produces, outputs exactly the FP32 model's values of the region
outputs; so one CPU run of the whole model with those tensors added as graph
outputs gives both the program's inputs and its reference outputs for every
region at once (cheaper than extracting and running each subgraph).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import helper

from ..quantize.calibration import cpu_session


def observe(model: onnx.ModelProto, tensors: Sequence[str],
            samples: Sequence[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """Per sample, name -> float value of each of `tensors` (graph inputs read from the feed)."""
    graph_inputs = {i.name for i in model.graph.input}
    wanted = [t for t in dict.fromkeys(tensors) if t not in graph_inputs]
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for t in wanted:
        if t not in have:
            m.graph.output.append(helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None))
    with cpu_session(m, "xdna_obs_") as sess:
        feed_names = [i.name for i in sess.get_inputs()]
        result = []
        for s in samples:
            vals = sess.run(wanted, {k: s[k] for k in feed_names}) if wanted else []
            d = dict(zip(wanted, vals, strict=True))
            for t in tensors:
                if t in graph_inputs:
                    d[t] = np.asarray(s[t])
            result.append(d)
    return result


def sqnr_db(reference: Sequence[np.ndarray], actual: Sequence[np.ndarray]) -> float:
    """10 log10(sum ref^2 / sum (ref - actual)^2) over all pairs; inf when identical."""
    sig = 0.0
    noise = 0.0
    for r, a in zip(reference, actual, strict=True):
        r64 = np.asarray(r, np.float64)
        a64 = np.asarray(a, np.float64)
        if r64.shape != a64.shape:
            raise ValueError(f"sqnr: shapes differ {r64.shape} vs {a64.shape}")
        sig += float(np.sum(r64 * r64))
        noise += float(np.sum((r64 - a64) ** 2))
    if not np.isfinite(noise):
        return float("-inf")
    if noise == 0.0:
        return float("inf")
    if sig == 0.0:
        return float("-inf")
    return 10.0 * float(np.log10(sig / noise))
