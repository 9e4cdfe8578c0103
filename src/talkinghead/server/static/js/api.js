// Calls to the talkinghead API: JSON in and out, errors as ApiError, the token dialog on 401.
// Paths are relative to the page, so the app also works when mounted under a prefix.

const base = new URL(".", document.baseURI);

export class ApiError extends Error {
  constructor(status, type, message, body) {
    super(message);
    this.status = status;
    this.type = type;
    this.body = body;
  }
}

let tokenPrompt = null;

/** Ask for the token once (shared by concurrent 401s); resolves when the server accepted it. */
function askToken() {
  if (tokenPrompt) return tokenPrompt;
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  const status = document.getElementById("token-status");
  tokenPrompt = new Promise((resolve) => {
    form.onsubmit = async (event) => {
      event.preventDefault();
      status.textContent = "Checking…";
      status.classList.remove("error");
      const res = await fetch(new URL("v1/auth", base), {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token: input.value }),
        credentials: "same-origin",
      });
      if (res.ok) {
        dialog.close();
        status.textContent = "";
        tokenPrompt = null;
        resolve();
      } else {
        status.textContent = "That token was not accepted; try again.";
        status.classList.add("error");
        input.select();
      }
    };
    dialog.addEventListener("cancel", (e) => e.preventDefault()); // the app cannot work without it
    dialog.showModal();
    input.focus();
  });
  return tokenPrompt;
}

/**
 * Call the API. `json` sends a JSON body, `form` a FormData; returns the parsed JSON (null for 204).
 * Throws ApiError with the server's {"error": {"type", "message"}}.
 */
export async function api(path, { method = "GET", json, form } = {}) {
  for (let attempt = 0; ; attempt++) {
    const init = { method, credentials: "same-origin", headers: {} };
    if (json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    } else if (form !== undefined) {
      init.body = form;
    }
    let res;
    try {
      res = await fetch(new URL(path, base), init);
    } catch (err) {
      throw new ApiError(0, "NetworkError", "The server cannot be reached. Is it still running?");
    }
    if (res.status === 401 && attempt === 0) {
      await askToken();
      continue;
    }
    if (res.status === 204) return null;
    let body = null;
    try {
      body = await res.json();
    } catch (err) {
      body = null;
    }
    if (!res.ok) {
      const e = (body && body.error) || {};
      throw new ApiError(res.status, e.type || "HTTPError", e.message || res.statusText, body);
    }
    return body;
  }
}

/** Resolve a URL the server gave (an absolute path) or a relative API path. */
export function href(path) {
  return new URL(path, base).href;
}

/** Poll a job until it is finished; `onProgress(job)` is called with each status. */
export async function waitForJob(id, onProgress, { interval = 400 } = {}) {
  for (;;) {
    const job = await api(`v1/videos/${encodeURIComponent(id)}`);
    onProgress?.(job);
    if (!["queued", "in_progress"].includes(job.status)) return job;
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** Show a message in a status element (role=status), styled as an error if `error`. */
export function say(el, message, error = false) {
  el.textContent = message;
  el.classList.toggle("error", error);
}

/** Play a media element, quietly accepting a refusal of the browser's autoplay policy. */
export async function tryPlay(video) {
  try {
    await video.play();
    return true;
  } catch (err) {
    return false;
  }
}
