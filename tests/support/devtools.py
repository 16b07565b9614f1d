"""Headless Chromium driven over the DevTools protocol (the `websockets` client), for tests that must look at a
page as a browser lays it out: element boxes at screenshot time, a screenshot, the text.

    with HeadlessChromium(tmp_path) as browser:
        result = browser.run(url, inspect, width=1280, height=800)   # inspect: async (DevTools) -> anything

Debian's ``chromium`` with a fresh profile in a temp folder, started in its own session and ended by its
process group; nothing but the given URL is loaded (background networking, sync and updates are off).
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
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Self

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--hide-scrollbars", "--mute-audio"]


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class DevTools:
    """One page's DevTools session: ``call`` a protocol method, evaluate ``js``, ``wait_for`` a condition."""

    def __init__(self, connection):
        self.connection, self.counter = connection, 0

    async def call(self, method: str, **params) -> dict[str, Any]:
        self.counter += 1
        await self.connection.send(json.dumps({"id": self.counter, "method": method, "params": params}))
        while True:
            message = json.loads(await self.connection.recv())
            if message.get("id") == self.counter:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    async def js(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not await self.js(expression):
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout}s for {expression}")
            await asyncio.sleep(0.1)

    async def viewport(self, width: int, height: int) -> None:
        """Lay the page out at exactly ``width`` x ``height`` CSS pixels (scale 1), as a screenshot shows it."""
        await self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                        mobile=False)

    async def navigate(self, url: str) -> None:
        await self.call("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete'")

    async def screenshot(self, path: Path) -> Path:
        """The visible viewport as PNG."""
        shot = await self.call("Page.captureScreenshot", format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    async def rect(self, selector: str) -> dict[str, float] | None:
        """``getBoundingClientRect()`` of the first element matching ``selector`` (None when there is none)."""
        return await self.js(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
            " const r = e.getBoundingClientRect();"
            " return {top: r.top, bottom: r.bottom, left: r.left, right: r.right, width: r.width,"
            " height: r.height}; })()")

    async def rects(self, selector: str) -> list[dict[str, float]]:
        """``getBoundingClientRect()`` of every element matching ``selector``, in document order."""
        return await self.js(
            f"[...document.querySelectorAll({json.dumps(selector)})].map(e => {{"
            " const r = e.getBoundingClientRect();"
            " return {top: r.top, bottom: r.bottom, left: r.left, right: r.right, width: r.width,"
            " height: r.height, text: e.innerText}; })")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float) -> str:
    """The body of ``url`` once it answers, retried until ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class HeadlessChromium:
    """A headless Chromium with remote debugging on a free local port; a context manager that ends it."""

    def __init__(self, folder: Path, startup_timeout: float = 60):
        binary = chromium_binary()
        if binary is None:
            raise FileNotFoundError("chromium is not installed (apt-get install -y chromium)")
        self.folder, self.binary, self.startup_timeout = Path(folder), binary, startup_timeout
        self.process: subprocess.Popen | None = None
        self.port: int | None = None

    def __enter__(self) -> Self:
        self.folder.mkdir(parents=True, exist_ok=True)
        profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=self.folder))  # fresh: no stale port file
        log = profile.with_suffix(".log")
        env = {**os.environ, "HOME": str(self.folder)}
        self.process = subprocess.Popen(
            [self.binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "--remote-debugging-address=127.0.0.1", "about:blank"],
            start_new_session=True, stdout=subprocess.DEVNULL, stderr=open(log, "w"), env=env)
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.startup_timeout
        while not active.exists() or not active.read_text().strip():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"chromium did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        self.port = int(active.read_text().split()[0])
        return self

    def __exit__(self, *exc) -> None:
        """End the process group this helper started (start_new_session: the group id is the child's PID)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    async def _session(self, url: str, inspect: Callable[[DevTools], Awaitable[Any]], width: int, height: int):
        from websockets.asyncio.client import connect

        targets = json.loads(wait_http(f"http://127.0.0.1:{self.port}/json/list", 30))
        page = next(t for t in targets if t["type"] == "page")
        async with connect(page["webSocketDebuggerUrl"], max_size=64 << 20) as connection:
            tools = DevTools(connection)
            await tools.call("Page.enable")
            await tools.viewport(width, height)
            await tools.navigate(url)
            return await inspect(tools)

    def run(self, url: str, inspect: Callable[[DevTools], Awaitable[Any]], width: int = 1280, height: int = 800,
            timeout: float = 120) -> Any:
        """Open ``url`` in a ``width`` x ``height`` viewport and return what ``inspect`` returns."""
        return asyncio.run(asyncio.wait_for(self._session(url, inspect, width, height), timeout))
