"""The real app in headless Chromium, started the way users start it (`nift-gate review serve` with its defaults).

A reviewer signs in by typing, sees a hostile model output as text (nothing in it runs) beside hostile guidelines
(no link in them runs anything), labels it with the keyboard (N reject, 2, T toxic, a typed comment, Ctrl+Enter),
sees the next item at once, skips it (S), judges a two-turn blind pair shown as a conversation (B, Ctrl+Enter),
and signs out. No request leaves 127.0.0.1 (usage statistics are off) and the developer toolbar is hidden.

Debian's `chromium` with a fresh profile, driven over the DevTools protocol (the `websockets` client). Set
NIFT_SCREENSHOT_DIR to keep the screenshots (review-app.png: the hostile item; review-two-turn.png: the pair).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from devtools import free_port, wait_http
from review_support import BASELINE, CANDIDATE, TOKENS

from harness.review.store import NewItem, ReviewStore

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = ("<script>document.title='pwned-script';document.body.appendChild(Object.assign("
           "document.createElement('div'),{id:'pwned'}))</script>"
           "<img src=\"x\" onerror=\"document.title='pwned-img';window.__pwned=1\"> **not bold**")
HOSTILE_GUIDELINES = """# Team guidelines

<script>document.title='pwned-guidelines'</script><img src=x onerror="window.__pwned=2">
[click me](javascript:window.__pwned=3) [me too](JaVaScRiPt\\:window.__pwned=4) [data](data:text/html,hi)
<javascript:window.__pwned=5> [ref][r] [a real link](https://example.org/rules)

[r]: javascript:window.__pwned=6
"""
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1300"]
# Keys as DevTools sends them: (key, code, Windows virtual key code).
KEYS = {"n": ("n", "KeyN", 78), "t": ("t", "KeyT", 84), "s": ("s", "KeyS", 83), "b": ("b", "KeyB", 66),
        "2": ("2", "Digit2", 50), "Enter": ("Enter", "Enter", 13)}
CTRL = 2






def _stop(process: subprocess.Popen) -> None:
    """End the process group this test started (start_new_session: the group id is the child's PID)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


class DevTools:
    def __init__(self, connection):
        self.connection, self.counter, self.requests = connection, 0, []

    async def call(self, method: str, **params):
        self.counter += 1
        await self.connection.send(json.dumps({"id": self.counter, "method": method, "params": params}))
        while True:
            message = json.loads(await self.connection.recv())
            if message.get("method") == "Network.requestWillBeSent":
                self.requests.append(message["params"]["request"]["url"])
            if message.get("id") == self.counter:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    async def js(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while not await self.js(expression):
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout}s for {expression}; page: {await self.js('document.body.innerText')!r}")
            await asyncio.sleep(0.2)

    async def type_into(self, selector: str, text: str):
        await self.wait_for(f"!!document.querySelector({json.dumps(selector)})")
        await self.js(f"document.querySelector({json.dumps(selector)}).focus()")
        await self.call("Input.insertText", text=text)

    async def press(self, name: str, modifiers: int = 0):
        """A key pressed and released where nothing is focused (as a reviewer's hands on the keyboard)."""
        key, code, vk = KEYS[name]
        common = {"key": key, "code": code, "windowsVirtualKeyCode": vk, "nativeVirtualKeyCode": vk,
                  "modifiers": modifiers}
        await self.call("Input.dispatchKeyEvent", type="keyDown", **common,
                        **({"text": key} if len(key) == 1 and not modifiers else {}))
        await self.call("Input.dispatchKeyEvent", type="keyUp", **common)

    async def screenshot(self, path: Path):
        shot = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))


def _checked(key: str, index: int) -> str:
    """JS: the index-th radio/checkbox input of the widget keyed ``key`` is checked."""
    return f"(document.querySelectorAll('.st-key-{key} input')[{index}] || {{}}).checked === true"


