// The Conversation tab: a conversation per selected avatar, questions by text or microphone,
// the answer video with captions of both sides, and the history. Two modes: record-and-send
// (each answer is a video made by the server) and live (the avatar listens and answers in real
// time over WebRTC or the WebSocket fallback, and stops when the user talks over it).

import { api, ApiError, href, say, tryPlay } from "./api.js";
import { gallery, onGalleryChange } from "./gallery.js";
import { LiveClient } from "./live.js";
import { Recorder } from "./recorder.js";

const $ = (id) => document.getElementById(id);
const state = { conversation: null, avatar: null, busy: false, enabled: false, liveInfo: null, live: null,
                connecting: false, turns: new Map(), answerTurn: null, userSpeaking: false };
const recorder = new Recorder();
const KEY = "talkinghead.conversation.";
const STATES = { idle: "Live · your turn", listening: "Live · listening", thinking: "Live · thinking…",
                 speaking: "Live · speaking" };
const ENDINGS = {
  idle: "The live session ended after a quiet while; start it again any time.",
  max_duration: "The live session reached its time limit; start a new one to go on.",
  peer_gone: "The live connection was lost; start it again to go on.",
  too_slow: "The connection was too slow for live video; try again, or ask in the recorded mode.",
  error: "The live session failed; its reason is in the server's log.",
  server_shutdown: "The server is shutting down.",
};

export function initConversation(backends, liveInfo) {
  state.enabled = backends.conversation;
  state.liveInfo = liveInfo;
  $("ask-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("question").value.trim();
    if (!text) return;
    if (state.live) askLive(text);
    else ask({ text });
  });
  $("mic").addEventListener("click", () => (state.live ? toggleMute() : toggleMic()));
  $("convo-new").addEventListener("click", () => startConversation(true));
  $("live-toggle").addEventListener("click", () => (state.live ? stopLive() : startLive()));
  $("live-interrupt").addEventListener("click", () => state.live?.interrupt());
  if (!Recorder.supported()) {
    $("mic").title = window.isSecureContext
      ? "This browser cannot record from a microphone"
      : "Browsers allow the microphone only on https:// or localhost pages";
  }
  if (!liveInfo || !(liveInfo.webrtc || liveInfo.websocket)) $("live-toggle").title = "This server has no live sessions";
  onGalleryChange(() => {
    if (gallery.selected?.id !== state.avatar?.id || gallery.selected?.version !== state.avatar?.version) {
      state.avatar = gallery.selected;
      startConversation(false);
    }
  });
  window.addEventListener("pagehide", () => state.live?.stop());
  if (!state.enabled) {
    say($("convo-status"), "This server has no language model configured, so it cannot answer questions. " +
      "Its operator can start it with --llm openai --set llm.base_url=…", true);
  }
}

function controls() {
  const live = Boolean(state.live);
  const ready = state.enabled && state.conversation && !state.busy && !state.connecting;
  $("question").disabled = !(ready || live);
  $("ask-send").disabled = !(ready || live);
  const mic = $("mic");
  mic.querySelector(".mic-label").textContent = live ? (state.live.muted ? "Unmute" : "Mute") :
    recorder.recording ? "Stop and send" : "Speak";
  mic.setAttribute("aria-pressed", String(live ? state.live.muted : recorder.recording));
  mic.classList.toggle("muted", live && state.live.muted);
  mic.disabled = live ? !state.live.hasMicrophone : !(ready || recorder.recording) || !Recorder.supported();
  const toggle = $("live-toggle");
  toggle.disabled = !state.liveInfo || !(ready || live) || state.connecting || recorder.recording;
  toggle.setAttribute("aria-pressed", String(live));
  toggle.querySelector(".live-label").textContent = state.connecting ? "Connecting…" : live ? "End live" : "Start live";
  $("convo-new").disabled = !state.conversation || state.busy || live || state.connecting;
  $("live-badge").hidden = !live;
  if (!live) $("live-interrupt").hidden = true;
}

async function startConversation(fresh) {
  stopLive(null);
  const avatar = state.avatar;
  state.conversation = null;
  $("history").replaceChildren();
  showCaptions(null, null);
  const video = $("answer-video");
  video.removeAttribute("src");
  video.load();
  const placeholder = $("answer-placeholder");
  placeholder.hidden = false;
  if (!avatar) {
    $("convo-title").textContent = "Conversation";
    placeholder.style.backgroundImage = "";
    placeholder.textContent = "Pick an avatar to start talking.";
    controls();
    return;
  }
  $("convo-title").textContent = `Talking with ${avatar.name}`;
  placeholder.textContent = "";
  placeholder.style.backgroundImage = `url("${href(avatar.portrait_url)}")`;
  if (!state.enabled) return controls();
  try {
    let conv = null;
    const saved = sessionStorage.getItem(KEY + avatar.id);
    if (saved && !fresh) {
      conv = await api(`v1/conversations/${saved}`).catch(() => null);
    }
    if (!conv) {
      conv = await api("v1/conversations", { method: "POST", json: { avatar_id: avatar.id } });
      sessionStorage.setItem(KEY + avatar.id, conv.id);
    }
    if (state.avatar !== avatar) return; // another avatar was picked meanwhile
    state.conversation = conv;
    for (const turn of conv.turns) addHistory(turn);
    say($("convo-status"), conv.turns.length ? "Conversation resumed." :
      "Ask a question: type it, or press Speak — or press Start live to talk in real time.");
  } catch (err) {
    say($("convo-status"), err.message, true);
  }
  controls();
  if (fresh) $("question").focus();
}

