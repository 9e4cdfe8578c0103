"""The exceptions talkinghead raises.

Every error derives from :class:`TalkingHeadError` and carries a message that says what to do.
Errors caused by the caller's input also derive from :class:`ValueError`; a missing optional
dependency also derives from :class:`ImportError`, so generic handlers keep working.
"""

from __future__ import annotations

from collections.abc import Iterable


class TalkingHeadError(Exception):
    """Base class of every talkinghead error."""


class ConfigError(TalkingHeadError, ValueError):
    """A configuration value is invalid (unknown option, wrong type, out of range)."""


class BackendNotFoundError(ConfigError):
    """No backend of that name is registered for the stage."""

    def __init__(self, stage: str, name: str, available: Iterable[str]):
        self.stage, self.name = stage, name
        self.available = sorted(available)
        listing = ", ".join(self.available) or "none"
        super().__init__(
            f"no {stage} backend named {name!r}; available: {listing}. "
            "Run `talkinghead plugins` to see every installed backend."
        )


class MissingDependencyError(TalkingHeadError, ImportError):
    """An optional dependency of a backend is not installed."""

    def __init__(self, package: str, extra: str, feature: str | None = None, *, install: str | None = None):
        self.package, self.extra = package, extra
        what = f" for {feature}" if feature else ""
        how = install or f"pip install 'talkinghead[{extra}]'"
        super().__init__(f"the optional dependency {package!r} is needed{what} but is not installed; install it with: {how}")


class ModelLoadError(TalkingHeadError):
    """A model or checkpoint could not be loaded (corrupt file, wrong architecture)."""


class WeightsMissingError(ModelLoadError):
    """Weights a backend needs are not in the cache."""

    def __init__(self, message: str, files: Iterable[str] = ()):
        self.files = list(files)
        super().__init__(message)


class StageError(TalkingHeadError):
    """A backend failed while running its stage."""

    def __init__(self, stage: str, backend: str, message: str):
        self.stage, self.backend = stage, backend
        super().__init__(f"{stage} backend {backend!r} failed: {message}")


class ServiceError(StageError):
    """A remote service failed. ``transient`` says whether retrying may help."""

    def __init__(self, stage: str, backend: str, message: str, *, transient: bool = False):
        self.transient = transient
        super().__init__(stage, backend, message)


class DeadlineError(ServiceError):
    """A conversational turn ran past its deadline (see :mod:`talkinghead.deadline`)."""

    def __init__(self, stage: str, backend: str, message: str):
        super().__init__(stage, backend, message, transient=True)


class BadInputError(TalkingHeadError, ValueError):
    """The caller's input cannot be used."""


class ImageError(BadInputError):
    """The portrait file is missing, unreadable, corrupt or too large."""


class NoFaceError(BadInputError):
    """No face was found in the portrait."""


class MultipleFacesError(BadInputError):
    """Several faces were found and the configuration refuses to pick one."""


class FaceTooSmallError(BadInputError):
    """The face is too small to animate."""


class AudioError(BadInputError):
    """The audio is missing, empty, silent, too short or in an unsupported format."""


class VideoError(BadInputError):
    """A video to evaluate is missing, unreadable or has no video stream."""


class TextError(BadInputError):
    """The text is empty, too long or in an unsupported language."""


class NothingUnderstoodError(BadInputError):
    """Speech recognition found no usable words in the question."""


class OutputError(BadInputError):
    """The output path cannot be written."""
