"""A persistent cache of generations, for every role (the bench's judges and answers, the hallucination grader,
the data stage's instruction-likeness judge), and what a generator cost.

A request is answered once per generator: :class:`GenerationCache` keeps every successful :class:`Generation`
under ``<home>/_cache/generations.sqlite``, keyed by the generator's identity (backend, model, weights hash or
endpoint, chat template; for a model run here, the versions of the libraries that run it) and a hash of
everything that decides the answer (the messages as sent, system prompt included; the sampling; the token
budget; the seed). A re-run, or a new candidate compared with an unchanged baseline, sends the judge only the
prompts it has not seen. A failed row is never stored, so it is retried next time. The file is SQLite in WAL
mode: several processes (two benches on one runs home) read and write it at once, each write one short
transaction; it needs a local filesystem (WAL does not work over NFS).

:class:`CachedGenerator` puts the cache (or none) in front of any :class:`~harness.core.generation.Generator`
and counts its :class:`GenerationUsage`: requests, cache hits, failures, tokens and the estimated cost.

What the key cannot see: an endpoint that serves a different model under the same name and URL (a hub model is
keyed by the hash of its snapshot's files, so a new commit on its ``main`` is another generator). Turn ``cache``
off (or delete the file) after changing what an endpoint serves.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from harness.core.errors import InputError
from harness.core.generation import (
    Generation,
    GenerationRequest,
    Generator,
    GeneratorConfig,
    chat_messages,
    estimated_cost_usd,
    make_generator,
    sampling_of,
)
from harness.core.records import canonical_json, config_hash, result_code_versions
from harness.core.sqlite import write_ahead_log

CACHE_FILE = Path("_cache") / "generations.sqlite"
#: Bumped when the key or the stored row changes meaning; older rows then miss (they are never misread).
CACHE_FORMAT = 1
#: Identity fields that do not change what is generated: the CPU thread count is chosen by measurement on
#: each machine, and keying on it would make every machine (and some re-runs) miss.
_NOT_IN_KEY = frozenset({"threads"})
#: Libraries whose version can change what a local model generates, of the result libraries every stage's
#: fingerprint holds (:data:`~harness.core.records.RESULT_LIBRARIES`): the tensor code, the model and tokenizer
#: code with its generation loop, the device placement, the weight formats read, and vLLM for its backend. Not
#: the others (lm-eval, scipy, ...): upgrading them changes no generation, and would ask a local judge again.
GENERATION_LIBRARIES = ("torch", "transformers", "accelerate", "safetensors", "gguf", "vllm")
#: SQLite's default limit on bound parameters is 999 in older builds; look hashes up in chunks below it.
_CHUNK = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS generations (
    identity_hash TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    identity TEXT NOT NULL,
    request TEXT NOT NULL,
    generation TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (identity_hash, request_hash)
) WITHOUT ROWID
"""


class GenerationUsage(BaseModel):
    """What one generator did for a stage, and what that would cost at the configured prices."""

    requests: int = Field(0, description="Requests asked of it, cache hits included.")
    cache_hits: int = Field(0, description="Requests answered without a call (no cost): from the generation "
                                           "cache, or as a repeat of another request of the same batch.")
    calls: int = Field(0, description="Requests sent to the model: requests - cache_hits.")
    failed: int = Field(0, description="Calls that failed after retries (never cached; retried next run).")
    prompt_tokens: int = Field(0, description="Prompt tokens of the calls (as the backend counted them).")
    completion_tokens: int = Field(0, description="Completion tokens of the calls.")
    price_per_1k_prompt_tokens: float = Field(0.0, description="The price the estimate used (config), USD.")
    price_per_1k_completion_tokens: float = Field(0.0, description="The price the estimate used (config), USD.")
    estimated_cost_usd: float = Field(0.0, description="Tokens x prices of the calls; cache hits cost nothing. "
                                                       "A local model's real cost is its machine time.")


def cache_identity(identity: dict[str, Any]) -> dict[str, Any]:
    """The part of a generator's identity that decides its answers. A model run here (transformers, vLLM) also
    answers by the code that runs it: the installed :data:`GENERATION_LIBRARIES` are part of it, so an upgrade
    asks again what was answered under the old version. An OpenAI-compatible endpoint answers by whatever its
    server runs, which no version installed here says: it stays keyed by its URL and model name."""
    key = {k: v for k, v in identity.items() if k not in _NOT_IN_KEY}
    if identity.get("backend") != "openai":
        installed = result_code_versions("generation")["libraries"]
        key["libraries"] = {name: installed[name] for name in GENERATION_LIBRARIES if name in installed}
    return key


def request_fingerprint(config: GeneratorConfig, request: GenerationRequest, seed: int) -> dict[str, Any]:
    """Everything about one request that decides its answer, as the backend receives it; not its row key
    (the same prompt asked under another key is the same request)."""
    fingerprint = {"format": CACHE_FORMAT, "messages": chat_messages(config, request.prompt, request.history),
                   "sampling": sampling_of(config, request).model_dump(), "max_new_tokens": request.max_new_tokens,
                   "seed": seed}
    if request.choices is not None:  # a ranked answer is another request (keys of generated ones stay as they were)
        fingerprint["choices"] = request.choices.model_dump(mode="json")
    return fingerprint


#: How long an operation waits for another process's lock on the cache before it fails.
BUSY_TIMEOUT_S = 30


