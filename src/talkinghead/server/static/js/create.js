// The Create tab: portrait + text or audio -> a render job, its progress, the video and a download link.

import { api, ApiError, href, say, tryPlay, waitForJob } from "./api.js";
import { fillBackends, fillEmotions, fillVoices, voiceChoice } from "./choices.js";
import { gallery, onGalleryChange } from "./gallery.js";

const $ = (id) => document.getElementById(id);

export function initCreate(backends) {
  const form = $("create-form");
  fillVoices($("create-voice"), backends);
  fillBackends($("create-animator"), backends, "animator");
  fillBackends($("create-enhancer"), backends, "enhancer", { none: true });
  $("create-fps").max = String(backends.limits.max_fps);
  const emotions = () => fillEmotions($("create-emotion-row"), $("create-emotion"), backends, $("create-animator").value);
  $("create-animator").addEventListener("change", emotions);
  emotions();

  // radio groups show the part of the form they choose
  const sync = () => {
    for (const el of form.querySelectorAll("[data-when]")) {
      const [name, value] = el.dataset.when.split("=");
      el.hidden = form.elements[name].value !== value;
    }
  };
  form.addEventListener("change", sync);
  sync();

  onGalleryChange(() => {
    const sel = $("create-avatar");
    const current = sel.value;
    sel.replaceChildren(
      ...gallery.avatars.map((a) => {
        const o = document.createElement("option");
        o.value = a.id;
        o.textContent = a.name;
        return o;
      }),
    );
    if (gallery.avatars.some((a) => a.id === current)) sel.value = current;
    form.querySelector('input[name=portrait_source][value=avatar]').disabled = gallery.avatars.length === 0;
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    render(form);
  });
}

const STAGES = { prepare: "Preparing the portrait", tts: "Speaking the text", animate: "Animating",
                 enhance: "Enhancing the face" };
const MSE_TYPE = 'video/mp4; codecs="avc1.42E01F, mp4a.40.2"';

function canStream() {
  return Boolean(window.MediaSource && MediaSource.isTypeSupported(MSE_TYPE) && window.ReadableStream);
}

/** The job, then its file: poll until it is made, then play it. */
async function recorded(data, video, onProgress) {
  const job = await api("v1/videos", { method: "POST", form: data });
  const done = await waitForJob(job.id, onProgress);
  if (done.status === "completed") {
    video.replaceChildren();
    video.src = href(done.content_url);
  }
  return done;
}

/**
 * POST ?stream=true and play the fragmented MP4 as it arrives (Media Source Extensions), while
 * polling the job for progress. Returns the finished job, or null when the server answered
 * something else than a stream (the caller then takes the recorded path).
 */
async function streamed(data, video, onProgress) {
  let res;
  try {
    res = await fetch(href("v1/videos?stream=true"), { method: "POST", body: data, credentials: "same-origin" });
  } catch (err) {
    throw new ApiError(0, "NetworkError", "The server cannot be reached. Is it still running?");
  }
  if (res.status === 401) return null; // the recorded path asks for the token
  if (!res.ok || res.status === 202) {
    const body = await res.json().catch(() => null);
    if (res.ok && body?.id) { // still queued after the server's wait: poll it, then play the file
      const done = await waitForJob(body.id, onProgress);
      if (done.status === "completed") video.src = href(done.content_url);
      return done;
    }
    const e = body?.error || {};
    throw new ApiError(res.status, e.type || "HTTPError", e.message || res.statusText, body);
  }
  const jid = res.headers.get("X-Talkinghead-Job");
  const media = new MediaSource();
  video.replaceChildren();
  video.removeAttribute("src");
  video.src = URL.createObjectURL(media);
  video.addEventListener("playing", () => { video.dataset.playingAt ||= String(performance.now()); }, { once: true });
  $("create-placeholder").hidden = true;
  await new Promise((resolve) => media.addEventListener("sourceopen", resolve, { once: true }));
  const buffer = media.addSourceBuffer(res.headers.get("Content-Type") || MSE_TYPE);
  const progress = waitForJob(jid, onProgress);
  const reader = res.body.getReader();
  let started = false;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer.appendBuffer(value);
    await new Promise((resolve) => buffer.addEventListener("updateend", resolve, { once: true }));
    if (!started && buffer.buffered.length) {
      started = true;
      tryPlay(video);
    }
  }
  if (media.readyState === "open") media.endOfStream();
  return progress;
}

function request(form) {
  const f = form.elements;
  const data = new FormData();
  if (f.portrait_source.value === "avatar") {
    if (!f.avatar_id.value) throw new Error("Choose a saved avatar (or upload a picture).");
    data.set("avatar_id", f.avatar_id.value);
  } else {
    if (!f.image.files.length) throw new Error("Choose a picture with a face.");
    data.set("image", f.image.files[0]);
  }
  if (f.speech_source.value === "audio") {
    if (!f.audio.files.length) throw new Error("Choose an audio file with speech.");
    data.set("audio", f.audio.files[0]);
  } else {
    if (!f.text.value.trim()) throw new Error("Type something for the portrait to say.");
    data.set("text", f.text.value);
  }
  const { tts, voice } = voiceChoice(f.voice_choice.value);
  if (tts) data.set("tts", tts);
  if (voice) data.set("voice", voice);
  data.set("fps", f.fps.value || "20");
  data.set("animator", f.animator.value);
  data.set("enhancer", f.enhancer.value);
  if (!$("create-emotion-row").hidden && f.emotion.value) data.set("emotion", f.emotion.value);
  return data;
}

async function render(form) {
  const status = $("create-status");
  const button = $("create-submit");
  const progress = $("create-progress");
  const percent = $("create-percent");
  const link = $("create-download");
  let data;
  try {
    data = request(form);
  } catch (err) {
    say(status, err.message, true);
    return;
  }
  button.disabled = true;
  link.hidden = true;
  progress.value = 0;
  percent.textContent = "0 %";
  say(status, "Uploading…");
  const video = $("create-video");
  delete video.dataset.jobId;
  delete video.dataset.playingAt;
  const onProgress = (j) => {
    progress.value = j.progress;
    percent.textContent = `${Math.round(j.progress * 100)} %`;
    say(status, j.status === "queued" ? "Waiting for a free worker…" : `${STAGES[j.stage] || "Working"}…`);
  };
  try {
    // Stream the video while it is made (it starts playing after its first fragment) where the
    // browser has Media Source Extensions; otherwise wait for the file.
    const done = (canStream() && (await streamed(data, video, onProgress))) || (await recorded(data, video, onProgress));
    if (done.status !== "completed") {
      throw new ApiError(500, done.error?.type || "Failed", done.error?.message || `The job was ${done.status}.`);
    }
    const r = done.result;
    if (done.captions_url) {
      const track = document.createElement("track");
      Object.assign(track, { kind: "captions", label: "Text", srclang: "en", src: href(done.captions_url) });
      video.append(track);
    }
    video.dataset.jobId = done.id;
    video.dataset.completedAt = String(performance.now());
    $("create-placeholder").hidden = true;
    progress.value = 1;
    percent.textContent = "100 %";
    link.href = href(done.content_url + "?download=true");
    link.hidden = false;
    say(status, `Done: ${r.width}×${r.height}, ${r.duration.toFixed(1)} s at ${r.fps} fps.`);
    await tryPlay(video);
  } catch (err) {
    progress.value = 0;
    percent.textContent = "";
    say(status, err.message, true);
  } finally {
    button.disabled = false;
  }
}
