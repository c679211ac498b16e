"""The one builder of synthetic Whisper-like models for the tests.

- graphs.py: ONNX graphs as Optimum and onnxruntime.transformers export Whisper
  (decomposed and fused layers, decoders, single patterns), and GraphBuilder, the
  graph-building helper every module here uses;
- regions.py: Whisper-shaped graphs together with hand-made Regions, so compile/
  and the runtime are tested without the capability pass;
- checkpoints.py: small random CTranslate2 Whisper checkpoints for the converter.

None of this ships in the xdna_ep package.
"""
