"""Word timestamps from cross-attention: Whisper's alignment heads and DTW.

Some decoder cross-attention heads (the checkpoint's `alignment_heads`, listed
in generation_config.json) attend to the audio frames a token is spoken in. The
Optimum decoder graph does not output those attention maps, so the decoder is
loaded once more in memory with every cross-attention Softmax added as a graph
output, and run on ONNX Runtime's CPU provider (FP32: one pass per 30 s window,
over the window's whole text at once, which is cheap next to decoding). The
maps of the alignment heads are cut to the window's frames, renormalised,
standardised per head along the tokens, median-filtered along time, averaged
over heads, and aligned to the tokens by dynamic time warping; a word starts
where the path enters its first token and ends where it leaves its last (the
method openai-whisper and faster-whisper describe, written here in numpy).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .formats import Word
from .tokenizer import WhisperTokenizer

TOKENS_PER_SECOND = 50  # one encoder position = 20 ms
MEDIAN_WIDTH = 7  # frames of the median filter along time


def alignment_heads(onnx_dir: Path) -> list[tuple[int, int]]:
    """(layer, head) pairs from generation_config.json (or the CTranslate2 config)."""
    for name in ("generation_config.json", "ct2_config.json"):
        f = Path(onnx_dir) / name
        if f.exists():
            heads = json.loads(f.read_text()).get("alignment_heads")
            if heads:
                return [(int(a), int(b)) for a, b in heads]
    raise NotImplementedError(f"{onnx_dir} lists no alignment_heads: word timestamps need "
                              "them (generation_config.json)")


def dtw_path(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost monotonic path through cost[tokens, frames] (steps: diagonal,
    down, right); returns (token index, frame index) along the path."""
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    step = np.zeros((n + 1, m + 1), dtype=np.int8)  # 0 diagonal, 1 from above, 2 from left
    for i in range(1, n + 1):  # rows in numpy; columns need the previous column's value
        row_prev = acc[i - 1]
        diag = row_prev[:-1]
        up = row_prev[1:]
        c = cost[i - 1]
        cur = acc[i]
        for j in range(1, m + 1):
            best, s = diag[j - 1], 0
            if up[j - 1] < best:
                best, s = up[j - 1], 1
            if cur[j - 1] < best:
                best, s = cur[j - 1], 2
            cur[j] = c[j - 1] + best
            step[i, j] = s
    i, j = n, m
    tokens, frames = [], []
    while i > 0 and j > 0:
        tokens.append(i - 1)
        frames.append(j - 1)
        s = step[i, j]
        if s == 0:
            i, j = i - 1, j - 1
        elif s == 1:
            i -= 1
        else:
            j -= 1
    return np.array(tokens[::-1]), np.array(frames[::-1])


def _median_filter(x: np.ndarray, width: int) -> np.ndarray:
    """Median over a window along the last axis (edges reflected)."""
    pad = width // 2
    if x.shape[-1] <= pad:
        return x
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)], mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=-1)
    return np.median(windows, axis=-1)


def split_words(tok: WhisperTokenizer, tokens: list[int]) -> list[tuple[str, list[int]]]:
    """(word text, its tokens): a new word starts at a token beginning with a space
    (punctuation stays with the word before it)."""
    words: list[tuple[str, list[int]]] = []
    for t in tokens:
        piece = tok.decode([t])
        if not words or piece.startswith(" "):
            words.append((piece, [t]))
        else:
            text, ids = words[-1]
            words[-1] = (text + piece, [*ids, t])
    return words


