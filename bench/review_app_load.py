"""Review app under load: concurrent reviewers in headless Chromium against one running `nift-gate review serve`.

    .venv/bin/python bench/review_app_load.py [--sessions 20] [--items 25] [--pairwise-every 5]
                                              [--database URL] [--keep DIR] [--timeout 1200]

1. A fresh label store (SQLite in a temp folder unless ``--database`` names an empty one) holds sessions x items
   items, every ``--pairwise-every``-th a blind pair, each assigned to exactly one of the reviewers r01, r02, ...
2. One app: ``nift-gate review serve`` on a free port of 127.0.0.1 (the command users run, its defaults).
3. One headless Chromium (Debian's ``chromium``, fresh profile, background throttling off) with one tab per
   reviewer, each in its own browser context (its own cookies and Streamlit session), driven concurrently over the
   DevTools protocol (the ``websockets`` client): sign in by typing name and token, then for each item click the
   verdict ``accept`` and helpfulness ``4`` (a pair: ``A``) and Submit, and wait for the next item.
   The page is read only through the element keys the app keeps stable (``st-key-<key>`` classes: ``sign_in_*``,
   ``verdict_<id>``, ``helpfulness_<id>``, ``preference_<id>``, ``submit_<id>``, ``queue_empty``).
4. "Submit to next item shown": measured in the page, from the click on Submit (``performance.now()``) to the
   moment a MutationObserver sees the next item's submit button (or the empty-queue notice) in the DOM.
5. After every session is done, the store's rows are counted: each reviewer must have exactly one label or
   judgment on each of their items: lost (an item without one) and duplicated (two rows for one item and
   reviewer) must both be 0.

Prints a Markdown table (sessions, items, labels stored, lost, duplicated, p50 / p99 / max of submit-to-next in
ms, wall time) and exits 1 when a label is lost or duplicated or a session failed. Run it alone: 20 Chromium
tabs and a Streamlit server on a 2-core machine measure the machine as much as the app.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--mute-audio", "--disable-background-timer-throttling",
                  "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows",
                  "--window-size=1400,1000"]

# In-page timing: the click on Submit and the first DOM change that shows another item (or the empty queue).
SUBMIT_AND_TIME = """
(() => {
  const old = %(old)s;
  const button = document.querySelector('.st-key-submit_' + old + ' button');
  if (!button) return 'no submit button for item ' + old;
  window.__nextShown = null;
  const shown = () => {
    const next = document.querySelector('[class*="st-key-submit_"]');
    const id = next ? [...next.classList].find(c => c.startsWith('st-key-submit_')).slice(14) : null;
    if ((id !== null && id !== String(old)) || document.querySelector('.st-key-queue_empty')) {
      window.__nextShown = {ms: performance.now() - window.__submitAt, next: id};
      observer.disconnect();
    }
  };
  const observer = new MutationObserver(shown);
  observer.observe(document.body, {childList: true, subtree: true, attributes: true, attributeFilter: ['class']});
  window.__submitAt = performance.now();
  button.click();
  return 'clicked';
})()
"""
CURRENT_ITEM = """
(() => {
  const el = document.querySelector('[class*="st-key-submit_"]');
  if (el) return [...el.classList].find(c => c.startsWith('st-key-submit_')).slice(14);
  return document.querySelector('.st-key-queue_empty') ? 'empty' : null;
})()
"""


def _click_option(key: str, label: str) -> str:
    """JS: click the radio option labelled ``label`` inside the element keyed ``key``; true when it is checked."""
    return f"""
