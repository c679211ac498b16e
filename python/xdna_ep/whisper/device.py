"""What `--device auto` runs on when there is no NPU, decided by measurement.

Without an NPU the INT8 regions run on the bit-exact emulator (in the plugin
library), which costs a little more to start than ONNX Runtime's FP32 CPU path
and a little less per second of audio (INT8 encoder kernels; the decoder runs on
the CPU in both). Measured with `python -m xdna_ep bench whisper` on the bundled
tiny.en, warm, on the quiet 2-core development machine (AMD EPYC, AVX-512 VNNI), beam 1:

    warm `xdna-ep transcribe --sample` (7.1 s clip), median of 3 whole processes:
        emulator 2.83 s, cpu 2.04 s
    seconds per audio second (RTF, five LibriVox clips, 24.7 s):
        emulator 0.124, cpu 0.137

The emulator therefore catches up after 7.1 + (2.83 - 2.04) / (0.137 - 0.124)
= 68 s of audio. Below BREAK_EVEN_AUDIO_S the CLI's auto runs the CPU path; at
or above it (and when the length is unknown, e.g. stdin) the emulator. The
Python API's WhisperModel(device="auto") does not know the audio when it loads
and keeps the provider's choice (the emulator). docs/WHISPER.md has the table.
"""

from __future__ import annotations

from dataclasses import dataclass

BREAK_EVEN_AUDIO_S = 68.0


@dataclass(frozen=True)
class AutoChoice:
    device: str  # what to load: "auto" (the NPU is there), "emulator" or "cpu"
    line: str  # one line for stderr: which device and why


def choose_auto(total_audio_s: float | None) -> AutoChoice:
    """The device for `--device auto` given the audio to transcribe (None: unknown)."""
    from ..runtime import select_device

    choice = select_device("auto", "allow")
    if choice.name == "npu":
        return AutoChoice("auto", "device auto -> npu: an XDNA NPU is present")
    why = "no XDNA NPU found"
    if total_audio_s is not None and total_audio_s < BREAK_EVEN_AUDIO_S:
        return AutoChoice("cpu", f"device auto -> cpu: {why}, and for {total_audio_s:.0f} s of "
                          "audio the CPU FP32 path finishes first (the emulator's start-up "
                          f"pays back after ~{BREAK_EVEN_AUDIO_S:.0f} s; docs/WHISPER.md)")
    amount = "audio of unknown length" if total_audio_s is None else \
        f"{total_audio_s:.0f} s of audio"
    return AutoChoice("emulator", f"device auto -> emulator: {why}; for {amount} the INT8 "
                      "emulator on the CPU is faster overall than the FP32 CPU path "
                      "(docs/WHISPER.md)")
