"""The numpy CTranslate2 model.bin reader and the WhisperSpec -> transformers name mapping,
on small checkpoints written by the tests themselves."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from synthetic.checkpoints import (
    SyntheticWhisper,
    build_variables,
    special_tokens,
    write_synthetic_checkpoint,
)

from xdna_ep.models.ct2_reader import Ct2FormatError, read_ct2_model, write_ct2_model
from xdna_ep.models.whisper_layout import (
    read_ct2_config,
    to_transformers_state_dict,
    whisper_dims,
    whisper_tokens,
)


def _hand_written_file(path: Path) -> None:
    """Bytes laid out by hand from the format description (independent of write_ct2_model)."""

    def s(text: str) -> bytes:
        raw = text.encode() + b"\0"
        return struct.pack("<H", len(raw)) + raw

    w = np.array([[1.5, -2.0], [0.25, 4.0]], dtype="<f2")
    out = struct.pack("<I", 6) + s("WhisperSpec") + struct.pack("<I", 3) + struct.pack("<I", 3)
    out += s("a/weight") + struct.pack("<B", 2) + struct.pack("<II", 2, 2)
    out += struct.pack("<B", 4) + struct.pack("<I", 8) + w.tobytes()
    out += s("a/num_heads") + struct.pack("<B", 0) + struct.pack("<B", 2)
    out += struct.pack("<I", 2) + struct.pack("<h", 6)
    out += s("b/bias") + struct.pack("<B", 1) + struct.pack("<I", 3)
    out += struct.pack("<B", 0) + struct.pack("<I", 12) + np.array([1, 2, 3], "<f4").tobytes()
    out += struct.pack("<I", 1) + s("c/weight") + s("a/weight")
    path.write_bytes(out)


def test_reads_hand_written_file(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    _hand_written_file(path)
    m = read_ct2_model(tmp_path)
    assert (m.binary_version, m.spec_name, m.spec_revision) == (6, "WhisperSpec", 3)
    assert m.variables["a/weight"].dtype == "float16"
    np.testing.assert_array_equal(m.float32("a/weight"), [[1.5, -2.0], [0.25, 4.0]])
    assert m.float32("a/weight").dtype == np.float32
    assert m.scalar("a/num_heads") == 6
    np.testing.assert_array_equal(m.float32("b/bias"), [1, 2, 3])
    # alias resolves to the same data
    np.testing.assert_array_equal(m.float32("c/weight"), m.float32("a/weight"))


@pytest.mark.parametrize("dtype", ["float32", "float16", "int16", "int32", "int8"])
def test_roundtrip_dtypes_and_shapes(tmp_path: Path, dtype: str) -> None:
    rng = np.random.default_rng(3)
    arrays = {
        "x/value": (rng.standard_normal((3, 4, 2)) * 50).astype(dtype),
        "x/scalar": np.array(7, dtype),
        "x/vector": np.arange(5).astype(dtype),
    }
    write_ct2_model(tmp_path / "model.bin", "Spec", arrays)
    m = read_ct2_model(tmp_path / "model.bin")
    for name, arr in arrays.items():
        got = m.raw(name)
        assert got.shape == arr.shape and got.dtype == arr.dtype
        np.testing.assert_array_equal(got, arr)


def test_int8_weights_are_dequantized_per_row(tmp_path: Path) -> None:
    w = np.array([[10, -127, 3], [127, 0, -64]], np.int8)
    scale = np.array([127.0 / 2.0, 127.0 / 0.5], np.float32)
    write_ct2_model(tmp_path / "model.bin", "S", {"l/weight": w, "l/weight_scale": scale})
    m = read_ct2_model(tmp_path / "model.bin")
    expected = w.astype(np.float32) / scale[:, None]
    np.testing.assert_allclose(m.float32("l/weight"), expected, rtol=0, atol=0)
    assert m.float32("l/weight")[0, 1] == pytest.approx(-2.0)


def test_int8_without_scale_is_rejected(tmp_path: Path) -> None:
    write_ct2_model(tmp_path / "model.bin", "S", {"l/weight": np.ones((2, 2), np.int8)})
    with pytest.raises(Ct2FormatError, match="weight_scale"):
        read_ct2_model(tmp_path / "model.bin").float32("l/weight")


def test_truncated_file_gives_clear_error(tmp_path: Path) -> None:
    _hand_written_file(tmp_path / "model.bin")
    data = (tmp_path / "model.bin").read_bytes()
    for cut in (2, 20, 40, len(data) - 30, len(data) - 1):
        (tmp_path / "model.bin").write_bytes(data[:cut])
        with pytest.raises(Ct2FormatError, match="truncated"):
            read_ct2_model(tmp_path / "model.bin")


def test_bad_headers_and_sizes(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(struct.pack("<I", 99) + b"\0" * 16)
    with pytest.raises(Ct2FormatError, match="binary version 99"):
        read_ct2_model(path)
    _hand_written_file(path)
    data = bytearray(path.read_bytes())
    data += b"xx"
    path.write_bytes(bytes(data))
    with pytest.raises(Ct2FormatError, match="trailing"):
        read_ct2_model(path)
    # declared byte count not matching shape x dtype
    write_ct2_model(path, "S", {"v": np.zeros(4, np.float32)})
    data = bytearray(path.read_bytes())
    pos = data.index(b"v\0") + 2 + 1 + 4 + 1  # name, rank, one dim, dtype id
    data[pos : pos + 4] = struct.pack("<I", 12)
    path.write_bytes(bytes(data))
    with pytest.raises(Ct2FormatError, match="declares 12 bytes"):
        read_ct2_model(path)
    # unknown dtype id
    write_ct2_model(path, "S", {"v": np.zeros(4, np.float32)})
    data = bytearray(path.read_bytes())
    data[data.index(b"v\0") + 2 + 1 + 4] = 9
    path.write_bytes(bytes(data))
    with pytest.raises(Ct2FormatError, match="unknown dtype id 9"):
        read_ct2_model(path)


def test_missing_file_and_alias_cycle(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_ct2_model(tmp_path / "nope")
    write_ct2_model(tmp_path / "model.bin", "S", {"v": np.zeros(1, np.float32)},
                    aliases={"a": "b", "b": "a"})
    with pytest.raises(Ct2FormatError, match="cycle"):
        read_ct2_model(tmp_path / "model.bin")


def test_write_rejects_unstorable_dtype(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="variables\\['v'\\]"):
        write_ct2_model(tmp_path / "m.bin", "S", {"v": np.zeros(2, np.float64)})


@pytest.mark.parametrize("multilingual", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float16", "int8"])
def test_whisper_mapping(tmp_path: Path, multilingual: bool, dtype: str) -> None:
    spec = SyntheticWhisper(multilingual=multilingual, dtype=dtype, encoder_layers=2,
                            decoder_layers=1, d_model=8, heads=2, ffn=12,
                            encoder_positions=10, decoder_positions=6)
    write_synthetic_checkpoint(tmp_path, spec)
    master, _ = build_variables(spec)  # float32 values before storage casting
    m = read_ct2_model(tmp_path)
    dims = whisper_dims(m)
    assert (dims.d_model, dims.encoder_layers, dims.decoder_layers) == (8, 2, 1)
    assert (dims.encoder_heads, dims.decoder_heads, dims.encoder_ffn) == (2, 2, 12)
    assert dims.n_mels == 80 and dims.vocab_size == spec.vocab_size
    assert (dims.max_source_positions, dims.max_target_positions) == (10, 6)
    assert dims.multilingual is multilingual

    sd = to_transformers_state_dict(m, dims)
    tol = {"float32": 0, "float16": 2e-3, "int8": 2e-2}[dtype]
    d = 8
    qkv = master["encoder/layer_1/self_attention/linear_0/weight"]
    np.testing.assert_allclose(sd["model.encoder.layers.1.self_attn.q_proj.weight"], qkv[:d],
                               atol=tol * 5)
    np.testing.assert_allclose(sd["model.encoder.layers.1.self_attn.k_proj.weight"],
                               qkv[d : 2 * d], atol=tol * 5)
    np.testing.assert_allclose(sd["model.encoder.layers.1.self_attn.v_proj.weight"],
                               qkv[2 * d :], atol=tol * 5)
    assert "model.encoder.layers.1.self_attn.k_proj.bias" not in sd
    kv = master["decoder/layer_0/attention/linear_1/weight"]
    np.testing.assert_allclose(sd["model.decoder.layers.0.encoder_attn.v_proj.weight"], kv[d:],
                               atol=tol * 5)
    np.testing.assert_allclose(sd["model.decoder.layers.0.encoder_attn.out_proj.bias"],
                               master["decoder/layer_0/attention/linear_2/bias"], atol=tol)
    np.testing.assert_allclose(sd["model.decoder.layers.0.fc2.weight"],
                               master["decoder/layer_0/ffn/linear_1/weight"], atol=tol * 5)
    np.testing.assert_array_equal(sd["proj_out.weight"], sd["model.decoder.embed_tokens.weight"])
    assert all(v.dtype == np.float32 for v in sd.values())
    # every transformers parameter name appears once per layer and nothing else
    per_layer_enc = [k for k in sd if k.startswith("model.encoder.layers.0.")]
    per_layer_dec = [k for k in sd if k.startswith("model.decoder.layers.0.")]
    assert len(per_layer_enc) == 15 and len(per_layer_dec) == 24

    tokens = whisper_tokens(tmp_path / "tokenizer.json", read_ct2_config(tmp_path))
    specials = special_tokens(spec)
    assert tokens.sot == specials["<|startoftranscript|>"]
    assert tokens.eos == specials["<|endoftext|>"]
    assert tokens.no_timestamps == specials["<|notimestamps|>"]
    assert (tokens.lang_to_id.get("<|en|>") is not None) is multilingual


def test_mapping_rejects_other_specs_and_untied_projection(tmp_path: Path) -> None:
    write_ct2_model(tmp_path / "model.bin", "TransformerSpec", {"v": np.zeros(1, np.float32)})
    with pytest.raises(ValueError, match="TransformerSpec"):
        whisper_dims(read_ct2_model(tmp_path))
    spec = SyntheticWhisper(d_model=8, ffn=8, encoder_positions=4, decoder_positions=4)
    variables, _ = build_variables(spec)
    variables["decoder/projection/weight"] = variables["decoder/embeddings/weight"] + 1
    write_ct2_model(tmp_path / "model.bin", "WhisperSpec", variables)
    m = read_ct2_model(tmp_path)
    with pytest.raises(NotImplementedError, match="ties"):
        to_transformers_state_dict(m, whisper_dims(m))
