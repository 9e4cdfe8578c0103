"""Backends for the batch tests, importable by spawned workers (tests/ is on their sys.path).

``slow``: the fake animator with a pause per chunk (so a test can kill a batch mid-way);
``crashy``: the fake animator that kills its own process when ``crash=True`` (a worker dying
mid-job, as an out-of-memory kill would).
"""

from __future__ import annotations

import os
import signal
import time
from typing import ClassVar

from talkinghead.hookspecs import hookimpl
from talkinghead.testing import FakeAnimator, FakesPlugin


class SlowAnimator(FakeAnimator):
    name: ClassVar[str] = "slow"

    def __init__(self, *, delay: float = 0.05, chunk_size: int = 4, size: int | None = 64) -> None:
        super().__init__(chunk_size=chunk_size, size=size)
        self.delay = delay

    def animate(self, prepared, audio, *, fps, progress=None):
        for chunk in super().animate(prepared, audio, fps=fps, progress=progress):
            time.sleep(self.delay)
            yield chunk


class CrashyAnimator(FakeAnimator):
    name: ClassVar[str] = "crashy"

    def __init__(self, *, crash: bool = False, size: int | None = 64) -> None:
        super().__init__(size=size)
        self.crash = crash

    def animate(self, prepared, audio, *, fps, progress=None):
        if self.crash:
            os.kill(os.getpid(), signal.SIGKILL)
        yield from super().animate(prepared, audio, fps=fps, progress=progress)


class BatchTestPlugin(FakesPlugin):
    @hookimpl
    def register_backends(self, register) -> None:
        super().register_backends(register)
        register(SlowAnimator)
        register(CrashyAnimator)