// -- record and send -------------------------------------------------------------------------------
async function toggleMic() {
  const mic = $("mic");
  if (recorder.recording) {
    const blob = await recorder.stop();
    controls();
    if (blob && blob.size) ask({ audio: blob });
    return;
  }
  try {
    await recorder.start();
  } catch (err) {
    say($("convo-status"), "The microphone is not available: " + err.message, true);
    return;
  }
  controls();
  mic.focus();
  say($("convo-status"), "Listening… press “Stop and send” when you are done.");
}

async function ask({ text, audio }) {
  if (!state.conversation || state.busy) return;
  state.busy = true;
  controls();
  const form = new FormData();
  if (text) form.set("text", text);
  if (audio) form.set("audio", audio, "question.webm");
  showCaptions(text || "…", null);
  say($("convo-status"), audio ? "Listening to your question and thinking…" : "Thinking…");
  try {
    let job = await api(`v1/conversations/${state.conversation.id}/turns`, { method: "POST", form });
    while (job.status === "queued" || job.status === "in_progress") {
      await new Promise((r) => setTimeout(r, 500));
      job = await api(`v1/videos/${job.id}`);
    }
    if (job.status !== "completed") throw new ApiError(500, "Failed", job.error?.message || `the turn ${job.status}`);
    const { question, answer } = job.result;
    $("question").value = "";
    showCaptions(question, answer);
    addHistory({ question, answer, id: job.id });
    await playAnswer(job);
    say($("convo-status"), "");
  } catch (err) {
    showCaptions(null, null);
    const heard = err.type === "NothingUnderstoodError" ? "Sorry, I did not catch that. " : "";
    say($("convo-status"), heard + err.message, true);
  } finally {
    state.busy = false;
    controls();
    if (!audio) $("question").focus();
  }
}

async function playAnswer(job) {
  const video = $("answer-video");
  video.replaceChildren();
  if (job.captions_url) {
    const track = document.createElement("track");
    track.kind = "captions";
    track.label = "Answer";
    track.srclang = "en";
    track.src = href(job.captions_url);
    video.append(track); // off by default: both sides are shown below the video; CC turns it on
  }
  video.src = href(job.content_url);
  video.dataset.jobId = job.id;
  $("answer-placeholder").hidden = true;
  video.controls = true;
  if (!(await tryPlay(video))) say($("convo-status"), "Press play to hear the answer.");
}

// -- live ------------------------------------------------------------------------------------------
async function startLive() {
  if (!state.avatar || !state.conversation || state.live || state.connecting) return;
  state.connecting = true;
  controls();
  say($("convo-status"), "Connecting…");
  const video = $("answer-video");
  video.replaceChildren();
  video.removeAttribute("src");
  delete video.dataset.jobId;
  video.controls = false;
  showCaptions(null, null);
  state.turns.clear();
  state.userSpeaking = false;
  const prefer = new URLSearchParams(location.search).get("live") === "websocket" ? "websocket" : "webrtc";
  const client = new LiveClient({
    avatarId: state.avatar.id, conversationId: state.conversation.id, video, info: state.liveInfo,
    onMessage: onLiveMessage, onClose: (reason) => liveEnded(client, reason),
  });
  try {
    await client.start({ prefer });
  } catch (err) {
    state.connecting = false;
    controls();
    say($("convo-status"), `Could not go live: ${err.message}`, true);
    return;
  }
  state.connecting = false;
  state.live = client;
  document.body.dataset.live = client.transport;
  $("live-slot").dataset.transport = client.transport;
  $("answer-placeholder").hidden = true;
  video.muted = false;
  tryPlay(video);
  controls();
  const how = client.transport === "webrtc" ? "over WebRTC"
    : `over a WebSocket${client.fallbackReason ? ` (WebRTC did not connect: ${client.fallbackReason})` : ""}`;
  const mic = client.hasMicrophone ? "Speak any time — talk over the avatar to interrupt it — or type."
    : "No microphone: type your questions.";
  say($("convo-status"), `Live ${how}. ${mic}`);
  $("question").focus();
}