(() => {{
  const box = document.querySelector('.st-key-{key}');
  if (!box) return 'missing';
  const option = [...box.querySelectorAll('label')].find(l => l.innerText.trim() === {json.dumps(label)});
  if (!option) return 'no option';
  const input = option.querySelector('input');
  if (input && input.checked) return 'checked';
  option.click();
  return 'clicked';
}})()
"""


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
            time.sleep(0.2)


def _stop(process: subprocess.Popen | None) -> None:
    """End the process group this script started (start_new_session: the group id is the child's PID)."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


# ---- the store ------------------------------------------------------------------------------------------------
def reviewer_names(sessions: int) -> list[str]:
    return [f"r{i + 1:02d}" for i in range(sessions)]


def seed(url: str, sessions: int, per_session: int, pairwise_every: int) -> dict[str, list[int]]:
    """sessions x per_session items, each assigned to one reviewer; reviewer -> their item ids."""
    from harness.review.store import NewItem, ReviewStore

    text = "The answer explains the steps in order and names its sources. " * 4
    new = []
    for i in range(sessions * per_session):
        pair = pairwise_every > 0 and i % pairwise_every == pairwise_every - 1
        common = {"stratum": "random", "source": "bench/qa", "source_record_id": "load", "source_item_id": str(i),
                  "task": "qa", "candidate": "cand", "prompt": f"Question {i}: how does this work?",
                  "content_key": f"load-{i}", "required_reviewers": 1}
        new.append(NewItem(kind="pairwise", output_a=f"A {i}. {text}", output_b=f"B {i}. {text}", model_a="cand",
                           model_b="base", **common) if pair else
                   NewItem(kind="single", model="cand", output=f"Answer {i}. {text}", scores={"acc": 1.0},
                           **common))
    store = ReviewStore(url)
    try:
        store.add_items(new)
        store.assign(reviewer_names(sessions), 1)
        return {name: [q.item_id for q in store.queue(name, limit=per_session * 2)]
                for name in reviewer_names(sessions)}
    finally:
        store.close()


def count_rows(url: str, assigned: dict[str, list[int]]) -> dict[str, int]:
    """Labels and judgments stored, and against the assignments: lost (no row) and duplicated (extra rows)."""
    from sqlalchemy import func, select

    from harness.review.store import ReviewStore, judgments, labels

    store = ReviewStore(url)
    try:
        rows: dict[tuple[str, int], int] = {}
        with store.engine.connect() as conn:
            for table in (labels, judgments):
                for reviewer, item_id, n in conn.execute(select(table.c.reviewer, table.c.item_id, func.count())
                                                         .group_by(table.c.reviewer, table.c.item_id)):
                    rows[(reviewer, item_id)] = rows.get((reviewer, item_id), 0) + n
    finally:
        store.close()
    expected = {(r, i) for r, ids in assigned.items() for i in ids}
    return {"stored": sum(rows.values()), "expected": len(expected),
            "lost": sum(1 for key in expected if key not in rows),
            "duplicated": sum(n - 1 for n in rows.values() if n > 1),
            "unassigned": sum(n for key, n in rows.items() if key not in expected)}


# ---- the browser ----------------------------------------------------------------------------------------------
class Browser:
    """One DevTools connection to the browser, multiplexing a session per tab (flat sessions)."""

    def __init__(self, connection):
        self.connection, self.counter = connection, 0
        self.pending: dict[int, asyncio.Future] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.connection:
            message = json.loads(raw)
            future = self.pending.pop(message.get("id"), None)
            if future is not None and not future.done():
                future.set_result(message)

    async def call(self, method: str, session: str | None = None, **params):
        self.counter += 1
        ident = self.counter
        future = asyncio.get_running_loop().create_future()
        self.pending[ident] = future
        payload = {"id": ident, "method": method, "params": params}
        if session:
            payload["sessionId"] = session
        await self.connection.send(json.dumps(payload))
        message = await future
        if "error" in message:
            raise RuntimeError(f"{method}: {message['error']}")
        return message["result"]


@dataclass
class Tab:
    browser: Browser
    session: str

    async def js(self, expression: str):
        result = await self.browser.call("Runtime.evaluate", self.session, expression=expression,
                                         returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while True:
            value = await self.js(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                text = (await self.js("document.body ? document.body.innerText : ''") or "")[-600:]
                raise TimeoutError(f"waited {timeout:.0f}s for {what}; page ends: {text!r}")
            await asyncio.sleep(0.05)

    async def type_into(self, key: str, text: str) -> None:
        selector = json.dumps(f".st-key-{key} input")
        await self.wait_for(f"!!document.querySelector({selector})", 60, f"the {key} field")
        await self.js(f"document.querySelector({selector}).focus()")
        await self.browser.call("Input.insertText", self.session, text=text)


@dataclass
class SessionResult:
    reviewer: str
    submitted: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    error: str | None = None


async def _choose(tab: Tab, key: str, label: str) -> None:
    for _ in range(400):
        state = await tab.js(_click_option(key, label))
        if state == "checked":
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{key}: option {label!r} never became checked")


async def reviewer_session(browser: Browser, url: str, name: str, token: str, items: int,
                           step_timeout: float) -> SessionResult:
    result = SessionResult(name)
    try:
        context = (await browser.call("Target.createBrowserContext"))["browserContextId"]
        target = (await browser.call("Target.createTarget", url="about:blank",
                                     browserContextId=context))["targetId"]
        session = (await browser.call("Target.attachToTarget", targetId=target, flatten=True))["sessionId"]
        tab = Tab(browser, session)
        await browser.call("Page.enable", session)
        await browser.call("Emulation.setFocusEmulationEnabled", session, enabled=True)  # every tab "focused"
        await browser.call("Page.navigate", session, url=url)
        await tab.type_into("sign_in_name", name)
        await tab.type_into("sign_in_token", token)
        await tab.js("document.querySelector('.st-key-sign_in_submit button').click()")
        current = await tab.wait_for(CURRENT_ITEM, step_timeout, "the first item after signing in")
        while current != "empty":
            if result.submitted >= items:
                raise RuntimeError(f"more than the {items} items assigned were shown (item {current})")
            pairwise = await tab.js(f"!!document.querySelector('.st-key-preference_{current}')")
            if pairwise:
                await _choose(tab, f"preference_{current}", "A")
            else:
                await _choose(tab, f"verdict_{current}", "accept")
                await _choose(tab, f"helpfulness_{current}", "4")
            clicked = await tab.js(SUBMIT_AND_TIME % {"old": json.dumps(current)})
            if clicked != "clicked":
                raise RuntimeError(clicked)
            shown = await tab.wait_for("window.__nextShown", step_timeout, f"the item after {current}")
            result.latencies_ms.append(float(shown["ms"]))
            result.submitted += 1
            current = await tab.wait_for(CURRENT_ITEM, step_timeout, "the next item")
        await browser.call("Target.closeTarget", targetId=target)
    except Exception as exc:  # noqa: BLE001 (reported per session, counted as a failure)
        result.error = f"{type(exc).__name__}: {exc}"
    return result


async def drive(devtools_port: int, url: str, tokens: dict[str, str], items: int,
                step_timeout: float) -> list[SessionResult]:
    from websockets.asyncio.client import connect

    version = json.loads(_wait_http(f"http://127.0.0.1:{devtools_port}/json/version", 30))
    async with connect(version["webSocketDebuggerUrl"], max_size=256 << 20) as connection:
        browser = Browser(connection)
        try:
            return list(await asyncio.gather(*(reviewer_session(browser, url, name, token, items, step_timeout)
                                               for name, token in tokens.items())))
        finally:
            browser.reader.cancel()


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between order statistics (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20, help="Concurrent reviewer sessions (browser tabs).")
    parser.add_argument("--items", type=int, default=25, help="Items each reviewer labels.")
    parser.add_argument("--pairwise-every", type=int, default=5, help="Every n-th item is a blind pair (0: none).")
    parser.add_argument("--database", help="An empty label store URL (default: SQLite in a temp folder).")
    parser.add_argument("--keep", type=Path, help="Keep the store, the app's and Chromium's logs in this folder.")
    parser.add_argument("--timeout", type=float, default=1200, help="Seconds for the whole run.")
    parser.add_argument("--step-timeout", type=float, default=120, help="Seconds to wait for one page step.")
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium is not installed (apt-get install -y chromium)", file=sys.stderr)
        return 2
    folder = args.keep or Path(tempfile.mkdtemp(prefix="nift-review-load-"))
    folder.mkdir(parents=True, exist_ok=True)
    url = args.database or f"sqlite:///{(folder / 'review.db').resolve()}"
    tokens = {name: f"{name}-token-{os.urandom(4).hex()}" for name in reviewer_names(args.sessions)}
    assigned = seed(url, args.sessions, args.items, args.pairwise_every)
    import yaml

    pipeline = folder / "pipeline.yaml"
    pipeline.write_text(yaml.safe_dump({"run": "load", "review": {
        "database": url, "required_reviewers": 1,
        "reviewers": [{"name": n, "token": t} for n, t in tokens.items()]}}))
    port = _free_port()
    server = browser = None
    started = time.perf_counter()
    try:
        server = subprocess.Popen(
            [sys.executable, "-m", "harness.app.cli", "review", "serve", "--config", str(pipeline),
             "--home", str(folder / "home"), "--", "--server.port", str(port)],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True,
            stdout=open(folder / "streamlit.log", "w"), stderr=subprocess.STDOUT)
        _wait_http(f"http://127.0.0.1:{port}/_stcore/health", 90)
        profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=folder))
        browser = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                    "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
                                    "about:blank"], start_new_session=True, stdout=subprocess.DEVNULL,
                                   stderr=open(folder / "chromium.log", "w"), env={**os.environ, "HOME": str(folder)})
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not active.exists() or not active.read_text().strip():
            if browser.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start: {(folder / 'chromium.log').read_text()[-2000:]}")
            time.sleep(0.1)
        devtools_port = int(active.read_text().split()[0])
        results = asyncio.run(asyncio.wait_for(
            drive(devtools_port, f"http://127.0.0.1:{port}/", tokens, args.items, args.step_timeout), args.timeout))
    finally:
        _stop(browser)
        _stop(server)
    wall = time.perf_counter() - started
    counts = count_rows(url, assigned)
    latencies = [ms for r in results for ms in r.latencies_ms]
    failed = [r for r in results if r.error or r.submitted != len(assigned[r.reviewer])]
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)

    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.0f}"

    print(f"\nReview app load: {args.sessions} concurrent reviewer sessions (headless Chromium tabs) x {args.items} "
          f"items against one `nift-gate review serve` on 127.0.0.1 ({'SQLite' if url.startswith('sqlite') else url.split(':')[0]}"
          f", {os.cpu_count()} CPUs)\n")
    print("| sessions | items each | labels expected | labels stored | lost | duplicated | submits timed | "
          "submit to next item p50 (ms) | p99 (ms) | max (ms) | sessions failed | wall (s) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.sessions} | {args.items} | {counts['expected']} | {counts['stored']} | {counts['lost']} | "
          f"{counts['duplicated']} | {len(latencies)} | {ms(p50)} | {ms(p99)} | {ms(max(latencies, default=None))} | "
          f"{len(failed)} | {wall:.1f} |")
    for r in failed:
        print(f"\nsession {r.reviewer}: {r.submitted} of {len(assigned[r.reviewer])} submitted; {r.error or ''}")
    if counts["unassigned"]:
        print(f"\n{counts['unassigned']} rows on items not assigned to their reviewer")
    if args.keep:
        print(f"\nstore, app and browser logs kept in {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    ok = not failed and counts["lost"] == 0 and counts["duplicated"] == 0 and counts["unassigned"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
