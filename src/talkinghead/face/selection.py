"""Choosing the face to animate among detections; shared by every animator."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ConfigError, FaceTooSmallError, MultipleFacesError, NoFaceError
from ..values import Face

#: Faces narrower than this many pixels are refused (too little detail to animate).
MIN_FACE_PIXELS = 48


def select_face(
    faces: Sequence[Face],
    *,
    multiple_faces: str = "largest",
    min_face: int = MIN_FACE_PIXELS,
    what: str = "the portrait",
) -> Face:
    """Pick the face to animate.

    Args:
        faces: detections.
        multiple_faces: ``"largest"`` (default) or ``"refuse"``.
        min_face: smallest acceptable face width and height in pixels.

    Raises:
        NoFaceError: nothing detected.
        MultipleFacesError: several faces and ``multiple_faces="refuse"``.
        FaceTooSmallError: the chosen face is smaller than ``min_face``.
    """
    if multiple_faces not in ("largest", "refuse"):
        raise ConfigError(f"multiple_faces must be 'largest' or 'refuse', got {multiple_faces!r}")
    if not faces:
        raise NoFaceError(
            f"no face was found in {what}; use a well-lit, front-facing photo where the face is clearly visible"
        )
    if len(faces) > 1 and multiple_faces == "refuse":
        raise MultipleFacesError(
            f"{len(faces)} faces were found in {what}; crop it to one person, "
            "or pass multiple_faces='largest' to animate the largest face"
        )
    face = max(faces, key=lambda f: f.area)
    if min(face.width, face.height) < min_face:
        raise FaceTooSmallError(
            f"the face in {what} is only {face.width:.0f}×{face.height:.0f} px; at least {min_face} px is needed. "
            "Use a closer crop or a higher-resolution photo"
        )
    return face
