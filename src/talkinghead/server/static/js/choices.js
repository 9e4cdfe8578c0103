// Fill the backend, voice and emotion pickers from GET /v1/backends.

function option(value, label) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = label;
  return o;
}

/** Voices grouped by TTS backend; values are "tts|voice" ("" = the server's default). */
export function fillVoices(select, backends) {
  select.replaceChildren(option("", `Default voice (${backends.defaults.tts || "server default"})`));
  for (const tts of backends.stages.tts || []) {
    if (!tts.voices || !tts.voices.length) continue;
    const group = document.createElement("optgroup");
    group.label = tts.name;
    for (const v of tts.voices) group.append(option(`${tts.name}|${v}`, `${tts.name} — ${v}`));
    select.append(group);
  }
}

/** Split a voice picker's value into {tts, voice}. */
export function voiceChoice(value) {
  if (!value) return { tts: "", voice: "" };
  const i = value.indexOf("|");
  return { tts: value.slice(0, i), voice: value.slice(i + 1) };
}

export function fillBackends(select, backends, stage, { none = false } = {}) {
  const def = backends.defaults[stage];
  select.replaceChildren();
  if (none) select.append(option("none", "None"));
  for (const b of backends.stages[stage] || []) {
    select.append(option(b.name, b.name === def ? `${b.name} (default)` : b.name));
  }
  select.value = def || (none ? "none" : select.options[0]?.value || "");
}

/** Emotion choices of an animator, or null when it takes no emotion. */
export function emotionsOf(backends, animator) {
  const a = (backends.stages.animator || []).find((b) => b.name === animator);
  const opt = a && (a.options || []).find((o) => o.name === "emotion");
  if (!opt) return null;
  return opt.choices && opt.choices.length ? opt.choices : [];
}

export function fillEmotions(row, select, backends, animator) {
  const choices = emotionsOf(backends, animator);
  row.hidden = choices === null || choices.length === 0;
  select.replaceChildren(option("", "Default"));
  for (const c of choices || []) select.append(option(String(c), String(c)));
}