class GenerationCache:
    """Successful generations in one SQLite file, shared by every stage and process on a runs home."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, CACHE_FORMAT):
                raise InputError(f"{self.path}: generation cache format {version}, this nift-gate reads "
                                 f"{CACHE_FORMAT}; move the file away to start an empty cache")
            db.execute(_SCHEMA)
            db.execute(f"PRAGMA user_version = {CACHE_FORMAT}")

    @classmethod
    def at_home(cls, home: str | Path) -> GenerationCache:
        """The runs home's cache, ``<home>/_cache/generations.sqlite``."""
        return cls(Path(home) / CACHE_FILE)

    def _connect(self) -> sqlite3.Connection:
        # A connection per operation: nothing is shared between threads, and a writer holds the lock only for
        # its own short transaction; others wait up to 30 s for it (busy_timeout) instead of failing.
        try:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
            write_ahead_log(db, BUSY_TIMEOUT_S)
            db.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; a lost row is just regenerated
        except sqlite3.OperationalError as exc:
            raise InputError(f"{self.path}: generation cache busy for {BUSY_TIMEOUT_S} s ({exc}); another "
                             "process holds it") from None
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: not a generation cache ({exc}); move it away to start an empty "
                             f"cache") from None
        return _Closing(db)

    def get(self, identity_hash: str, request_hashes: list[str]) -> dict[str, Generation]:
        """The stored generations of these requests (by request hash); absent ones are misses."""
        found: dict[str, Generation] = {}
        unique = list(dict.fromkeys(request_hashes))
        with self._connect() as db:
            for begin in range(0, len(unique), _CHUNK):
                chunk = unique[begin:begin + _CHUNK]
                rows = db.execute(f"SELECT request_hash, generation FROM generations WHERE identity_hash = ? AND "
                                  f"request_hash IN ({','.join('?' * len(chunk))})", [identity_hash, *chunk])
                # stored without its row key: the caller gives each answer the key of the row that asked
                found.update((h, Generation.model_validate({**json.loads(g), "key": ""})) for h, g in rows)
        return found

    def put(self, identity: dict[str, Any], rows: list[tuple[str, dict[str, Any], Generation]]) -> None:
        """Store (request hash, request fingerprint, generation) rows of one generator, in one transaction.
        The first answer stored for a request stays: a second writer of the same request changes nothing."""
        if not rows:
            return
        identity_hash, now = config_hash(identity), datetime.now(UTC).isoformat()
        with self._connect() as db:
            db.executemany("INSERT OR IGNORE INTO generations VALUES (?, ?, ?, ?, ?, ?)",
                           [(identity_hash, h, canonical_json(identity), canonical_json(request),
                             g.model_dump_json(exclude={"key", "cached"}), now) for h, request, g in rows])

    def count(self) -> int:
        """Generations stored, of every generator."""
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]


class _Closing:
    """``with`` on a connection commits (or rolls back) and then closes it; sqlite3's own only commits."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        return self.db

    def __exit__(self, kind, *exc) -> None:
        try:
            self.db.rollback() if kind else self.db.commit()
        finally:
            self.db.close()


class CachedGenerator:
    """A generator behind a :class:`GenerationCache` (``None``: no cache), counting its usage.

    Same interface as the generator it wraps: ``generate`` returns one :class:`Generation` per request, in
    order, with the request's own key; those served from the cache have ``cached=True``. Identical requests
    in one call are generated once.
    """

    def __init__(self, generator: Generator, cache: GenerationCache | None):
        self.generator, self.cache = generator, cache
        self.config: GeneratorConfig = generator.config
        self.identity: dict[str, Any] = generator.identity
        self.usage = GenerationUsage(price_per_1k_prompt_tokens=self.config.price_per_1k_prompt_tokens,
                                     price_per_1k_completion_tokens=self.config.price_per_1k_completion_tokens)

    def count_tokens(self, text: str) -> int:
        return self.generator.count_tokens(text)

    def generate(self, requests: list[GenerationRequest], seed: int,
                 on_progress: Callable[[int], None] | None = None) -> list[Generation]:
        identity = cache_identity(self.identity)
        fingerprints = [request_fingerprint(self.config, r, seed) for r in requests]
        hashes = [config_hash(f) for f in fingerprints]
        stored = self.cache.get(config_hash(identity), hashes) if self.cache else {}
        first: dict[str, int] = {}  # request hash -> index of the first request asking it
        for index, h in enumerate(hashes):
            if h not in stored:
                first.setdefault(h, index)
        fresh = self.generator.generate([requests[i] for i in first.values()], seed, on_progress) if first else []
        made = dict(zip(first, fresh))
        if self.cache:
            self.cache.put(identity, [(h, fingerprints[first[h]], g) for h, g in made.items() if g.error is None
                                      and g.finish_reason != "error"])
        if on_progress and len(requests) > len(first):
            on_progress(len(requests) - len(first))
        results = [(stored[h].model_copy(update={"key": r.key, "cached": True}) if h in stored
                    else made[h].model_copy(update={"key": r.key})) for r, h in zip(requests, hashes)]
        self._count(len(requests), fresh)
        return results

    def _count(self, asked: int, fresh: list[Generation]) -> None:
        u = self.usage
        prompt = u.prompt_tokens + sum(g.prompt_tokens for g in fresh)
        completion = u.completion_tokens + sum(g.completion_tokens for g in fresh)
        self.usage = u.model_copy(update={
            "requests": u.requests + asked, "cache_hits": u.cache_hits + asked - len(fresh),
            "calls": u.calls + len(fresh), "failed": u.failed + sum(1 for g in fresh if g.error is not None),
            "prompt_tokens": prompt, "completion_tokens": completion,
            "estimated_cost_usd": estimated_cost_usd(self.config, prompt, completion)})


def cached_generator(config: GeneratorConfig, home: str | Path) -> CachedGenerator:
    """``make_generator(config)`` behind the runs home's generation cache, or behind none when
    ``config.cache`` is off; either way its usage is counted."""
    return CachedGenerator(make_generator(config), GenerationCache.at_home(home) if config.cache else None)
