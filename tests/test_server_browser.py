"""The web app in a real browser: Playwright driving Debian's chromium against ``talkinghead serve``'s
app on 127.0.0.1, on the offline stack (piper, viseme, mp4, faster-whisper) with a local
OpenAI-protocol LLM. The microphone is Chromium's fake capture device playing a question made by piper.

Set ``TALKINGHEAD_SCREENSHOTS=docs/images`` to save screenshots of both tabs (desktop and phone).
In CI (``CI`` set) a missing browser is a failure, elsewhere a skip with the reason.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("piper")
pytest.importorskip("mediapipe")
pytest.importorskip("faster_whisper")

from server_helpers import mouth_box  # noqa: E402

from talkinghead.server import ServerSettings, create_app  # noqa: E402
from talkinghead.testing.app_server import AppServer  # noqa: E402
from talkinghead.testing.openai_server import OpenAIServer  # noqa: E402

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("TALKINGHEAD_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
]
QUESTION = "What is your favourite planet?"
ANSWERS = ["I like the Earth best, it is my home.", "Mars is my favourite planet, it is red and cold."]
SHOTS = os.environ.get("TALKINGHEAD_SCREENSHOTS")


def _browser_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "playwright is not installed (pip install playwright)"
    else:
        if Path(CHROMIUM).exists():
            return sync_playwright
        reason = f"no chromium at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"browser tests must run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def question_wav(tmp_path_factory) -> Path:
    """The spoken question (piper), at 48 kHz with silence around it, as Chromium's fake microphone."""
    import soundfile as sf

    from talkinghead.backends.piper import PiperTTS

    speech = PiperTTS().synthesize(QUESTION).resample(48000)
    pad = np.zeros(int(0.4 * 48000), np.float32)
    path = tmp_path_factory.mktemp("mic") / "question.wav"
    sf.write(path, np.concatenate([pad, speech.samples, pad]), 48000, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def llm():
    with OpenAIServer(answers=ANSWERS, default_answer="Space is big and quiet.") as server:
        yield server


@pytest.fixture(scope="module")
def app_url(llm, tmp_path_factory):
    settings = ServerSettings(
        data_dir=tmp_path_factory.mktemp("server"),
        stages={"tts": "piper", "animator": "viseme", "writer": "mp4", "asr": "faster-whisper", "llm": "openai"},
        backend_options={"llm": {"openai": {"base_url": llm.base_url, "model": "test", "api_key": "test"}},
                         "writer": {"mp4": {"preset": "ultrafast"}}},
        allowed_backends={"tts": ("piper", "espeak"), "enhancer": ()},
    )
    with AppServer(create_app(settings)) as server:
        yield server.url


@pytest.fixture(scope="module")
def browser(question_wav):
    sync_playwright = _browser_or_skip()
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=FLAGS + [f"--use-file-for-fake-audio-capture={question_wav}%noloop"],
            timeout=60_000,
        )
        yield browser
        browser.close()


class Page:
    """A page plus the console errors and page errors it produced."""

    def __init__(self, browser, url, *, width=1280, height=900):
        self.context = browser.new_context(viewport={"width": width, "height": height}, permissions=["microphone"])
        self.page = self.context.new_page()
        self.page.set_default_timeout(60_000)
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.goto(url)

    def _console(self, message) -> None:
        if message.type == "error":
            self.errors.append(f"console.error: {message.text}")

    def ready(self):
        self.page.wait_for_selector("body[data-ready=true]")
        return self

    def close(self):
        self.context.close()


@pytest.fixture
def page(browser, app_url):
    p = Page(browser, app_url + "/").ready()
    yield p
    p.close()


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / name), full_page=True)


