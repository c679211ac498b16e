"""The bundled real speech (python/xdna_ep/data): provenance sidecars and audio sanity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

DATA = Path(__file__).resolve().parents[1] / "python" / "xdna_ep" / "data"
REQUIRED = ("audio", "reference", "source", "licence", "reference_origin", "source_file",
            "source_sha256", "duration_s", "sample_rate")
SIDECARS = sorted(DATA.glob("*.json"))


def test_there_is_real_speech_with_sidecars() -> None:
    assert len(SIDECARS) >= 1
    assert sorted(p.stem for p in DATA.glob("*.flac")) == [p.stem for p in SIDECARS]
    assert (DATA / "LICENSE-pocketsphinx-testdata.txt").is_file()


@pytest.mark.parametrize("sidecar", SIDECARS, ids=[p.stem for p in SIDECARS])
def test_sidecar_matches_audio(sidecar: Path) -> None:
    meta = json.loads(sidecar.read_text(encoding="utf-8"))
    missing = [k for k in REQUIRED if k not in meta]
    assert not missing, f"{sidecar.name} lacks {missing}"
    audio_path = DATA / meta["audio"]
    assert audio_path.is_file()
    assert audio_path.stat().st_size < 1_000_000
    info = sf.info(str(audio_path))
    assert info.samplerate == meta["sample_rate"] == 16000
    assert info.channels == 1
    assert info.frames / info.samplerate == pytest.approx(meta["duration_s"], abs=1e-3)
    audio, _ = sf.read(audio_path, dtype="float32")
    assert np.isfinite(audio).all()
    rms = float(np.sqrt(np.mean(audio**2)))
    assert rms > 0.005, "clip is (nearly) silent"
    words = meta["reference"].split()
    assert words and all(w.isalpha() and w.islower() for w in words)
    assert len(meta["source_sha256"]) == 64
    assert "published transcription" in meta["reference_origin"]


def test_enough_speech_for_a_long_audio_test() -> None:
    total = sum(json.loads(p.read_text())["duration_s"] for p in SIDECARS)
    assert total > 30.0, "concatenating the bundled clips must exceed one 30 s window"


def test_default_sample_is_the_longest_librivox_clip() -> None:
    from xdna_ep.whisper.samples import bundled_sample, list_samples

    samples = list_samples()
    assert len(samples) == len(SIDECARS)
    first = bundled_sample()
    assert first.audio.name == "librivox_sense_and_sensibility_0870.flac"
    assert first.reference.startswith("and mister john dashwood")