function stopLive(message = "You ended the live session.") {
  const client = state.live;
  if (!client) return;
  state.live = null;
  client.stop();
  liveCleanup();
  if (message !== null) say($("convo-status"), message);
}

function liveEnded(client, reason) {
  if (state.live !== client) return;
  state.live = null;
  liveCleanup();
  say($("convo-status"), ENDINGS[reason] || "The live session ended.", reason !== "ended_by_client");
}

function liveCleanup() {
  delete document.body.dataset.live;
  delete $("live-slot").dataset.state;
  const video = $("answer-video");
  video.srcObject = null;
  video.removeAttribute("src");
  video.load();
  $("answer-placeholder").hidden = false;
  controls();
}

function askLive(text) {
  try {
    state.live.ask(text);
    $("question").value = "";
  } catch (err) {
    say($("convo-status"), err.message, true);
  }
}

function toggleMute() {
  state.live.setMuted(!state.live.muted);
  controls();
  say($("convo-status"), state.live.muted ? "Microphone muted: type, or unmute to speak." : "Listening.");
}

function onLiveMessage(msg) {
  const turn = msg.turn != null ? state.turns.get(msg.turn) || { question: "", answer: [] } : null;
  if (turn) state.turns.set(msg.turn, turn);
  switch (msg.type) {
    case "state":
      $("live-slot").dataset.state = msg.state;
      $("live-interrupt").hidden = msg.state !== "speaking";
      badge();
      break;
    case "user_speech_started":
    case "user_speech_ended":
      state.userSpeaking = msg.type === "user_speech_started";
      badge();
      break;
    case "caption":
      if (msg.role === "user") {
        turn.question = msg.text;
        showCaptions(msg.text, null);
        state.answerTurn = msg.turn;
      } else {
        state.answerTurn = msg.turn;
        turn.answer.push(msg.text);
        showCaptions(turn.question || null, turn.answer.join(" "));
      }
      break;
    case "turn_ended":
      if (msg.status === "interrupted" && state.answerTurn === msg.turn) {
        $("caption-avatar").classList.add("cut");
        $("caption-avatar").querySelector(".note").hidden = false;
      }
      if (turn?.question && (msg.answer || msg.status === "interrupted")) {
        addHistory({ question: turn.question, answer: msg.answer, live: true, status: msg.status });
      }
      if (msg.status === "nothing_understood") say($("convo-status"), "Sorry, I did not catch that.", true);
      else if (msg.status === "error" || msg.status === "deadline") say($("convo-status"), msg.error || "The answer failed.", true);
      state.turns.delete(msg.turn);
      break;
    case "error":
      say($("convo-status"), msg.error.message, true);
      break;
    default:
      break;
  }
}

/** The badge on the video: what the avatar does now ("listening" frames while nobody speaks mean an answer is being prepared). */
function badge() {
  const now = $("live-slot").dataset.state || "idle";
  const shown = state.userSpeaking ? "listening" : now === "listening" ? "thinking" : now;
  $("live-badge").querySelector(".live-state").textContent = STATES[shown];
}

// -- captions and history --------------------------------------------------------------------------
function showCaptions(question, answer) {
  const you = $("caption-you");
  const them = $("caption-avatar");
  you.hidden = !question;
  them.hidden = !answer;
  you.querySelector(".said").textContent = question || "";
  them.querySelector(".who").textContent = state.avatar?.name || "Avatar";
  them.querySelector(".said").textContent = answer || "";
  them.classList.remove("cut");
  them.querySelector(".note").hidden = true;
}

function addHistory({ question, answer, id, live = false, status = null }) {
  const li = document.createElement("li");
  const q = document.createElement("p");
  q.className = "q";
  q.innerHTML = '<span class="who">You:</span> ';
  q.append(document.createTextNode(question));
  const a = document.createElement("p");
  a.className = "a";
  a.innerHTML = '<span class="who"></span> ';
  a.querySelector(".who").textContent = `${state.avatar?.name || "Avatar"}:`;
  a.append(document.createTextNode(answer || "…"));
  li.append(q, a);
  if (live) {
    li.classList.add("live");
    const tag = document.createElement("p");
    tag.className = "tag";
    tag.textContent = status === "interrupted" ? "Live · interrupted" : "Live";
    li.append(tag);
  } else {
    const replay = document.createElement("button");
    replay.type = "button";
    replay.textContent = "Replay";
    replay.addEventListener("click", async () => {
      if (state.live) stopLive();
      try {
        const job = await api(`v1/videos/${id}`);
        showCaptions(question, answer);
        await playAnswer(job);
      } catch (err) {
        say($("convo-status"), err.status === 404 ? "That video has expired." : err.message, true);
      }
    });
    li.append(replay);
  }
  $("history").prepend(li);
}
