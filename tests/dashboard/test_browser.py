"""The real app in headless Chromium: a hostile model output is shown as text and runs nothing.

Starts the app with `nift-gate review serve` (its own session, tracked by PID) and Debian's `chromium` with a
fresh profile, drives it over the DevTools protocol (the `websockets` client): sign in by typing, open the item, read the DOM, take a screenshot. Set NIFT_SCREENSHOT_DIR to keep
the screenshot.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from review_support import CANDIDATE, TOKENS

from harness.review.store import NewItem, ReviewStore

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = ("<script>document.title='pwned-script';document.body.appendChild(Object.assign("
           "document.createElement('div'),{id:'pwned'}))</script>"
           "<img src=\"x\" onerror=\"document.title='pwned-img';window.__pwned=1\"> **not bold**")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1000"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


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
        self.connection, self.counter = connection, 0

    async def call(self, method: str, **params):
        self.counter += 1
        await self.connection.send(json.dumps({"id": self.counter, "method": method, "params": params}))
        while True:
            message = json.loads(await self.connection.recv())
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
            await asyncio.sleep(0.3)

    async def type_into(self, selector: str, text: str):
        await self.wait_for(f"!!document.querySelector({json.dumps(selector)})")
        await self.js(f"document.querySelector({json.dumps(selector)}).focus()")
        await self.call("Input.insertText", text=text)


async def _drive(devtools_port: int, app_url: str, screenshot: Path) -> dict:
    from websockets.asyncio.client import connect

    targets = json.loads(_wait_http(f"http://127.0.0.1:{devtools_port}/json/list", 30))
    page = next(t for t in targets if t["type"] == "page")
    connection = await connect(page["webSocketDebuggerUrl"], max_size=64 << 20)
    tools = DevTools(connection)
    await tools.call("Page.enable")
    # The first load after the server starts can show only the spinner: load, wait, and load again.
    for _ in range(2):
        await tools.call("Page.navigate", url=app_url)
        await tools.wait_for("document.readyState === 'complete'")
    await tools.type_into('input[aria-label="Name"]', "ann")
    await tools.type_into('input[aria-label="Token"]', TOKENS["ann"])
    await tools.js("[...document.querySelectorAll('button')].find(b => b.innerText.includes('Sign in')).click()")
    await tools.wait_for("document.body.innerText.includes('pwned-script')")
    await asyncio.sleep(1.0)  # let any script or onerror handler that was going to run, run
    state = {
        "title": await tools.js("document.title"),
        "pwned_div": await tools.js("document.getElementById('pwned') !== null"),
        "pwned_flag": await tools.js("window.__pwned === 1"),
        "img_x": await tools.js("document.querySelectorAll('img[src=\"x\"]').length"),
        "strong": await tools.js("[...document.querySelectorAll('strong')].some(s => s.innerText === 'not bold')"),
        "text": await tools.js("document.body.innerText"),
    }
    shot = await tools.call("Page.captureScreenshot", format="png")
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    await connection.close()
    return state


@pytest.mark.slow
def test_hostile_output_is_text_in_a_real_browser(tmp_path, config):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed (make test installs Debian's chromium package)")
    review = ReviewStore(config.database)
    review.add_items([NewItem(kind="single", stratum="flagged", source="audit/toxicity", source_record_id="r",
                              source_item_id="1", task="rtp", candidate=CANDIDATE, model=CANDIDATE,
                              prompt="Continue: <b>hello</b>", output=HOSTILE, scores={"toxicity": 0.97},
                              flags={"toxic": True}, content_key="hostile")])
    review.assign(["ann"], 1)
    review.close()
    pipeline = tmp_path / "pipeline.yaml"
    settings = config.model_dump(mode="json", exclude={"reviewers"})
    settings["reviewers"] = [{"name": r.name, "role": r.role, "token": TOKENS[r.name]} for r in config.reviewers]
    pipeline.write_text(yaml.safe_dump({"run": "r1", "review": settings}))

    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(  # the way users start it: nift-gate review serve, streamlit flags after --
        [sys.executable, "-m", "harness.app.cli", "review", "serve", "--config", str(pipeline), "--",
         "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"], env=env, cwd=ROOT,
        start_new_session=True,
        stdout=open(tmp_path / "streamlit.log", "w"), stderr=subprocess.STDOUT)
    browser = None
    try:
        assert _wait_http(f"http://127.0.0.1:{port}/_stcore/health", 60) == "ok"
        profile = tmp_path / "chromium-profile"
        browser = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                    "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
                                    "about:blank"], start_new_session=True, stdout=subprocess.DEVNULL,
                                   stderr=open(tmp_path / "chromium.log", "w"))
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not active.exists() or not active.read_text().strip():
            assert time.monotonic() < deadline, (tmp_path / "chromium.log").read_text()[-2000:]
            time.sleep(0.2)
        devtools_port = int(active.read_text().split()[0])
        screenshot = Path(os.environ.get("NIFT_SCREENSHOT_DIR") or tmp_path) / "review-app.png"
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        state = asyncio.run(asyncio.wait_for(_drive(devtools_port, f"http://127.0.0.1:{port}/", screenshot), 180))
    finally:
        if browser is not None:
            _stop(browser)
        _stop(server)
    # Shown, character for character, as text...
    assert HOSTILE in state["text"]
    assert "Continue: <b>hello</b>" in state["text"]
    # ...and nothing in it ran or became an element.
    assert "pwned" not in state["title"]
    assert not state["pwned_div"] and not state["pwned_flag"]
    assert state["img_x"] == 0 and not state["strong"]
    assert screenshot.stat().st_size > 10_000  # a rendered page, not an empty image
