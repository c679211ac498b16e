"""One Whisper encoder window end to end, every region call checked.

The window runs through the xdna-ep ONNX Runtime session on the emulator in the
plugin library (the same compiled regions a user's session runs). Each region
program is also loaded on the `other` device (the NPU for `--device npu`; the
kernels' numpy references for `--device emulator`); every region call, seen
through a region tap (ort/taps.py), is replayed there with the same inputs and
its outputs compared byte for byte. The plugin's outputs
feed the rest of the window, so one mismatch is reported where it happens, not
smeared over later layers.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

from ..ort.taps import RegionCall
from .compare import first_difference
from .runner import EncoderResult, seeded_mel

FRAMES = 3000


class _Twin:
    """Every region call of the session (a region tap, ort/taps.py), replayed on the
    other device with the same inputs and compared with the plugin's outputs."""

    def __init__(self, other: Any, result: EncoderResult, tally: list[float]) -> None:
        self.other, self.result = other, result
        self.tally = tally    # [seconds on `other`]
        self.provider: Any = None  # the session's provider core (region name -> program)
        self._loaded: dict[int, Any] = {}

    def __call__(self, call: RegionCall) -> None:
        region, program = self.provider.region_of(call.region)
        t0 = time.perf_counter()
        try:
            loaded = self._loaded.get(region)
            if loaded is None:
                loaded = self._loaded[region] = self.other.load(program)
            got = loaded.run(call.inputs)
        except Exception as exc:  # noqa: BLE001 - recorded; the window goes on
            if self.result.status == "pass":
                self.result.status = "error"
                self.result.error = f"region {region}: {type(exc).__name__}: {exc}"
            return
        self.tally[0] += time.perf_counter() - t0
        self.result.calls += 1
        want = call.outputs
        diff = first_difference(want, got, list(want))
        if diff is not None and self.result.status == "pass":
            self.result.status = "fail"
            self.result.difference = f"region {region}: {diff}"


def _session_class(twin: _Twin) -> type:
    from ..ort.session import InferenceSession

    class TwinSession(InferenceSession):
        def _xdna_on_region_call(self):  # type: ignore[no-untyped-def]
            twin.provider = self._xdna_provider_core
            return twin

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
        twin = _Twin(other, result, tally)
        session_cls = _session_class(twin)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            sess = session_cls(str(path), providers=["XDNAExecutionProvider",
                                                     "CPUExecutionProvider"],
                               provider_options=[{"device": "emulator",
                                                  "quantization": "dynamic",
                                                  "fallback": "error"}, {}])
        result.regions = len(twin.provider.region_programs)
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
