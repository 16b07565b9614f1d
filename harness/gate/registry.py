"""The registry: an append-only, hash-chained log of gate decisions and overrides, and the aliases it implies.

``<registry>/log.jsonl`` holds one JSON object per line. Every entry carries

- ``seq``: its 1-based position (a gap means an entry was deleted, a step back that entries were moved);
- ``prev_sha256``: the sha256 of the previous line's bytes (``"0" * 64`` for the first);
- ``entry_sha256``: the sha256 of its own canonical JSON without this field.

``head.json`` holds the count and the hash of the last line, so a deleted, edited or added tail is detected
too. An entry's ``event`` is ``decision`` (a gate decision, first reached), ``redecision`` (the same decision
reached again after another one of its candidate: it names the first entry in ``redecides_seq``) or
``override``; each holds the ``alias_moves`` it made. Aliases (``staging``, ``production``) are not stored
anywhere else: they are what replaying the log's moves gives, so they can change only through a recorded
decision or override. A log truncated with its head recomputed, or deleted, still leaves the decision files
no entry logs, which `nift-gate registry verify` names; whoever can rewrite the whole folder can forge a
consistent history naming every file, and a head hash anchored elsewhere (a commit, a ticket) and checked
with :meth:`Registry.anchor` closes that gap.

Concurrency: one file lock (``<registry>/.lock``, ``fcntl.flock``) serialises writers, and a writer holds it
from the check ("is this decision logged? where do the aliases point?") to the append (:meth:`Registry.writing`),
so two gates never log one decision twice. Readers take it shared, so they never see a log line whose head
update is still to come.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from harness.core.errors import InputError
from harness.core.records import canonical_json, sha256_bytes
from harness.core.store import atomic_write_json

GENESIS = "0" * 64
LOG_FILE = "log.jsonl"
HEAD_FILE = "head.json"
LOCK_FILE = ".lock"


class RegistryTamperedError(InputError):
    """The decision log does not verify; the message names the file, the line and the entry."""


def _entry_hash(entry: dict[str, Any]) -> str:
    return sha256_bytes(canonical_json({k: v for k, v in entry.items() if k != "entry_sha256"}).encode())


def _not_utf8(data: bytes, exc: UnicodeDecodeError) -> str:
    column = exc.start - data.rfind(b"\n", 0, exc.start)
    return f"byte 0x{data[exc.start]:02x} at column {column} is not UTF-8"


def aliases_of(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Alias -> the model it points at after ``entries``, replayed from their recorded moves."""
    current: dict[str, dict[str, Any]] = {}
    for entry in entries:
        for alias, target in (entry.get("alias_moves") or {}).items():
            if target is None:
                current.pop(alias, None)
            else:
                current[alias] = {**target, "seq": entry["seq"], "record_id": entry["record_id"]}
    return current


