"""`xdna-ep transcribe`: openai-whisper spellings, checks before the model loads,
separable stdout, stdin, and one-line errors that keep earlier outputs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from xdna_ep.cli import main
from xdna_ep.whisper import api
from xdna_ep.whisper.samples import list_samples


@pytest.fixture
def no_model_load(monkeypatch):
    """Any attempt to load the model fails the test: errors must come first."""
    def refuse(*_a, **_k):
        raise AssertionError("the model was loaded before the input/option error")
    monkeypatch.setattr(api.WhisperModel, "__init__", refuse)


@pytest.mark.parametrize("argv, words", [
    (["missing.wav"], "not found"),
    (["{tmp}"], "is a directory"),
    (["{bad}"], "cannot read"),
    (["{empty}"], "no audio samples"),
    (["{clip}", "--language", "fr"], "English-only"),
    (["{clip}", "--language", "French"], "English-only"),
    (["{clip}", "--task", "translate"], "multilingual"),
    (["{clip}", "--language", "Klingon"], "unknown language"),
    (["{clip}", "--output_dir", "{file}"], "not a directory"),
    (["-", "-"], "only once"),
    (["{clip}", "--beam_size", "0"], ">= 1"),
    (["{clip}", "--temperature", "3"], "within [0, 1]"),
    ([], "give audio files"),
])
def test_errors_come_before_the_model_loads(tmp_path, capsys, no_model_load, argv, words):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 1), np.float32), 16000)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    subs = {"{tmp}": str(tmp_path), "{bad}": str(bad), "{empty}": str(empty),
            "{clip}": str(list_samples()[1].audio), "{file}": str(a_file)}
    rc = main(["transcribe", *[subs.get(a, a) for a in argv]])
    err = capsys.readouterr().err
    assert rc == 2 and words in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_openai_whisper_spellings_parse(capsys):
    from xdna_ep.cli import build_parser

    args = build_parser().parse_args(
        ["transcribe", "a.wav", "--output_format", "tsv", "--output_dir", "out",
         "--beam_size", "5", "--best_of", "3", "--word_timestamps", "False",
         "--initial_prompt", "Dashwood.", "--temperature", "0.2",
         "--condition_on_previous_text", "False", "--vad_filter", "False",
         "--no_speech_threshold", "0.5", "--logprob_threshold", "None"])
    assert (args.format, args.output_dir, args.beam_size, args.best_of) == ("tsv", "out", 5, 3)
    assert args.word_timestamps is False and args.condition_on_previous_text is False
    assert args.initial_prompt == "Dashwood." and args.logprob_threshold is None
    short = build_parser().parse_args(["transcribe", "a.wav", "-f", "json", "-o", "d"])
    assert (short.format, short.output_dir) == ("json", "d")
    with pytest.raises(SystemExit) as exc:  # unknown options: the sub-command's usage
        main(["transcribe", "a.wav", "--no_such_option"])
    assert exc.value.code == 2
    assert "xdna-ep transcribe: error: unrecognized arguments" in capsys.readouterr().err


@pytest.mark.parametrize("argv, files, vad", [
    (["--vad_filter", "-"], ["-"], True),
    (["--vad_filter", "True", "{a}"], ["{a}"], True),
    (["--vad_filter", "{a}"], ["{a}"], True),
    (["--vad_filter", "false", "{a}"], ["{a}"], False),
    (["--vad-filter", "{a}", "-"], ["{a}", "-"], True),
    (["{a}", "--vad_filter", "-"], ["{a}", "-"], True),
    (["--vad_filter"], [], True),
])
def test_boolean_options_never_take_an_input_as_their_value(tmp_path, argv, files, vad):
    """`cat a.wav | xdna-ep transcribe --vad_filter -`: the '-' (or a file) after a
    boolean option is an input, not the option's value; True/False still are."""
    from xdna_ep.cli import build_parser

    a = tmp_path / "a.wav"
    sf.write(a, np.zeros((1600, 1), np.float32), 16000)
    subs = {"{a}": str(a)}
    args = build_parser().parse_args(["transcribe", *[subs.get(x, x) for x in argv]])
    assert args.files == [subs.get(x, x) for x in files] and args.vad_filter is vad
    assert args.word_timestamps is False and args.condition_on_previous_text is True
    args = build_parser().parse_args(["transcribe", "--word_timestamps", "-",
                                      "--condition_on_previous_text", "no", str(a)])
    assert args.files == ["-", str(a)] and args.word_timestamps is True
    assert args.condition_on_previous_text is False and args.vad_filter is False


