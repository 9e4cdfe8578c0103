"""Face stack: RetinaFace detection, 5-point alignment, parsing masks and paste-back.

The modules here are a component library used by the enhancer backend, SadTalker preprocessing and
the viseme animator. They load the official facexlib/GFPGAN checkpoints unchanged and import torch
and OpenCV only inside functions, so importing this package is cheap.
"""