@dataclass
class CrossAttentionAligner:
    """The decoder with its cross-attention maps as outputs (built once per model)."""

    session: Any
    heads: list[tuple[int, int]]
    outputs: list[str]  # one Softmax output name per decoder layer
    tok: WhisperTokenizer

    @classmethod
    def load(cls, onnx_dir: Path, tok: WhisperTokenizer) -> CrossAttentionAligner:
        import onnx
        import onnxruntime as ort

        heads = alignment_heads(onnx_dir)
        model = onnx.load(str(Path(onnx_dir) / "decoder_model.onnx"))
        layers: dict[int, str] = {}
        for node in model.graph.node:
            if node.op_type == "Softmax" and "encoder_attn" in node.name:
                layer = int(node.name.split("layers.")[1].split("/")[0])
                layers[layer] = node.output[0]
        if not layers:
            raise NotImplementedError("the decoder graph has no recognisable cross-attention "
                                      "Softmax nodes (/layers.N/encoder_attn/Softmax)")
        names = [layers[i] for i in sorted(layers)]
        for name in names:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
        session = ort.InferenceSession(model.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        return cls(session, heads, names, tok)

    def words(self, encoder_states: np.ndarray, sot_sequence: list[int],
              text_tokens: list[int], num_frames: int) -> list[Word]:
        """Words of `text_tokens` (timestamps excluded) with times in seconds from the
        window start; num_frames: mel frames of the window that hold audio."""
        words = split_words(self.tok, text_tokens)
        if not words:
            return []
        tokens = [*sot_sequence, self.tok.no_timestamps, *text_tokens, self.tok.eot]
        feed = {"input_ids": np.array([tokens], dtype=np.int64),
                "encoder_hidden_states": np.ascontiguousarray(encoder_states[:1],
                                                              dtype=np.float32)}
        names = [o.name for o in self.session.get_outputs()]
        out = dict(zip(names, self.session.run(None, feed), strict=True))
        n_pos = max(1, num_frames // 2)
        maps = []
        for layer, head in self.heads:
            att = out[self.outputs[layer]]  # [1, heads, tokens, 1500]
            w = att.reshape(-1, *att.shape[-2:])[head][:, :n_pos].astype(np.float64)
            maps.append(w / np.maximum(w.sum(-1, keepdims=True), 1e-12))
        w = np.stack(maps)  # [heads, tokens, positions]
        w = (w - w.mean(axis=-2, keepdims=True)) / np.maximum(w.std(axis=-2, keepdims=True),
                                                              1e-9)
        w = _median_filter(w, MEDIAN_WIDTH).mean(axis=0)
        # the query at position i predicts token i + 1: the rows that predict the text
        # tokens and the final eot start at <|notimestamps|>'s position
        first = len(sot_sequence)
        matrix = w[first:first + len(text_tokens) + 1]
        token_idx, frame_idx = dtw_path(-matrix)
        jumps = np.diff(token_idx, prepend=-1) > 0
        jump_times = frame_idx[jumps] / TOKENS_PER_SECOND  # entry time of each token (+eot)
        logits = out["logits"][0].astype(np.float64)
        lp = logits - logits.max(-1, keepdims=True)
        probs = np.exp(lp) / np.exp(lp).sum(-1, keepdims=True)
        token_p = [float(probs[first + k, t]) for k, t in enumerate(text_tokens)]
        result, k = [], 0
        for text, ids in words:
            start = float(jump_times[k])
            end = float(jump_times[min(k + len(ids), len(jump_times) - 1)])
            p = float(np.mean(token_p[k:k + len(ids)]))
            result.append(Word(round(start, 3), round(max(end, start), 3), text, p))
            k += len(ids)
        return _clamp_edges(result)


def _clamp_edges(words: list[Word]) -> list[Word]:
    """The path's first (last) token also absorbs silence before (after) the speech:
    a first or last word longer than twice the median word is cut to that length."""
    if len(words) < 2:
        return words
    durations = [w.end - w.start for w in words if w.end > w.start]
    if not durations:
        return words
    longest = 2 * max(float(np.median(durations)), 0.1)
    first, last = words[0], words[-1]
    if first.end - first.start > longest:
        words[0] = Word(round(first.end - longest, 3), first.end, first.word, first.probability)
    if last.end - last.start > longest:
        words[-1] = Word(last.start, round(last.start + longest, 3), last.word,
                         last.probability)
    return words
