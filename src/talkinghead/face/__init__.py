"""The face wing: everything talkinghead knows about faces, in one place.

Animators and the enhancer use only this API.

==========================  ===============================================================================
module                      what it holds
==========================  ===============================================================================
:mod:`.selection`           :func:`select_face` (the multiple-faces / minimum-size policy), ``MIN_FACE_PIXELS``
:mod:`.detection`           :func:`find_faces`: full/short-range, padded, contrast-normalised and tiled passes
                            over any detector
:mod:`.mesh`                the 478-point mesh topology, the :class:`MeshBackend` protocol, :func:`mesh_backend`
:mod:`.mediapipe_mesh`      the mediapipe backend (the only module that imports mediapipe)
:mod:`.litert_mesh`         the LiteRT backend (MediaPipe's models without mediapipe)
:mod:`.blazeface`           numpy pre/post-processing of those models (anchors, weighted NMS, rotated ROIs)
:mod:`.landmarks`           :class:`MeshLandmarks` (faces + mesh), :class:`LandmarkSource` (68 points),
                            :class:`Mesh68Landmarks`, ``MEDIAPIPE_TO_68``
:mod:`.awing`               RetinaFace + AWing FAN 68-point landmarks (upstream SadTalker's path)
:mod:`.detector`            RetinaFace detector (:class:`FaceDetector`), facexlib-compatible
:mod:`.retinaface`          the RetinaFace network
:mod:`.align`               5-point FFHQ alignment (template, similarity, warp)
:mod:`.paste`               the one paste-back: affine (reference modes, :class:`FastPaster`) and box
                            (:class:`BoxPaster`)
:mod:`.parsenet`            ParseNet face parsing
:mod:`.gfpgan`              the GFPGAN v1.4 restoration network
:mod:`.checkpoints`         checkpoint loading shared by the face networks
:mod:`.quiet`               native (mediapipe/TFLite/absl) log lines routed to :mod:`logging`
==========================  ===============================================================================

Torch, OpenCV, mediapipe and LiteRT are imported only inside functions or by the model modules
(``retinaface``, ``awing``, ``parsenet``, ``gfpgan``, ``checkpoints``), so importing this package is cheap.
The names below are loaded lazily on first access.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "select_face": "selection",
    "MIN_FACE_PIXELS": "selection",
    "find_faces": "detection",
    "MeshBackend": "mesh",
    "mesh_backend": "mesh",
    "MESH_BACKENDS": "mesh",
    "MeshLandmarks": "landmarks",
    "Mesh68Landmarks": "landmarks",
    "LandmarkSource": "landmarks",
    "MEDIAPIPE_TO_68": "landmarks",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
