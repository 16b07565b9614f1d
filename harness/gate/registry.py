"""The registry: an append-only, hash-chained log of gate decisions and overrides, and the aliases it implies.

``<registry>/log.jsonl`` holds one JSON object per line. Every entry carries

- ``seq``: its 1-based position (a gap means an entry was deleted, a step back that entries were moved);
- ``prev_sha256``: the sha256 of the previous line's bytes (``"0" * 64`` for the first);
- ``entry_sha256``: the sha256 of its own canonical JSON without this field.

``head.json`` holds the count and the hash of the last line, so a deleted or edited tail is detected too.
Aliases (``staging``, ``production``) are not stored anywhere else: they are what replaying the log's
moves gives, so they can change only through a recorded decision or override. Whoever can rewrite the whole
folder can forge a consistent history; anchoring ``head.json``'s hash elsewhere (a commit, a ticket) closes
that gap.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.core.errors import InputError
from harness.core.records import canonical_json, sha256_bytes
from harness.core.store import atomic_write_json

GENESIS = "0" * 64
LOG_FILE = "log.jsonl"
HEAD_FILE = "head.json"


class RegistryTamperedError(InputError):
    """The decision log does not verify; the message names the entry."""


def _entry_hash(entry: dict[str, Any]) -> str:
    return sha256_bytes(canonical_json({k: v for k, v in entry.items() if k != "entry_sha256"}).encode())


class Registry:
    """One registry folder. ``append`` verifies the whole chain first and refuses to extend a tampered log."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.log = self.folder / LOG_FILE
        self.head = self.folder / HEAD_FILE

    def _lines(self) -> list[bytes]:
        if not self.log.exists():
            return []
        return [line for line in self.log.read_bytes().split(b"\n") if line.strip()]

    def verify(self) -> list[dict[str, Any]]:
        """Check every entry, the chain and the head; return the entries or raise naming the first bad entry."""
        lines = self._lines()
        entries: list[dict[str, Any]] = []
        prev = GENESIS
        for number, line in enumerate(lines, 1):
            where = f"{self.log}:{number}"
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                raise RegistryTamperedError(f"{where}: entry is not valid JSON: it was edited") from None
            seq = entry.get("seq")
            if entry.get("entry_sha256") != _entry_hash(entry):
                raise RegistryTamperedError(f"{where}: entry seq {seq} was edited: its content no longer matches its "
                                            f"entry_sha256")
            if seq != number:
                if isinstance(seq, int) and seq > number:
                    missing = f"entry {number}" if seq == number + 1 else f"entries {number}..{seq - 1}"
                    raise RegistryTamperedError(f"{where}: holds entry seq {seq} where seq {number} belongs: {missing} "
                                                f"deleted (or entries reordered)")
                raise RegistryTamperedError(f"{where}: holds entry seq {seq} where seq {number} belongs: entries "
                                            f"reordered or duplicated")
            if entry.get("prev_sha256") != prev:
                raise RegistryTamperedError(f"{where}: entry seq {seq} does not follow the entry before it (previous-"
                                            f"entry hash mismatch): entry seq {number - 1} was edited or replaced")
            prev = sha256_bytes(line)
            entries.append(entry)
        if self.head.exists():
            head = json.loads(self.head.read_text(encoding="utf-8"))
            if head.get("entries", 0) > len(entries):
                raise RegistryTamperedError(f"{self.log}: ends at entry seq {len(entries)} but {self.head} records "
                                            f"{head['entries']} entries: entries {len(entries) + 1}.."
                                            f"{head['entries']} were deleted")
            if head.get("entries") == len(entries) and head.get("last_sha256") != prev:
                raise RegistryTamperedError(f"{self.log}:{len(entries)}: entry seq {len(entries)} (the last) was "
                                            f"edited or replaced: its hash differs from {self.head}")
        elif entries:
            raise RegistryTamperedError(f"{self.head}: missing while {self.log} has {len(entries)} entries")
        return entries

    @contextlib.contextmanager
    def _locked(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        """Add one entry (``event`` plus seq, time and hashes) after verifying the chain."""
        with self._locked():
            entries = self.verify()
            lines = self._lines()
            entry = {**event, "seq": len(entries) + 1,
                     "prev_sha256": sha256_bytes(lines[-1]) if lines else GENESIS,
                     "logged_at": datetime.now(UTC).isoformat(timespec="seconds")}
            entry["entry_sha256"] = _entry_hash(entry)
            line = canonical_json(entry).encode()
            with open(self.log, "ab") as handle:
                handle.write(line + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
            atomic_write_json(self.head, {"entries": entry["seq"], "last_sha256": sha256_bytes(line)})
            return entry

    def find(self, record_id: str) -> dict[str, Any] | None:
        return next((e for e in self.verify() if e.get("record_id") == record_id), None)

    def aliases(self) -> dict[str, dict[str, Any]]:
        """Alias -> the model it points at now, replayed from the log's recorded moves."""
        current: dict[str, dict[str, Any]] = {}
        for entry in self.verify():
            for alias, target in (entry.get("alias_moves") or {}).items():
                if target is None:
                    current.pop(alias, None)
                else:
                    current[alias] = {**target, "seq": entry["seq"], "record_id": entry["record_id"]}
        return current


def model_key(run_id: str, candidate: str, sha256: str | None) -> dict[str, Any]:
    """How the registry names a model: run, candidate name and weights hash."""
    return {"run_id": run_id, "candidate": candidate, "model_sha256": sha256}


def alias_moves(registry: Registry, target: dict[str, Any], promote: list[str], promoted: bool) -> dict[str, Any]:
    """Aliases to point at ``target`` (promotion), or to take away from it (rejection)."""
    if promoted:
        return {alias: target for alias in promote}
    return {alias: None for alias, now in registry.aliases().items()
            if now.get("model_sha256") == target.get("model_sha256") and now.get("candidate") == target["candidate"]}