def wait_playing(page, selector: str, min_time: float = 0.5) -> dict:
    """Wait until the video's currentTime passes ``min_time``; return what the element reports."""
    page.wait_for_function(
        "([sel, t]) => { const v = document.querySelector(sel); return v && v.currentTime > t; }",
        arg=[selector, min_time], timeout=60_000,
    )
    return page.evaluate(
        """(sel) => { const v = document.querySelector(sel);
            return {time: v.currentTime, duration: v.duration, width: v.videoWidth, height: v.videoHeight,
                    audioBytes: v.webkitAudioDecodedByteCount, videoBytes: v.webkitVideoDecodedByteCount,
                    error: v.error && v.error.message}; }""",
        selector,
    )


MOUTH_MOTION_JS = """
async ([sel, box]) => {
  const v = document.querySelector(sel);
  v.pause();
  const [x1, y1, x2, y2] = box;
  const w = x2 - x1, h = y2 - y1;
  const canvas = document.createElement("canvas");
  canvas.width = v.videoWidth; canvas.height = v.videoHeight;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const grab = async (t) => {
    await new Promise((resolve) => { v.addEventListener("seeked", resolve, { once: true }); v.currentTime = t; });
    ctx.drawImage(v, 0, 0);
    return { mouth: ctx.getImageData(x1, y1, w, h).data, corner: ctx.getImageData(0, 0, 40, 40).data };
  };
  const diff = (a, b) => {  // mean absolute difference over the RGB channels
    let s = 0;
    for (let i = 0; i < a.length; i += 4) {
      s += Math.abs(a[i] - b[i]) + Math.abs(a[i + 1] - b[i + 1]) + Math.abs(a[i + 2] - b[i + 2]);
    }
    return s / (a.length / 4 * 3);
  };
  const frames = [];
  for (let t = 0.05; t < v.duration - 0.05; t += 0.15) frames.push(await grab(t));
  let mouth = 0, corner = 0;
  for (let i = 1; i < frames.length; i++) {
    mouth = Math.max(mouth, diff(frames[i].mouth, frames[i - 1].mouth));
    corner = Math.max(corner, diff(frames[i].corner, frames[i - 1].corner));
  }
  return { mouth, corner, samples: frames.length };
}
"""


def test_page_loads_without_console_errors_and_is_keyboard_usable(page):
    p = page.page
    assert p.title() == "talkinghead"
    assert p.locator("#tab-btn-conversation").get_attribute("aria-selected") == "true"
    # the tabs follow the ARIA tab pattern: arrow keys move between them
    p.focus("#tab-btn-conversation")
    p.keyboard.press("ArrowRight")
    assert p.evaluate("() => document.activeElement.id") == "tab-btn-create"
    assert p.locator("#tab-create").is_visible() and not p.locator("#tab-conversation").is_visible()
    p.keyboard.press("ArrowLeft")
    assert p.locator("#tab-conversation").is_visible()
    # every form control has a label
    unlabeled = p.evaluate("""() => [...document.querySelectorAll(
            'input:not([type=hidden]):not([hidden]), select, textarea')]
        .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.closest('label'))
        .map((el) => el.id || el.name)""")
    assert unlabeled == []
    assert page.errors == []


def test_create_tab_renders_a_video_that_plays(page, portrait_path):
    p = page.page
    p.click("#tab-btn-create")
    p.set_input_files("#create-image", str(portrait_path))
    p.fill("#create-text", "Hello! I was made in the create tab of the web app.")
    p.fill("#create-fps", "15")
    p.click("#create-submit")
    p.wait_for_selector("#create-video[data-job-id]", timeout=120_000)
    assert p.locator("#create-progress").evaluate("e => e.value") == 1
    info = wait_playing(p, "#create-video", 0.5)
    assert info["error"] is None and (info["width"], info["height"]) == (512, 512)
    assert info["audioBytes"] > 0, info  # the video has an audio track that was decoded
    assert 2.0 < info["duration"] < 10.0
    link = p.locator("#create-download")
    assert link.is_visible() and "download=true" in link.get_attribute("href")
    assert "15 fps" in p.locator("#create-status").inner_text()
    p.evaluate("() => document.querySelector('#create-video').pause()")
    shot(p, "server_create_desktop.png")
    p.set_viewport_size({"width": 390, "height": 844})
    assert p.evaluate("() => document.documentElement.scrollWidth") <= 390  # nothing overflows on a phone
    shot(p, "server_create_phone.png")
    assert page.errors == []