async def _drive(devtools_port: int, app_url: str, shots: Path) -> dict:
    from websockets.asyncio.client import connect

    targets = json.loads(wait_http(f"http://127.0.0.1:{devtools_port}/json/list", 30))
    page = next(t for t in targets if t["type"] == "page")
    connection = await connect(page["webSocketDebuggerUrl"], max_size=64 << 20)
    tools = DevTools(connection)
    await tools.call("Page.enable")
    await tools.call("Network.enable")
    # The first load after the server starts can show only the spinner: load, wait, and load again.
    for _ in range(2):
        await tools.call("Page.navigate", url=app_url)
        await tools.wait_for("document.readyState === 'complete'")
    state: dict = {}
    # Sign in.
    await tools.type_into('input[aria-label="Name"]', "ann")
    await tools.type_into('input[aria-label="Token"]', TOKENS["ann"])
    await tools.js("[...document.querySelectorAll('button')].find(b => b.innerText.includes('Sign in')).click()")
    await tools.wait_for("document.body.innerText.includes('pwned-script') && !!document.querySelector('.st-key-submit_1')")
    await tools.wait_for("document.body.innerText.includes('Team guidelines')")
    await asyncio.sleep(1.0)  # let any script or onerror handler that was going to run, run
    state["hostile"] = {
        "title": await tools.js("document.title"),
        "pwned_div": await tools.js("document.getElementById('pwned') !== null"),
        "pwned_flag": await tools.js("window.__pwned === undefined ? null : window.__pwned"),
        "img_x": await tools.js("document.querySelectorAll('img[src=\"x\"]').length"),
        "strong": await tools.js("[...document.querySelectorAll('strong')].some(s => s.innerText === 'not bold')"),
        "text": await tools.js("document.body.innerText"),
        "links": await tools.js("[...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))"),
        "deploy": await tools.js("!!document.querySelector('[data-testid=\"stAppDeployButton\"]') || "
                                 "document.body.innerText.includes('Deploy')"),
    }
    await tools.screenshot(shots / "review-app.png")
    # Label it from the keyboard: N (reject), 2, T (toxic); a comment typed; Ctrl+Enter.
    await tools.js("document.activeElement && document.activeElement.blur()")
    for key, done in (("n", _checked("verdict_1", 1)), ("2", _checked("helpfulness_1", 1)),
                      ("t", _checked("flag_toxic_1", 0))):
        await tools.press(key)
        await tools.wait_for(done, 20)
    await tools.type_into(".st-key-comment_1 textarea", "typed, then Ctrl+Enter")
    await tools.press("Enter", CTRL)
    # The next item is there at once, with the acknowledgement of the label just stored.
    await tools.wait_for("!!document.querySelector('.st-key-submit_2') && document.body.innerText.includes('Saved: label')")
    state["after_first"] = await tools.js("document.body.innerText")
    # Skip it (S): the two-turn pair is next.
    await tools.js("document.activeElement && document.activeElement.blur()")
    await tools.press("s")
    await tools.wait_for("!!document.querySelector('.st-key-submit_3') && document.body.innerText.includes('Another one?')")
    await asyncio.sleep(0.5)  # let the layout settle for the screenshot
    state["pair_text"] = await tools.js("document.body.innerText")
    await tools.screenshot(shots / "review-two-turn.png")
    await tools.js("document.activeElement && document.activeElement.blur()")
    await tools.press("b")
    await tools.wait_for(_checked("preference_3", 1), 20)
    await tools.press("Enter", CTRL)
    await tools.wait_for("document.body.innerText.includes('Only the 1 item(s) you skipped are left.')")
    # Sign out: the sign-in form again, nothing of the queue.
    await tools.js("document.querySelector('.st-key-sign_out button').click()")
    # the rerun draws the sign-in form before it removes the queue's elements: wait for both
    await tools.wait_for("!!document.querySelector('input[aria-label=\"Name\"]') && "
                         "!document.body.innerText.includes('Signed in: ann')")
    state["signed_out"] = await tools.js("document.body.innerText")
    state["requests"] = list(tools.requests)
    await connection.close()
    return state


def _write_items(database: str) -> None:
    review = ReviewStore(database)
    review.add_items([
        NewItem(kind="single", stratum="flagged", source="audit/toxicity", source_record_id="r", source_item_id="1",
                task="rtp", candidate=CANDIDATE, model=CANDIDATE, prompt="Continue: <b>hello</b>", output=HOSTILE,
                scores={"toxicity": 0.97}, flags={"toxic": True}, content_key="hostile"),
        NewItem(kind="single", stratum="random", source="bench/nift_if", source_record_id="r", source_item_id="2",
                task="nift_if", candidate=CANDIDATE, model=CANDIDATE, output="Thanks for watering my plants!",
                prompt="<|im_start|>system\nYou are a helpful AI assistant<|im_end|>\n<|im_start|>user\n"
                       "Write a thank-you note.<|im_end|>\n<|im_start|>assistant\n", content_key="second"),
        NewItem(kind="pairwise", stratum="pairwise", source="bench/pairwise", source_record_id="r",
                source_item_id="q2", task="pairwise", candidate=CANDIDATE, content_key="pair",
                prompt="(turn 1) Name a colour.\n\n(turn 2) Another one?", output_a="(turn 1) red\n\n(turn 2) blue",
                output_b="(turn 1) green\n\n(turn 2) teal", model_a=CANDIDATE, model_b=BASELINE,
                messages=[{"role": "user", "content": "Name a colour."}, {"role": "answer", "a": "red", "b": "green"},
                          {"role": "user", "content": "Another one?"}, {"role": "answer", "a": "blue", "b": "teal"}]),
    ])
    review.assign(["ann"], 1)
    review.close()


