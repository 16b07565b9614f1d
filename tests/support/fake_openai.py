"""A local OpenAI-compatible server with scripted failures, for the HTTP teacher and judge tests."""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI:
    """Answers /v1/chat/completions.

    * prompts containing ``ALWAYS-FAIL`` get HTTP 500 every time;
    * every other prompt gets HTTP 503 on its first attempt (exercising retries), then succeeds;
    * ``reply(prompt)`` decides the content (default: a fixed continuation).
    """

    def __init__(self, reply=lambda prompt: "and so the story went on, quietly, into the evening."):
        self.reply = reply
        self.attempts: Counter[str] = Counter()
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][-1]["content"]
                with fake.lock:
                    fake.attempts[prompt] += 1
                    attempt = fake.attempts[prompt]
                if "ALWAYS-FAIL" in prompt:
                    return self._send(500, {"error": "scripted failure"})
                if attempt == 1:
                    return self._send(503, {"error": "busy, retry"})
                text = fake.reply(prompt)
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
