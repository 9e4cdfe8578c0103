// The Conversation tab: a conversation per selected avatar, questions by text or microphone,
// the answer video with captions of both sides, and the history.

import { api, ApiError, href, say, tryPlay } from "./api.js";
import { gallery, onGalleryChange } from "./gallery.js";
import { Recorder } from "./recorder.js";

const $ = (id) => document.getElementById(id);
const state = { conversation: null, avatar: null, busy: false, enabled: false };
const recorder = new Recorder();
const KEY = "talkinghead.conversation.";

export function initConversation(backends) {
  state.enabled = backends.conversation;
  $("ask-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("question").value.trim();
    if (text) ask({ text });
  });
  $("mic").addEventListener("click", toggleMic);
  $("convo-new").addEventListener("click", () => startConversation(true));
  if (!Recorder.supported()) {
    $("mic").title = window.isSecureContext
      ? "This browser cannot record from a microphone"
      : "Browsers allow the microphone only on https:// or localhost pages";
  }
  onGalleryChange(() => {
    if (gallery.selected?.id !== state.avatar?.id || gallery.selected?.version !== state.avatar?.version) {
      state.avatar = gallery.selected;
      startConversation(false);
    }
  });
  if (!state.enabled) {
    say($("convo-status"), "This server has no language model configured, so it cannot answer questions. " +
      "Its operator can start it with --llm openai --set llm.base_url=…", true);
  }
}

function controls() {
  const ready = state.enabled && state.conversation && !state.busy;
  $("question").disabled = !ready;
  $("ask-send").disabled = !ready;
  $("mic").disabled = !(ready || recorder.recording) || !Recorder.supported();
  $("convo-new").disabled = !state.conversation || state.busy;
}

async function startConversation(fresh) {
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
    for (const turn of conv.turns) addHistory(turn.question, turn.answer, turn.id);
    say($("convo-status"), conv.turns.length ? "Conversation resumed." : "Ask a question: type it, or press Speak.");
  } catch (err) {
    say($("convo-status"), err.message, true);
  }
  controls();
  if (fresh) $("question").focus();
}

async function toggleMic() {
  const mic = $("mic");
  if (recorder.recording) {
    mic.setAttribute("aria-pressed", "false");
    mic.querySelector(".mic-label").textContent = "Speak";
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
  mic.setAttribute("aria-pressed", "true");
  mic.querySelector(".mic-label").textContent = "Stop and send";
  say($("convo-status"), "Listening… press “Stop and send” when you are done.");
  controls();
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
    addHistory(question, answer, job.id);
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

function showCaptions(question, answer) {
  const you = $("caption-you");
  const them = $("caption-avatar");
  you.hidden = !question;
  them.hidden = !answer;
  you.querySelector(".said").textContent = question || "";
  them.querySelector(".who").textContent = state.avatar?.name || "Avatar";
  them.querySelector(".said").textContent = answer || "";
}

function addHistory(question, answer, jobId) {
  const li = document.createElement("li");
  const q = document.createElement("p");
  q.className = "q";
  q.innerHTML = '<span class="who">You:</span> ';
  q.append(document.createTextNode(question));
  const a = document.createElement("p");
  a.className = "a";
  a.innerHTML = '<span class="who"></span> ';
  a.querySelector(".who").textContent = `${state.avatar?.name || "Avatar"}:`;
  a.append(document.createTextNode(answer));
  const replay = document.createElement("button");
  replay.type = "button";
  replay.textContent = "Replay";
  replay.addEventListener("click", async () => {
    try {
      const job = await api(`v1/videos/${jobId}`);
      showCaptions(question, answer);
      await playAnswer(job);
    } catch (err) {
      say($("convo-status"), err.status === 404 ? "That video has expired." : err.message, true);
    }
  });
  li.append(q, a, replay);
  $("history").prepend(li);
}
