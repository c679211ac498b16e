from __future__ import annotations

import json

import pytest

from xdna_ep.whisper.formats import Segment, Transcript, render


@pytest.fixture
def transcript() -> Transcript:
    segs = [Segment(0.0, 2.5, " Hello there."), Segment(2.5, 3661.042, " And goodbye.")]
    return Transcript(text="Hello there. And goodbye.", segments=segs, duration=3662.0,
                      wall_time=366.2, device="emulator", npu_mac_share=0.991)


def test_srt(transcript):
    out = render(transcript, "srt")
    assert out.startswith("1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n2\n")
    assert "01:01:01,042" in out


def test_vtt(transcript):
    out = render(transcript, "vtt")
    assert out.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello there.\n")
    assert "01:01:01.042" in out


def test_json_schema(transcript):
    doc = json.loads(render(transcript, "json"))
    assert doc["text"] == "Hello there. And goodbye."
    seg = doc["segments"][1]
    assert (seg["start"], seg["end"], seg["text"]) == (2.5, 3661.042, " And goodbye.")
    assert {"id", "seek", "tokens", "avg_logprob", "no_speech_prob", "compression_ratio",
            "temperature"} <= set(seg) and "words" not in seg
    assert doc["device"] == "emulator"
    assert doc["rtf"] == pytest.approx(0.1)
    assert doc["npu_mac_share"] == pytest.approx(0.991)


def test_tsv(transcript):
    # openai-whisper's layout: integer milliseconds
    assert render(transcript, "tsv") == ("start\tend\ttext\n0\t2500\tHello there.\n"
                                         "2500\t3661042\tAnd goodbye.\n")


def test_json_lines_one_line_per_transcript(transcript):
    from xdna_ep.whisper.formats import to_json_line

    line = to_json_line(transcript)
    assert line.count("\n") == 1 and json.loads(line)["text"] == transcript.text


def test_txt(transcript):
    assert render(transcript, "txt") == "Hello there.\nAnd goodbye.\n"


def test_unknown_format(transcript):
    with pytest.raises(ValueError, match="valid"):
        render(transcript, "docx")
