// Live sessions: WebRTC first (one audio and one video track, a data channel for text and captions),
// the WebSocket fallback when WebRTC is missing or cannot connect (fragmented MP4 through Media Source
// Extensions, the microphone as 16-bit PCM). Both give the same messages: ready, state, caption,
// turn_started, turn_ended, user_speech_started, user_speech_ended, error, closed.

import { api, ApiError, href } from "./api.js";

const base = new URL(".", document.baseURI);
const MIC_RATE = 16000;

/** Ask for the microphone. Echo cancellation on: the avatar's own voice must not interrupt it. Noise
 * suppression and gain control off: their artefacts cost the speech recogniser words (measured:
 * "favourite planet" heard as "favorite plant" with them on). */
async function microphone() {
  if (!navigator.mediaDevices?.getUserMedia) return null;
  try {
    return await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
    });
  } catch (err) {
    return null; // typing still works
  }
}

function timeout(ms, what) {
  return new Promise((_, reject) => setTimeout(() => reject(new Error(`${what} took longer than ${ms / 1000} s`)), ms));
}

/**
 * A live session. `start()` connects (WebRTC, else WebSocket); `ask(text)`, `interrupt()`,
 * `setMuted(bool)`, `stop()`. `onMessage(msg)` gets every message, at the moment its frame plays
 * (captions and states are held back until the video reaches them on the WebSocket path).
 */
export class LiveClient {
  constructor({ avatarId, conversationId, video, info, onMessage, onClose }) {
    Object.assign(this, { avatarId, conversationId, video, info, onMessage, onClose });
    this.transport = null;
    this.sessionId = null;
    this.mic = null;
    this.muted = false;
    this.closed = false;
    this.timed = [];
    this.fallbackReason = null;
  }

  async start({ prefer = "webrtc" } = {}) {
    this.mic = await microphone();
    const canRtc = this.info?.webrtc && typeof RTCPeerConnection === "function" && prefer !== "websocket";
    if (canRtc) {
      try {
        await this.startRtc();
        this.transport = "webrtc";
        return this;
      } catch (err) {
        if (err instanceof ApiError && err.status !== 0 && err.type !== "BadRequest" && err.type !== "MissingDependencyError") {
          this.release();
          throw err; // the server refused (no LLM, too many sessions...): the fallback would be refused too
        }
        this.fallbackReason = err.message;
        await this.teardownRtc();
      }
    }
    if (!this.info?.websocket || !window.MediaSource) {
      this.release();
      throw new Error(this.fallbackReason || "This browser cannot play a live stream (no WebRTC, no Media Source Extensions).");
    }
    await this.startWs();
    this.transport = "websocket";
    return this;
  }

  // -- WebRTC ------------------------------------------------------------------------------------
  async startRtc() {
    const pc = (this.pc = new RTCPeerConnection({ iceServers: this.info.ice_servers || [] }));
    const track = this.mic?.getAudioTracks()[0];
    if (track) pc.addTransceiver(track, { direction: "sendrecv" });
    else pc.addTransceiver("audio", { direction: "recvonly" });
    pc.addTransceiver("video", { direction: "recvonly" });
    const channel = (this.channel = pc.createDataChannel("talkinghead"));
    const stream = new MediaStream();
    pc.ontrack = (event) => {
      stream.addTrack(event.track);
      if (this.video.srcObject !== stream) this.video.srcObject = stream;
    };
    const ready = new Promise((resolve, reject) => {
      channel.onmessage = (event) => {
        const msg = JSON.parse(event.data);
        if (msg.type === "ready") resolve(msg);
        this.receive(msg);
      };
      pc.onconnectionstatechange = () => {
        if (pc.connectionState === "failed") reject(new Error("the WebRTC connection failed"));
        if (["failed", "closed"].includes(pc.connectionState) && this.transport === "webrtc") this.ended("peer_gone");
      };
    });
    await pc.setLocalDescription(await pc.createOffer());
    await Promise.race([gathered(pc), timeout(5000, "gathering network candidates")]).catch(() => {});
    const answer = await api("v1/live/offer", {
      method: "POST",
      json: { sdp: pc.localDescription.sdp, type: "offer", avatar_id: this.avatarId,
              conversation_id: this.conversationId || null },
    });
    this.sessionId = answer.session_id;
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    await Promise.race([ready, timeout(15000, "connecting over WebRTC")]);
    channel.onclose = () => this.ended("peer_gone");
  }

  async teardownRtc() {
    const id = this.sessionId;
    this.sessionId = null;
    if (id) await api(`v1/live/${id}`, { method: "DELETE" }).catch(() => {}); // before closing: no 404
    this.pc?.close();
    this.pc = null;
    this.channel = null;
    this.video.srcObject = null;
  }