def test_conversation_answers_typed_and_spoken_questions(page, portrait_path):
    p = page.page
    box = mouth_box(portrait_path)
    # make an avatar in the gallery
    p.click("#new-avatar summary")
    p.set_input_files("#avatar-image", str(portrait_path))
    p.fill("#avatar-name", "Eileen")
    p.fill("#avatar-persona", "You are an astronaut.")
    p.click("#avatar-form button[type=submit]")
    p.wait_for_selector(".avatar-card[aria-pressed=true]", timeout=120_000)
    p.wait_for_selector("#question:not([disabled])")

    # typed question, sent with Enter
    p.fill("#question", "Which planet do you like best?")
    p.press("#question", "Enter")
    p.wait_for_selector("#answer-video[data-job-id]", timeout=120_000)
    info = wait_playing(p, "#answer-video", 0.5)
    assert info["audioBytes"] > 0 and info["error"] is None
    assert p.inner_text("#caption-you .said") == "Which planet do you like best?"
    assert p.inner_text("#caption-avatar .said") == ANSWERS[0]
    assert p.inner_text("#caption-avatar .who") == "Eileen"
    motion = p.evaluate(MOUTH_MOTION_JS, ["#answer-video", list(box)])
    assert motion["samples"] >= 10 and motion["mouth"] > 3.0 and motion["mouth"] > 4 * motion["corner"] + 0.5, motion
    first_job = p.get_attribute("#answer-video", "data-job-id")
    shot(p, "server_conversation_desktop.png")

    # spoken question: the fake microphone plays the piper recording
    p.click("#mic")
    p.wait_for_selector("#mic[aria-pressed=true]")
    time.sleep(3.2)  # the recording is about 2.5 s long
    p.click("#mic")
    p.wait_for_function("(old) => { const v = document.querySelector('#answer-video');"
                        " return v.dataset.jobId && v.dataset.jobId !== old; }", arg=first_job, timeout=120_000)
    heard = p.inner_text("#caption-you .said").lower()
    assert "favourite planet" in heard or "favorite planet" in heard, heard
    assert p.inner_text("#caption-avatar .said") == ANSWERS[1]
    info = wait_playing(p, "#answer-video", 0.5)
    assert info["audioBytes"] > 0
    motion = p.evaluate(MOUTH_MOTION_JS, ["#answer-video", list(box)])
    assert motion["mouth"] > 3.0 and motion["mouth"] > 4 * motion["corner"] + 0.5, motion
    history = p.locator("#history li")
    assert history.count() == 2 and "favo" in history.nth(0).inner_text().lower()
    p.evaluate("() => document.querySelector('#answer-video').pause()")
    p.set_viewport_size({"width": 390, "height": 844})
    assert p.evaluate("() => document.documentElement.scrollWidth") <= 390
    shot(p, "server_conversation_phone.png")
    assert page.errors == []


def test_token_dialog_logs_the_page_in(browser, llm, tmp_path):
    settings = ServerSettings(data_dir=tmp_path, token="let-me-in", stages={"llm": "openai"},
                              backend_options={"llm": {"openai": {"base_url": llm.base_url, "api_key": "x"}}})
    with AppServer(create_app(settings)) as server:
        page = Page(browser, server.url + "/")
        try:
            p = page.page
            p.wait_for_selector("#token-dialog[open]")
            p.fill("#token-input", "wrong")
            p.press("#token-input", "Enter")
            p.wait_for_function("() => document.querySelector('#token-status').textContent.includes('not accepted')")
            p.fill("#token-input", "let-me-in")
            p.press("#token-input", "Enter")
            page.ready()
            assert not p.locator("#token-dialog").is_visible()
            # the two 401 answers are the only console messages: the browser logs failed requests
            assert all("401" in e for e in page.errors), page.errors
        finally:
            page.close()
