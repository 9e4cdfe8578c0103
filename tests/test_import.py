import subprocess
import sys

CODE = """
import sys
import talkinghead
from talkinghead.plugins import get_registry
names = [(b.stage, b.name) for b in get_registry().all()]
heavy = [m for m in ("torch", "mediapipe", "cv2", "piper", "av", "onnxruntime", "faster_whisper", "openai") if m in sys.modules]
print(heavy)
assert not heavy, heavy
assert ("tts", "piper") in names and ("writer", "mp4") in names, names
"""


def test_import_and_registry_are_light():
    """Importing talkinghead and listing every backend imports no heavy dependency."""
    result = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_lazy_public_names():
    import talkinghead

    assert talkinghead.Avatar.__name__ == "Avatar"
    assert "Avatar" in dir(talkinghead)
    assert issubclass(talkinghead.NoFaceError, talkinghead.BadInputError)
    assert issubclass(talkinghead.MissingDependencyError, ImportError)