  // -- WebSocket ---------------------------------------------------------------------------------
  async startWs() {
    const url = new URL("v1/live/ws", base);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("avatar_id", this.avatarId);
    url.searchParams.set("audio_rate", String(MIC_RATE));
    if (this.conversationId) url.searchParams.set("conversation_id", this.conversationId);
    const ws = (this.ws = new WebSocket(url));
    ws.binaryType = "arraybuffer";
    const media = new MediaSource();
    this.video.srcObject = null;
    this.video.src = URL.createObjectURL(media);
    const pending = [];
    let buffer = null;
    const pump = () => {
      if (!buffer || buffer.updating || !pending.length) return;
      try {
        buffer.appendBuffer(pending.shift());
      } catch (err) {
        // a full buffer: drop what has been played and try again on the next fragment
        if (this.video.currentTime > 4) buffer.remove(0, this.video.currentTime - 2);
      }
    };
    const ready = new Promise((resolve, reject) => {
      ws.onmessage = (event) => {
        if (typeof event.data !== "string") {
          pending.push(event.data);
          pump();
          return;
        }
        const msg = JSON.parse(event.data);
        if (msg.type === "ready") {
          const open = () => {
            buffer = media.addSourceBuffer(msg.mime);
            buffer.mode = "segments";
            buffer.addEventListener("updateend", () => {
              this.followLiveEdge(buffer);
              pump();
            });
            pump();
            resolve(msg);
          };
          if (media.readyState === "open") open();
          else media.addEventListener("sourceopen", open, { once: true });
        } else if (msg.type === "error" && !this.sessionId) {
          reject(new ApiError(msg.status || 500, msg.error.type, msg.error.message));
        }
        this.receive(msg);
      };
      ws.onclose = () => {
        reject(new Error("the live connection closed"));
        this.ended("peer_gone");
      };
      ws.onerror = () => reject(new Error("the live connection failed"));
    });
    const msg = await Promise.race([ready, timeout(30000, "connecting")]);
    this.sessionId = msg.session_id;
    this.timer = setInterval(() => this.releaseTimed(), 80);
    if (this.mic) await this.micToSocket(ws).catch(() => {});
  }

  /** Keep the player near the live edge (a live stream must not fall behind), and memory bounded. */
  followLiveEdge(buffer) {
    const v = this.video;
    if (!v.buffered.length) return;
    const end = v.buffered.end(v.buffered.length - 1);
    if (v.paused && end > 0.2) v.play().catch(() => {});
    if (end - v.currentTime > 1.5) v.currentTime = end - 0.3;
    if (v.currentTime > 60 && !buffer.updating) buffer.remove(0, v.currentTime - 30);
  }

  async micToSocket(ws) {
    const ctx = (this.audio = new AudioContext({ sampleRate: MIC_RATE }));
    await ctx.audioWorklet.addModule(href("static/js/pcm-worklet.js"));
    const source = ctx.createMediaStreamSource(this.mic);
    const node = new AudioWorkletNode(ctx, "pcm-capture");
    node.port.onmessage = (event) => {
      if (ws.readyState === WebSocket.OPEN && !this.muted) ws.send(event.data);
    };
    source.connect(node);
  }

  // -- messages ----------------------------------------------------------------------------------
  receive(msg) {
    // On the WebSocket path the player runs behind the server by its buffer: hold captions and
    // states back until the video shows their frame.
    if (this.ws && (msg.type === "caption" || msg.type === "state") && msg.time !== undefined) {
      this.timed.push(msg);
      this.releaseTimed();
      return;
    }
    if (msg.type === "closed") this.ended(msg.reason);
    this.onMessage?.(msg);
  }

  releaseTimed() {
    const now = this.video.currentTime;
    while (this.timed.length && (this.timed[0].time <= now + 0.05 || this.closed)) {
      this.onMessage?.(this.timed.shift());
    }
  }

  send(msg) {
    const text = JSON.stringify(msg);
    if (this.channel?.readyState === "open") this.channel.send(text);
    else if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(text);
    else throw new Error("the live session is not connected");
  }

  ask(text) {
    this.send({ type: "ask", text });
  }

  interrupt() {
    this.send({ type: "interrupt" });
  }

  setMuted(muted) {
    this.muted = muted;
    for (const track of this.mic?.getAudioTracks() || []) track.enabled = !muted;
  }

  get hasMicrophone() {
    return Boolean(this.mic);
  }

  // -- ending ------------------------------------------------------------------------------------
  ended(reason) {
    if (this.closed) return;
    this.release();
    this.onClose?.(reason);
  }

  release() {
    this.closed = true;
    clearInterval(this.timer);
    this.releaseTimed();
    for (const track of this.mic?.getTracks() || []) track.stop();
    this.audio?.close().catch(() => {});
    this.pc?.close();
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close();
  }

  /** End the session (the server frees its slot at once). */
  async stop() {
    if (this.closed) return;
    this.closed = true;
    if (this.sessionId && this.transport === "webrtc") {
      // ask first, close after: closing first would end the session and the request would find none
      await api(`v1/live/${this.sessionId}`, { method: "DELETE" }).catch(() => {});
    }
    this.release();
    this.video.srcObject = null;
    this.video.removeAttribute("src");
    this.video.load();
  }
}

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
}
