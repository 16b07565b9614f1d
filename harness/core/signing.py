"""Record attestation: an HMAC-SHA256 of a record file's exact bytes, keyed by a secret only CI holds.

The gate checks that each record agrees with itself, with its stage's code and with its run, but whoever can
write the runs home can edit a record consistently (a bench record's comparisons changed and its deltas rebuilt
through ``BenchRecord``). A signature made by the stage runner's commit, with a key the writer of the home does
not hold, tells such an edit from a record a stage wrote.

* Key: the environment variable :data:`KEY_VARIABLE` (a CI secret of at least :data:`MIN_KEY_BYTES` bytes). It
  is read, never logged, and never written into a record, a signature or an error; a signature names it only by
  its :attr:`RecordKey.key_id`, the first 8 hex digits of its sha256.
* Signature: :data:`SIGNATURE_FILE` beside ``record.json``, a small JSON object with the algorithm, the key id
  and the HMAC of the record file's bytes. The record's bytes are unchanged, and since the record pins the
  sha256 of every file it wrote (``outputs``), the signature covers the whole folder. The runner writes it inside
  the same folder commit as the record (:meth:`harness.core.runner.StageRun.commit`).
* Verification: :func:`signature_problem` checks the bytes a reader pinned (the gate reads each record once)
  against the signature beside them, comparing digests with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from harness.core.errors import ConfigError

#: The environment variable holding the signing key (a CI secret; unset: records are not signed).
KEY_VARIABLE = "NIFT_RECORD_KEY"
#: The signature file beside a stage's ``record.json``.
SIGNATURE_FILE = "record.sig"
ALGORITHM = "hmac-sha256"
#: The shortest key accepted: HMAC-SHA256 is no stronger than its key, and a short one can be guessed.
MIN_KEY_BYTES = 32


@dataclass(frozen=True)
class RecordKey:
    """The signing key. Its bytes are kept out of ``repr`` (a traceback, a log line of the run holding it)."""

    secret: bytes = field(repr=False)

    @property
    def key_id(self) -> str:
        """What a signature names the key by: the first 8 hex digits of its sha256, never the key itself."""
        return hashlib.sha256(self.secret).hexdigest()[:8]

    def digest(self, data: bytes) -> str:
        return hmac.new(self.secret, data, hashlib.sha256).hexdigest()


def record_key() -> RecordKey | None:
    """The key in :data:`KEY_VARIABLE`; None when it is unset or empty. A key shorter than
    :data:`MIN_KEY_BYTES` is a :class:`ConfigError` (whose message gives its length, not its bytes)."""
    value = os.environ.get(KEY_VARIABLE)
    if not value:
        return None
    secret = os.fsencode(value)
    if len(secret) < MIN_KEY_BYTES:
        raise ConfigError(f"{KEY_VARIABLE} holds {len(secret)} bytes; a record signing key needs at least "
                          f"{MIN_KEY_BYTES} (e.g. `openssl rand -hex 32`, kept as a CI secret)")
    return RecordKey(secret)


def signature_text(data: bytes, key: RecordKey, also: str | None = None) -> str:
    """The contents of :data:`SIGNATURE_FILE` for a record file holding ``data``. ``also``: the HMAC of the
    record bytes being replaced, kept while an in-place commit swaps the record (either file may then be read
    with the other's old version; :meth:`harness.core.runner.StageRun.commit_in_place`)."""
    digests = [key.digest(data), *([also] if also else [])]
    return json.dumps({"algorithm": ALGORITHM, "key_id": key.key_id, "hmac": digests}, indent=2) + "\n"


def _signature(folder: Path) -> dict | None:
    """The parsed signature beside ``folder``'s record; None when there is none; ``{}`` when it is unreadable."""
    try:
        parsed = json.loads((folder / SIGNATURE_FILE).read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def valid_digest(data: bytes, folder: Path, key: RecordKey) -> str | None:
    """The HMAC of ``data`` when the signature in ``folder`` vouches for those bytes with ``key``, else None."""
    return None if signature_problem(data, folder, key, required=True) else key.digest(data)


def signature_problem(data: bytes, folder: Path, key: RecordKey, *, required: bool) -> str | None:
    """Why the signature in ``folder`` does not vouch for ``data`` (the record file's bytes as the reader
    pinned them) under ``key``, in words that follow the file's name; None when it does, or when there is none
    and none is ``required``. The key is never part of the answer."""
    signature = _signature(folder)
    if signature is None:
        return "has no signature (record.sig); it was not committed by a stage run holding the key" if required \
            else None
    digests = signature.get("hmac")
    if signature.get("algorithm") != ALGORITHM or not isinstance(digests, list) \
            or not all(isinstance(d, str) for d in digests):
        return f"has a signature (record.sig) that is not an {ALGORITHM} signature nift-gate writes"
    if signature.get("key_id") != key.key_id:
        return (f"is signed with key id {str(signature.get('key_id'))[:16]!r}, not the current key's "
                f"{key.key_id!r} ({KEY_VARIABLE})")
    mine = key.digest(data)
    if not any(hmac.compare_digest(mine.encode(), d.encode("ascii", "replace")) for d in digests):
        return "does not match its signature (record.sig): it was edited after it was signed"
    return None