@pytest.mark.slow
def test_a_reviewer_labels_from_the_keyboard_in_a_real_browser_and_nothing_hostile_runs(tmp_path, config):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed (make test installs Debian's chromium package)")
    _write_items(config.database)
    (tmp_path / "guidelines.md").write_text(HOSTILE_GUIDELINES)
    pipeline = tmp_path / "pipeline.yaml"
    settings = config.model_dump(mode="json", exclude={"reviewers"}) | {"guidelines": "guidelines.md"}
    settings["reviewers"] = [{"name": r.name, "role": r.role, "token": TOKENS[r.name]} for r in config.reviewers]
    pipeline.write_text(yaml.safe_dump({"run": "r1", "review": settings}))

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(tmp_path / "streamlit.log", "w") as out:  # the child keeps its own copy of the descriptor
        server = subprocess.Popen(  # the way users start it, with serve's own defaults (toolbar, statistics, ...)
            [sys.executable, "-m", "harness.app.cli", "review", "serve", "--config", str(pipeline), "--",
             "--server.port", str(port)], env=env, cwd=ROOT, start_new_session=True, stdout=out,
            stderr=subprocess.STDOUT)
    browser = None
    shots = Path(os.environ.get("NIFT_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    try:
        assert wait_http(f"http://127.0.0.1:{port}/_stcore/health", 120) == "ok"
        profile = tmp_path / "chromium-profile"
        with open(tmp_path / "chromium.log", "w") as err:
            browser = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                        "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
                                        "about:blank"], start_new_session=True, stdout=subprocess.DEVNULL,
                                       stderr=err)
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not active.exists() or not active.read_text().strip():
            assert time.monotonic() < deadline, (tmp_path / "chromium.log").read_text()[-2000:]
            time.sleep(0.2)
        devtools_port = int(active.read_text().split()[0])
        state = asyncio.run(asyncio.wait_for(_drive(devtools_port, f"http://127.0.0.1:{port}/", shots), 240))
    finally:
        if browser is not None:
            _stop(browser)
        _stop(server)
    hostile = state["hostile"]
    # The output is shown, character for character, as text...
    assert HOSTILE in hostile["text"] and "Continue: <b>hello</b>" in hostile["text"]
    # ...and nothing in it or in the guidelines ran or became an element; no link runs or embeds anything.
    assert "pwned" not in hostile["title"]
    assert not hostile["pwned_div"] and hostile["pwned_flag"] is None
    assert hostile["img_x"] == 0 and not hostile["strong"]
    assert "https://example.org/rules" in hostile["links"]
    assert not [h for h in hostile["links"] if h.strip().lower().startswith(("javascript", "data:", "vbscript"))]
    assert not hostile["deploy"]  # client.toolbarMode viewer
    assert (shots / "review-app.png").stat().st_size > 10_000  # a rendered page, not an empty image
    # The keyboard label was stored as pressed, and the next item came straight after.
    review = ReviewStore(config.database)
    first = review.my_label(1, "ann")
    assert (first.verdict, first.helpfulness, first.flags["toxic"], first.comment) == (
        "reject", 2, True, "typed, then Ctrl+Enter")
    assert first.lead_time_s > 0 and len(first.guidelines_sha256) == 64
    # Ctrl+Enter in the comment box submits the form and presses the shortcut: still one label, not two.
    assert review.history_frame()["item_id"].tolist() == [1, 3]
    assert f"Saved: label {first.id} on item 1." in state["after_first"]
    assert "Write a thank-you note." in state["after_first"] and "<|im_start|>" not in state["after_first"]
    # The two-turn pair as a conversation: both user turns, A and B per turn, no model names, no joined markers.
    pair = state["pair_text"]
    for text in ("Name a colour.", "Another one?", "red", "green", "blue", "teal", "Answer A · turn 1",
                 "Answer B · turn 2"):
        assert text in pair
    assert "(turn 1)" not in pair and CANDIDATE not in pair and BASELINE not in pair
    assert (shots / "review-two-turn.png").stat().st_size > 10_000
    assert review.my_label(3, "ann").preference == "B" and review.my_label(2, "ann") is None  # skipped
    # Signed out: back at the sign-in form.
    assert "Sign in" in state["signed_out"] and "Signed in: ann" not in state["signed_out"]
    # Usage statistics off: the browser asked nothing of any host but the app's.
    hosts = {urlparse(u).hostname for u in state["requests"] if urlparse(u).scheme in ("http", "https", "ws", "wss")}
    assert hosts == {"127.0.0.1"}, state["requests"]
