"""Subprocess worker: runs audio fuzz cases listed in a JSON file (see runner.py).

    python -m fuzz.audio_worker cases.json

cases.json: [{"name", "path", "expect", "speech", "seconds", "lossy"}]; prints one result line per
case ({"name", "load", "stream", "transcribe", "problems"}), then {"done": true}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from xdna_ep.whisper.model import bundled_checkpoint
from xdna_ep.whisper.tokenizer import WhisperTokenizer

from .audio_cases import AudioCase
from .audio_check import check_case
from .runner import emit


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    ckpt = bundled_checkpoint()
    tok = WhisperTokenizer.from_files(ckpt / "tokenizer.json", ckpt / "config.json")
    for item in spec:
        case = AudioCase(item["name"], Path(item["path"]), item["expect"],
                         speech=bool(item.get("speech")), seconds=item.get("seconds"),
                         lossy=bool(item.get("lossy")))
        emit(check_case(case, tok).as_dict())
    emit({"done": True})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
