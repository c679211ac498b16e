"""One Whisper encoder window end to end, every region call checked.

The window runs through the xdna-ep ONNX Runtime session on the emulator (the
same compiled regions a user's session runs). Each region program is also
loaded on the `other` device (the NPU for `--device npu`; the kernels' numpy
references for `--device emulator`); every region call is replayed there with
the same inputs and its outputs compared byte for byte. The emulator's outputs
feed the rest of the window, so one mismatch is reported where it happens, not
smeared over later layers.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .compare import first_difference
from .runner import EncoderResult, seeded_mel

FRAMES = 3000


class _Twin:
    """A region's emulator program, its twin on the other device, and the check."""

    def __init__(self, inner: Any, other: Any, region: int, result: EncoderResult,
                 tally: list[float]) -> None:
        self.inner, self.other, self.region, self.result = inner, other, region, result
        self.tally = tally    # [seconds on `other`], shared by the window's twins

    def run(self, inputs: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        want = self.inner.run(inputs)
        t0 = time.perf_counter()
        try:
            got = self.other.run({k: np.asarray(v) for k, v in inputs.items()})
        except Exception as exc:  # noqa: BLE001 - recorded; the window goes on
            if self.result.status == "pass":
                self.result.status = "error"
                self.result.error = f"region {self.region}: {type(exc).__name__}: {exc}"
            return want
        self.tally[0] += time.perf_counter() - t0
        self.result.calls += 1
        diff = first_difference(want, got, list(want))
        if diff is not None and self.result.status == "pass":
            self.result.status = "fail"
            self.result.difference = f"region {self.region}: {diff}"
        return want


def _session_class(other: Any, result: EncoderResult, tally: list[float]) -> type:
    from ..ort.provider import XDNAProvider
    from ..ort.session import InferenceSession

    class TwinProvider(XDNAProvider):
        def _load(self, device, model, programs):  # type: ignore[no-untyped-def]
            regions = super()._load(device, model, programs)
            for ref, r in regions.items():
                r.loaded = _Twin(r.loaded, other.load(programs[ref]), r.region, result, tally)
            result.regions = len(regions)
            return regions

    class TwinSession(InferenceSession):
        def _xdna_provider(self, options):  # type: ignore[no-untyped-def]
            return TwinProvider(options)

        def _xdna_runs_natively(self, device: str) -> bool:
            return False  # every region call is replayed in Python (_Twin)

    return TwinSession


def encoder_path(model: str | Path | None) -> Path:
    """encoder_model.onnx of `model` (default: the bundled tiny.en), or the file itself."""
    if model is not None and Path(model).is_file():
        return Path(model)
    from ..whisper.model import resolve_onnx_dir

    return resolve_onnx_dir(model) / "encoder_model.onnx"


def run_encoder_window(other: Any, model: str | Path | None, seed: int = 0, *,
                       other_is_dut: bool = True) -> EncoderResult:
    """The window on the emulator, every region call replayed on `other` (the device
    under test when other_is_dut, else the baseline: the numpy references)."""
    result = EncoderResult(model=str(model) if model is not None else "tiny.en (bundled)")
    tally = [0.0]
    try:
        path = encoder_path(model)
        result.model = str(path)
        session_cls = _session_class(other, result, tally)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            sess = session_cls(str(path), providers=["XDNAExecutionProvider",
                                                     "CPUExecutionProvider"],
                               provider_options=[{"device": "emulator",
                                                  "quantization": "dynamic",
                                                  "fallback": "error"}, {}])
        inp = sess.get_inputs()[0]
        n_mels = inp.shape[1] if isinstance(inp.shape[1], int) else 80
        mel = seeded_mel(n_mels, FRAMES, seed)
        t0 = time.perf_counter()
        sess.run(None, {inp.name: mel})
        other_s = tally[0]
        emulator = time.perf_counter() - t0 - other_s
        result.seconds, result.baseline_seconds = ((other_s, emulator) if other_is_dut
                                                   else (emulator, other_s))
    except Exception as exc:  # noqa: BLE001 - the report says what broke
        result.status, result.error = "error", f"{type(exc).__name__}: {exc}"
        return result
    if result.status == "pass" and result.calls == 0:
        result.status, result.error = "error", "no region of the encoder ran on the device"
    return result
