// Start-up: the tabs (keyboard: arrow keys, Home/End), the backends, the gallery and both tabs.

import { api, say } from "./api.js";
import { initConversation } from "./converse.js";
import { initCreate } from "./create.js";
import { initGallery, loadAvatars } from "./gallery.js";

function initTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  const show = (tab, focus) => {
    for (const t of tabs) {
      const selected = t === tab;
      t.setAttribute("aria-selected", String(selected));
      t.tabIndex = selected ? 0 : -1;
      document.getElementById(t.getAttribute("aria-controls")).hidden = !selected;
    }
    if (focus) tab.focus();
    history.replaceState(null, "", `#${tab.id.replace("tab-btn-", "")}`);
  };
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => show(tab, false));
    tab.addEventListener("keydown", (e) => {
      const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
      if (next === undefined) return;
      e.preventDefault();
      show(tabs[(next + tabs.length) % tabs.length], true);
    });
  });
  const wanted = tabs.find((t) => t.id === `tab-btn-${location.hash.slice(1)}`);
  if (wanted) show(wanted, false);
}

async function main() {
  initTabs();
  try {
    const backends = await api("v1/backends");
    const live = await api("v1/live").catch(() => null); // null: a server without live sessions
    initGallery(backends);
    initConversation(backends, live);
    initCreate(backends);
    await loadAvatars();
    document.body.dataset.ready = "true";
  } catch (err) {
    say(document.getElementById("convo-status"), `The server did not answer: ${err.message}`, true);
  }
}

main();
