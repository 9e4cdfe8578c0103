"""ONNX export and onnxruntime execution of talkinghead's networks (SadTalker and the face stack).

- :mod:`.graphs`: which parts are exported, with tensor-only wrappers and example inputs;
- :mod:`.export`: export at opset 20, check against torch, ``manifest.json``;
- :mod:`.runtime`: :class:`OnnxModule` (an onnxruntime session in place of a torch module) and
  :func:`swap_sadtalker`;
- :mod:`.quantize`: int8 (dynamic, static QDQ) and float16 variants.

Needs ``onnx`` and ``onnxruntime`` (``pip install 'talkinghead[onnx]'``); torch is imported by the
submodules, not here. See ``docs/onnx.md``.
"""

__all__ = ["graphs", "export", "runtime", "quantize"]