@pytest.mark.parametrize("option", ["--vad_filter", "--word_timestamps",
                                    "--condition_on_previous_text"])
def test_boolean_option_with_another_value_is_a_usage_error(capsys, no_model_load, option):
    with pytest.raises(SystemExit) as exc:
        main(["transcribe", option, "maybe"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert (f"xdna-ep transcribe: error: argument {option.replace('_', '-')}/{option}: "
            f"expected True or False (or no value), got 'maybe'") in err, err
    assert "Traceback" not in err


def _cli(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "xdna_ep", "transcribe", "--device", "cpu",
                           *args], capture_output=True, timeout=600, stdin=stdin)


@pytest.mark.slow
def test_several_files_stdin_and_a_failure_keep_outputs(tmp_path):
    s = list_samples()
    one, two = s[5].audio, s[6].audio  # short "cards" clips
    truncated = tmp_path / "truncated.flac"  # a valid header, then the data stops
    truncated.write_bytes(s[0].audio.read_bytes()[:3000])
    with two.open("rb") as stdin:
        proc = _cli(str(one), "-", "-f", "json", stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    docs = [json.loads(line) for line in lines]  # JSON Lines: one document per file
    assert len(docs) == 2 and all(d["text"] for d in docs)
    err = proc.stderr.decode()
    assert "model loaded in" in err and "RTF" in err and "stdin:" in err
    assert "\r" not in err  # no progress bar when stderr is not a terminal

    proc = _cli(str(one), str(two), "--output_format", "txt")
    out = proc.stdout.decode()
    assert out.count("==> ") == 2 and out.index(one.name) < out.index(two.name)

    out_dir = tmp_path / "out"
    proc = _cli(str(one), str(truncated), str(two), "-o", str(out_dir), "-f", "tsv")
    err = proc.stderr.decode()
    assert proc.returncode == 1  # the truncated file failed, the others were written
    assert sorted(p.name for p in out_dir.iterdir()) == sorted([f"{one.stem}.tsv",
                                                                f"{two.stem}.tsv"])
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and "truncated.flac" in errors[0] and "corrupt" in errors[0]
    assert "Traceback" not in err
    assert (out_dir / f"{one.stem}.tsv").read_text().startswith("start\tend\ttext\n")


def test_device_auto_without_npu_follows_the_measured_break_even():
    from xdna_ep.whisper.device import BREAK_EVEN_AUDIO_S, choose_auto

    short = choose_auto(7.1)  # this machine and CI have no NPU
    assert short.device == "cpu" and "no XDNA NPU" in short.line and "7 s" in short.line
    long = choose_auto(BREAK_EVEN_AUDIO_S + 1)
    assert long.device == "emulator" and "no XDNA NPU" in long.line
    unknown = choose_auto(None)  # stdin: length unknown
    assert unknown.device == "emulator" and "unknown length" in unknown.line
    assert all("\n" not in c.line for c in (short, long, unknown))


@pytest.mark.slow
def test_vad_filter_then_stdin_or_a_file(tmp_path):
    """`--vad_filter -` reads stdin with the VAD on (3 s of leading silence are cut),
    `--vad_filter a.wav` reads the file."""
    clip, rate = sf.read(list_samples()[6].audio, dtype="float32")
    padded = tmp_path / "padded.wav"
    sf.write(padded, np.concatenate([np.zeros(3 * rate, np.float32), clip]), rate)
    with padded.open("rb") as stdin:
        proc = _cli("-f", "json", "--vad_filter", "-", stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["text"] and doc["duration"] == pytest.approx(3 + len(clip) / rate, abs=0.01)
    assert doc["duration_after_vad"] < doc["duration"] - 2.0  # the silence was filtered out
    assert "stdin:" in proc.stderr.decode()

    proc = _cli("-f", "json", "--vad_filter", str(padded))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["duration_after_vad"] == doc["duration_after_vad"]
    assert "padded.wav:" in proc.stderr.decode()
