"""A local OpenAI-compatible server with scripted failures and a fixed delay, for the HTTP teacher and judge
tests and bench/judge_throughput.py."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI:
    """Answers /v1/chat/completions.

    * prompts containing ``ALWAYS-FAIL`` get HTTP 500 every time;
    * every other prompt gets ``first_status`` (default HTTP 503; 429 is a rate limit; None: no scripted
      failure) on its first attempt, exercising retries, then succeeds;
    * every answer (a failure too) is sent ``delay_s`` seconds after the request arrived, as a model would
      take time to answer;
    * ``reply(prompt)`` decides the content (default: a fixed continuation).

    It records every attempt per prompt (``attempts``), every successful request body (``answered``) and the
    most requests it ever had in flight at once (``peak_in_flight``).
    """

    def __init__(self, reply=lambda prompt: "and so the story went on, quietly, into the evening.",
                 first_status: int | None = 503, delay_s: float = 0.0):
        self.reply, self.first_status, self.delay_s = reply, first_status, delay_s
        self.attempts: Counter[str] = Counter()
        self.answered: list[dict] = []
        self.in_flight = self.peak_in_flight = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers do: a request is not a new connection
            # headers and body go out as two writes: without this, Nagle's algorithm holds the body back until
            # the client's delayed ACK (~40 ms), a delay no real server adds
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][-1]["content"]
                with fake.lock:
                    fake.attempts[prompt] += 1
                    attempt = fake.attempts[prompt]
                    fake.in_flight += 1
                    fake.peak_in_flight = max(fake.peak_in_flight, fake.in_flight)
                try:
                    time.sleep(fake.delay_s)
                    self._answer(body, prompt, attempt)
                finally:
                    with fake.lock:
                        fake.in_flight -= 1

            def do_GET(self):
                # /v1/stats: what the server saw, for a client in another process (bench/judge_throughput.py)
                with fake.lock:
                    return self._send(200, {"peak_in_flight": fake.peak_in_flight, "answered": len(fake.answered)})

            def _answer(self, body, prompt, attempt):
                if "ALWAYS-FAIL" in prompt:
                    return self._send(500, {"error": "scripted failure"})
                if attempt == 1 and fake.first_status is not None:
                    return self._send(fake.first_status, {"error": "busy, retry"})
                text = fake.reply(prompt)
                with fake.lock:
                    fake.answered.append(body)
                return self._send(200, {"choices": [{"message": {"role": "assistant", "content": text},
                                                     "finish_reason": "stop"}],
                                        "usage": {"prompt_tokens": len(prompt.split()),
                                                  "completion_tokens": len(text.split())}})

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    """Serve in a process of its own (its CPU then does not compete with the client's for one interpreter):
    prints the base URL, answers ``reply`` to every request after ``--delay-ms``, stops when stdin closes."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--reply", default="A")
    args = parser.parse_args()
    with FakeOpenAI(reply=lambda prompt: args.reply, first_status=None, delay_s=args.delay_ms / 1000) as fake:
        print(fake.base_url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
