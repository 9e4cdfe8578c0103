// The avatar gallery: saved avatars as cards, the "New avatar" form, selection and deletion.

import { api, ApiError, href, say } from "./api.js";
import { fillVoices, voiceChoice } from "./choices.js";

const listeners = new Set();
export const gallery = { avatars: [], selected: null };

/** Call `fn(gallery)` whenever the list or the selection changes. */
export function onGalleryChange(fn) {
  listeners.add(fn);
}

function changed() {
  for (const fn of listeners) fn(gallery);
}

export async function loadAvatars() {
  const { data } = await api("v1/avatars");
  gallery.avatars = data;
  if (gallery.selected && !data.some((a) => a.id === gallery.selected.id)) gallery.selected = null;
  if (gallery.selected) gallery.selected = data.find((a) => a.id === gallery.selected.id);
  render();
  changed();
}

export function select(id) {
  gallery.selected = gallery.avatars.find((a) => a.id === id) || null;
  render();
  changed();
}

function render() {
  const list = document.getElementById("gallery");
  document.getElementById("gallery-empty").hidden = gallery.avatars.length > 0;
  list.replaceChildren(
    ...gallery.avatars.map((a) => {
      const li = document.createElement("li");
      const card = document.createElement("button");
      card.type = "button";
      card.className = "avatar-card";
      card.setAttribute("aria-pressed", String(gallery.selected?.id === a.id));
      card.dataset.avatarId = a.id;
      const img = document.createElement("img");
      img.src = href(a.thumbnail_url);
      img.alt = "";
      img.loading = "lazy";
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = a.name;
      card.append(img, name);
      card.title = `Talk with ${a.name}`;
      card.addEventListener("click", () => select(a.id));
      const del = document.createElement("button");
      del.type = "button";
      del.className = "avatar-delete";
      del.textContent = "×";
      del.setAttribute("aria-label", `Delete ${a.name}`);
      del.addEventListener("click", async () => {
        if (!confirm(`Delete the avatar “${a.name}”?`)) return;
        try {
          await api(`v1/avatars/${a.id}`, { method: "DELETE" });
        } catch (err) {
          alert(err.message);
        }
        await loadAvatars();
      });
      li.append(card, del);
      return li;
    }),
  );
}

export function initGallery(backends) {
  const form = document.getElementById("avatar-form");
  const status = document.getElementById("avatar-status");
  fillVoices(document.getElementById("avatar-voice"), backends);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const { tts, voice } = voiceChoice(data.get("voice_choice"));
    data.delete("voice_choice");
    if (tts) data.set("tts", tts);
    if (voice) data.set("voice", voice);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    say(status, "Checking the portrait…");
    try {
      const avatar = await api("v1/avatars", { method: "POST", form: data });
      say(status, `Saved “${avatar.name}”.`);
      form.reset();
      document.getElementById("new-avatar").open = false;
      await loadAvatars();
      select(avatar.id);
    } catch (err) {
      say(status, err instanceof ApiError ? err.message : String(err), true);
    } finally {
      button.disabled = false;
    }
  });
}