class RegistryWriter:
    """The log as one lock holder sees it: the verified entries, and an append that extends them."""

    def __init__(self, registry: Registry, entries: list[dict[str, Any]], last_sha256: str):
        self.registry = registry
        self.entries = entries
        self.last_sha256 = last_sha256

    def find(self, record_id: str) -> dict[str, Any] | None:
        return next((e for e in self.entries if e.get("record_id") == record_id), None)

    def aliases(self) -> dict[str, dict[str, Any]]:
        return aliases_of(self.entries)

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        """Add one entry (``event`` plus seq, time and hashes); the head follows it."""
        registry = self.registry
        entry = {**event, "seq": len(self.entries) + 1, "prev_sha256": self.last_sha256,
                 "logged_at": datetime.now(UTC).isoformat(timespec="seconds")}
        entry["entry_sha256"] = _entry_hash(entry)
        line = canonical_json(entry).encode()
        # A log saved by an editor without its final newline would glue this entry to the last one; the chain
        # was verified just now, so the last line is intact and only its newline is missing: put it back.
        glue = b"\n" if registry.log.exists() and not _ends_with_newline(registry.log) else b""
        with open(registry.log, "ab") as handle:
            handle.write(glue + line + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.last_sha256 = sha256_bytes(line)
        atomic_write_json(registry.head, {"entries": entry["seq"], "last_sha256": self.last_sha256})
        self.entries.append(entry)
        return entry


def _ends_with_newline(path: Path) -> bool:
    """True for an empty file too: there is nothing to glue to."""
    with open(path, "rb") as handle:
        if handle.seek(0, os.SEEK_END) == 0:
            return True
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


class Registry:
    """One registry folder. Writers go through :meth:`writing`, which verifies the whole chain first and
    refuses to extend a tampered log."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.log = self.folder / LOG_FILE
        self.head = self.folder / HEAD_FILE

    # ---- locking ---------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, exclusive: bool) -> Iterator[bool]:
        """Hold the lock; yields whether there is a registry to read. A reader that finds no folder yields
        False and must read nothing: a writer may create the folder and start an append right after the check,
        and a read then, outside the lock, could see a log line whose head update is still to come."""
        if exclusive:
            self.folder.mkdir(parents=True, exist_ok=True)
        elif not self.folder.is_dir():
            yield False  # nothing logged yet, and a reader creates no folder
            return
        with contextlib.ExitStack() as stack:
            handle = self._open_lock(exclusive)
            if handle is None:
                yield True  # a read-only copy of a registry without a lock file: no writer can be at work in it
                return
            stack.enter_context(handle)
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _open_lock(self, exclusive: bool) -> IO[str] | None:
        """The lock file, created if need be. A reader without write access opens it read-only (flock works on
        any descriptor); None when it neither exists nor can be created."""
        lock = self.folder / LOCK_FILE
        try:
            return open(lock, "a")
        except OSError:
            if exclusive:
                raise
        try:
            return open(lock)
        except OSError:
            return None

    def _snapshot(self) -> tuple[list[dict[str, Any]], list[str]]:
        """The verified entries and their line hashes, read under the shared lock."""
        with self._locked(exclusive=False) as present:
            return self._read() if present else ([], [])

    @contextlib.contextmanager
    def writing(self) -> Iterator[RegistryWriter]:
        """Hold the lock from a check to the append it leads to: yields the verified entries and an append."""
        with self._locked(exclusive=True):
            entries, hashes = self._read()
            yield RegistryWriter(self, entries, hashes[-1] if hashes else GENESIS)

    # ---- reading ---------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def reading(self) -> Iterator[list[dict[str, Any]]]:
        """Hold the lock shared while reading what the log points at (decision files): yields the verified
        entries, and no writer appends until the block ends."""
        with self._locked(exclusive=False) as present:
            yield self._read()[0] if present else []

    def verify(self) -> list[dict[str, Any]]:
        """Check every entry, the chain and the head (under the lock, so an append in progress is not
        mistaken for tampering); return the entries or raise naming the first bad one."""
        return self._snapshot()[0]

    def _read(self) -> tuple[list[dict[str, Any]], list[str]]:
        """The verified entries and the sha256 of each one's line."""
        data = self.log.read_bytes() if self.log.exists() else b""
        entries: list[dict[str, Any]] = []
        hashes: list[str] = []
        prev = GENESIS
        for number, line in enumerate(data.split(b"\n"), 1):
            if not line.strip():
                continue
            where = f"{self.log}:{number}"
            try:
                entry = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise RegistryTamperedError(f"{where}: {_not_utf8(line, exc)}: the entry was edited") from None
            except json.JSONDecodeError:
                raise RegistryTamperedError(f"{where}: entry is not valid JSON: it was edited") from None
            if not isinstance(entry, dict):
                raise RegistryTamperedError(f"{where}: entry is a JSON {type(entry).__name__}, not an object: it "
                                            f"was edited")
            seq = entry.get("seq")
            if entry.get("entry_sha256") != _entry_hash(entry):
                raise RegistryTamperedError(f"{where}: entry seq {seq} was edited: its content no longer matches its "
                                            f"entry_sha256")
            expected = len(entries) + 1
            if seq != expected:
                if isinstance(seq, int) and seq > expected:
                    missing = f"entry {expected}" if seq == expected + 1 else f"entries {expected}..{seq - 1}"
                    raise RegistryTamperedError(f"{where}: holds entry seq {seq} where seq {expected} belongs: "
                                                f"{missing} deleted (or entries reordered)")
                raise RegistryTamperedError(f"{where}: holds entry seq {seq} where seq {expected} belongs: entries "
                                            f"reordered or duplicated")
            if entry.get("prev_sha256") != prev:
                raise RegistryTamperedError(f"{where}: entry seq {seq} does not follow the entry before it (previous-"
                                            f"entry hash mismatch): entry seq {seq - 1} was edited or replaced")
            prev = sha256_bytes(line)
            entries.append(entry)
            hashes.append(prev)
        self._check_head(entries, prev)
        return entries, hashes

    def _read_head(self) -> dict[str, Any]:
        data = self.head.read_bytes()
        try:
            head = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise RegistryTamperedError(f"{self.head}:{line}: {_not_utf8(data, exc)}: it was edited") from None
        except json.JSONDecodeError as exc:
            raise RegistryTamperedError(f"{self.head}:{exc.lineno}: not valid JSON ({exc.msg}): it was "
                                        f"edited") from None
        if not isinstance(head, dict):
            raise RegistryTamperedError(f"{self.head}:1: a JSON {type(head).__name__}, not an object with "
                                        f"entries and last_sha256: it was edited")
        entries, last = head.get("entries"), head.get("last_sha256")
        if not isinstance(entries, int) or isinstance(entries, bool) or entries < 0 or not isinstance(last, str):
            raise RegistryTamperedError(f"{self.head}: expected entries (a count) and last_sha256 (a hash), got "
                                        f"{canonical_json(head)[:120]}: it was edited")
        return head

    def _check_head(self, entries: list[dict[str, Any]], last: str) -> None:
        if not self.head.exists():
            if entries:
                raise RegistryTamperedError(f"{self.head}: missing while {self.log} has {len(entries)} entries")
            return
        head = self._read_head()
        counted = head["entries"]
        if counted > len(entries):
            raise RegistryTamperedError(f"{self.log}: ends at entry seq {len(entries)} but {self.head} records "
                                        f"{counted} entries: entries {len(entries) + 1}..{counted} were deleted")
        if counted < len(entries):
            extra = f"entry {counted + 1}" if counted + 1 == len(entries) else f"entries {counted + 1}..{len(entries)}"
            raise RegistryTamperedError(f"{self.log}: {extra} not counted by {self.head}, which records {counted} "
                                        f"entries: appended without updating the head (by hand, or by an append "
                                        f"that was killed)")
        if head["last_sha256"] != last:
            raise RegistryTamperedError(f"{self.log}:{len(entries)}: entry seq {len(entries)} (the last) was "
                                        f"edited or replaced: its hash differs from {self.head}")

    def head_sha256(self) -> str:
        """The hash of the last entry's line (what ``head.json`` records): the value to anchor elsewhere."""
        hashes = self._snapshot()[1]
        return hashes[-1] if hashes else GENESIS

    def anchor(self, expected: str) -> tuple[list[dict[str, Any]], int]:
        """Verify the log and find the entry whose line hash is ``expected`` (a head hash kept elsewhere, or
        a prefix of at least 12 hex digits of it): the history up to it is the anchored one, unchanged.
        Returns the entries and the seq of the anchored entry; raises when no entry has that hash."""
        wanted = expected.strip().lower()
        if len(wanted) < 12 or any(c not in "0123456789abcdef" for c in wanted):
            raise InputError(f"--expect-head {expected!r}: expected a sha256 (at least 12 hex digits) as "
                             f"`nift-gate registry verify` prints it")
        entries, hashes = self._snapshot()
        for entry, digest in zip(entries, hashes, strict=True):
            if digest.startswith(wanted):
                return entries, entry["seq"]
        raise RegistryTamperedError(f"{self.log}: no entry has the anchored head hash {wanted[:16]}...: the log "
                                    f"was rewritten since that hash was taken (or it belongs to another registry)")

    def find(self, record_id: str) -> dict[str, Any] | None:
        return next((e for e in self.verify() if e.get("record_id") == record_id), None)

    def aliases(self) -> dict[str, dict[str, Any]]:
        """Alias -> the model it points at now, replayed from the log's recorded moves."""
        return aliases_of(self.verify())

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        """Add one entry (``event`` plus seq, time and hashes) after verifying the chain."""
        with self.writing() as log:
            return log.append(event)


def model_key(run_id: str, candidate: str, sha256: str | None) -> dict[str, Any]:
    """How the registry names a model: run, candidate name and weights hash."""
    return {"run_id": run_id, "candidate": candidate, "model_sha256": sha256}


def alias_moves(aliases: dict[str, dict[str, Any]], target: dict[str, Any], promote: list[str],
                promoted: bool) -> dict[str, Any]:
    """Aliases to point at ``target`` (promotion), or to take away from it (rejection), given where the
    ``aliases`` point now."""
    if promoted:
        return {alias: target for alias in promote}
    return {alias: None for alias, now in aliases.items()
            if now.get("model_sha256") == target.get("model_sha256") and now.get("candidate") == target["candidate"]}
