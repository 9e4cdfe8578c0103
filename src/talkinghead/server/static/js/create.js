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
  const stages = { prepare: "Preparing the portrait", tts: "Speaking the text", animate: "Animating",
                   enhance: "Enhancing the face" };
  try {
    const job = await api("v1/videos", { method: "POST", form: data });
    const done = await waitForJob(job.id, (j) => {
      progress.value = j.progress;
      percent.textContent = `${Math.round(j.progress * 100)} %`;
      say(status, j.status === "queued" ? "Waiting for a free worker…" : `${stages[j.stage] || "Working"}…`);
    });
    if (done.status !== "completed") {
      throw new ApiError(500, done.error?.type || "Failed", done.error?.message || `The job was ${done.status}.`);
    }
    const r = done.result;
    const video = $("create-video");
    video.replaceChildren();
    if (done.captions_url) {
      const track = document.createElement("track");
      Object.assign(track, { kind: "captions", label: "Text", srclang: "en", src: href(done.captions_url) });
      video.append(track);
    }
    video.src = href(done.content_url);
    video.dataset.jobId = done.id;
    $("create-placeholder").hidden = true;
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
