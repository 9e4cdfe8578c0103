"""Avatars inside the voice-agent frameworks people already use.

* :mod:`talkinghead.integrations.livekit` (``pip install 'talkinghead[livekit]'``): a LiveKit Agents
  ``VideoGenerator`` and the glue to run it with ``AvatarRunner`` in the agent worker or in a
  separate avatar worker;
* :mod:`talkinghead.integrations.pipecat` (``pip install 'talkinghead[pipecat]'``): a Pipecat
  frame processor placed after the TTS that turns its audio into image frames in sync with it.

Both sit on :class:`SpeechDrivenStream`, a live stream of an :class:`~talkinghead.Avatar` driven by
speech the framework synthesised (no framework is imported here). See ``docs/integrations.md``.
"""

from __future__ import annotations

from .bridge import SpeechDrivenStream, pcm16_bytes, pcm16_samples

__all__ = ["SpeechDrivenStream", "pcm16_bytes", "pcm16_samples"]
