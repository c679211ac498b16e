"""Ray batch transcription on a local Ray instance: one model per actor, JSON Lines,
every input accounted for (failures included)."""

from __future__ import annotations

import json

import pytest

from xdna_ep.whisper.batch import BatchOptions, expand_inputs, run_batch
from xdna_ep.whisper.samples import list_samples


def test_list_files_expand_relative_to_their_folder(tmp_path):
    (tmp_path / "l.txt").write_text("# corpus\na.wav\n\n/abs/b.flac\n")
    assert expand_inputs([str(tmp_path / "l.txt"), "c.wav"]) == [
        str(tmp_path / "a.wav"), "/abs/b.flac", "c.wav"]
    with pytest.raises(ValueError, match="no audio files"):
        expand_inputs([])


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_batch_on_local_ray_keeps_every_file(tmp_path, local_ray, capsys):
    s = list_samples()
    good = [str(s[5].audio), str(s[6].audio), str(s[1].audio)]
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....WAVEfmt nonsense")
    missing = str(tmp_path / "missing.flac")
    listing = tmp_path / "corpus.txt"
    listing.write_text("\n".join([good[0], str(corrupt), good[1], missing]) + "\n")
    results = list(run_batch(expand_inputs([str(listing), good[2]]),
                             BatchOptions(device="cpu", beam_size=1), actors=2))
    by_file = {r["file"]: r for r in results}
    assert len(results) == 5 and set(by_file) == {*good, str(corrupt), missing}
    for f in good:
        assert by_file[f]["ok"] and by_file[f]["text"] and by_file[f]["segments"]
    assert not by_file[str(corrupt)]["ok"] and "corrupt" in by_file[str(corrupt)]["error"]
    assert not by_file[missing]["ok"] and "not found" in by_file[missing]["error"]
    assert "he was not" in by_file[good[2]]["text"].lower()

    # the module entry: JSON Lines on stdout, exit 1 because files failed
    from xdna_ep.whisper.batch import main

    rc = main([good[0], missing, "--device", "cpu", "--beam_size", "1"])
    out = capsys.readouterr()
    lines = [json.loads(x) for x in out.out.splitlines()]
    assert rc == 1 and len(lines) == 2 and sum(r["ok"] for r in lines) == 1
    assert "2 file(s), 1 failed" in out.err
