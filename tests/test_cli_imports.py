"""`xdna-ep transcribe` imports only what transcription uses.

A real transcription of a bundled sample runs in a fresh interpreter; at its
end sys.modules must hold neither torch nor transformers (seconds per start)
nor the other sub-commands' modules and their heavy dependencies (bench: ~1 s
of onnx and onnxruntime.quantization; report: rich and jinja2). The sub-command
named on the command line is the only one whose module is imported.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from xdna_ep.cli import COMMANDS, build_parser, command_of
from xdna_ep.whisper.samples import list_samples

# never on the transcribe path (the first two: on no run path at all)
NEVER = ("torch", "transformers", "xdna_ep.bench", "xdna_ep.report", "xdna_ep.selftest",
         "xdna_ep.ort.compile_cli", "rich", "jinja2", "scipy", "ray", "optimum",
         "onnxruntime_extensions", "silero_vad")
# the compiler: only when NPU regions are compiled (not for --device cpu, nor for
# auto choosing the CPU path for a short clip on a machine without an NPU)
COMPILER = ("onnx", "onnx.reference", "onnxruntime.quantization", "xdna_ep.compile.api",
            "xdna_ep.passes", "xdna_ep.capability")

PROBE = r"""
import json, sys
from xdna_ep.cli import main
rc = main({argv!r})
watch = {watch!r}
print(json.dumps({{"rc": rc, "loaded": [m for m in watch if m in sys.modules]}}),
      file=sys.stderr)
"""


def _run(argv: list[str]) -> tuple[dict, str, str]:
    code = PROBE.format(argv=argv, watch=list(NEVER + COMPILER))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stderr.strip().splitlines()[-1])
    return doc, out.stdout, out.stderr


@pytest.mark.parametrize("extra, uses", [
    ([], []),
    (["--vad_filter"], []),
    (["--vad_filter", "--word_timestamps"], ["onnx"]),  # the aligner edits the decoder graph
])
def test_transcribe_cpu_imports_nothing_it_does_not_use(extra, uses):
    clip = str(list_samples()[0].audio)
    doc, stdout, _ = _run(["transcribe", "--device", "cpu", clip, *extra])
    assert doc["rc"] == 0
    assert "Dashwood" in stdout  # the transcription really ran
    assert doc["loaded"] == uses


def test_transcribe_auto_on_a_short_clip_without_npu_imports_no_compiler():
    clip = str(list_samples()[0].audio)
    doc, stdout, stderr = _run(["transcribe", clip])
    assert doc["rc"] == 0 and "Dashwood" in stdout
    assert [m for m in doc["loaded"] if m in NEVER] == []
    if "device auto -> cpu" in stderr:  # no NPU here (CI): auto runs the CPU path
        assert doc["loaded"] == []
    else:  # an NPU: the compiler is needed, the rest still is not
        assert "device auto -> npu" in stderr


def test_only_the_named_sub_command_is_imported():
    assert command_of(["transcribe", "a.wav", "--device", "cpu"]) == "transcribe"
    assert command_of(["--version"]) is None and command_of([]) is None
    assert command_of(["no-such-command"]) is None and command_of(["-h", "transcribe"]) is None
    code = ("import sys; from xdna_ep.cli import build_parser; "
            "build_parser('devices'); print(sorted(m for m in sys.modules "
            "if m.startswith('xdna_ep.') and m.endswith('cli')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "['xdna_ep.cli', 'xdna_ep.runtime.cli']"


def test_the_full_parser_still_lists_every_sub_command(capsys):
    parser = build_parser()
    assert set(parser._defaults["_subparsers"]) == set(COMMANDS)
    one = build_parser("transcribe")
    assert set(one._defaults["_subparsers"]) == {"transcribe"}
    with pytest.raises(SystemExit):
        build_parser(command_of(["--help"])).parse_args(["--help"])
    help_text = capsys.readouterr().out
    assert all(name in help_text for name in COMMANDS)
