"""Scripted models that return queued or looked-up outputs, for exact statistics in tests."""

from __future__ import annotations

from collections.abc import Callable

from lm_eval.api.model import LM


class ScriptedLM(LM):
    """An lm-eval LM whose choices and generations are decided by the test.

    ``choose(context, choices_seen)`` is not needed: ``prefers(context, continuation)`` says whether this model
    favours that continuation; favoured ones score -1, the rest -5.
    """

    def __init__(self, prefers: Callable[[str, str], bool] = lambda c, x: False,
                 generate: Callable[[str], str] = lambda context: ""):
        super().__init__()
        self.prefers, self.generate = prefers, generate
        self.calls = 0

    def loglikelihood(self, requests):
        self.calls += len(requests)
        return [(-1.0 if self.prefers(*r.args) else -5.0, False) for r in requests]

    def loglikelihood_rolling(self, requests):
        raise NotImplementedError

    def generate_until(self, requests):
        self.calls += len(requests)
        return [self.generate(r.args[0]) for r in requests]


class ScriptedGenerator:
    """The teacher/judge interface (`generate(requests, seed)`) with replies looked up by request key."""

    def __init__(self, reply: Callable[[str, str], str]):
        self.reply = reply  # (key, prompt) -> text
        self.identity = {"backend": "scripted"}
        self.requests = []

    def generate(self, requests, seed, on_progress=None):
        from harness.core.generation import Generation

        self.requests.extend(requests)
        return [Generation(key=r.key, text=self.reply(r.key, r.prompt), finish_reason="stop") for r in requests]
