"""The run folder: where every record and artifact of one gate run lives, written atomically.

Layout (one folder per stage, one record per artifact)::

    <home>/<run>/
        data/<variant>/record.json   pairs.jsonl   dataset/   card.md   _work/ (shards while building)
        train/<name>/...             (later stages follow the same pattern)

``home`` is ``--home``, else ``$NIFT_HOME``, else ``./nift-runs``. A stage folder is complete when its
``record.json`` exists: the record is always written last, so a crash leaves no record and the stage
reruns (resuming from its ``_work`` shards where it has them).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import sys
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from harness.core.errors import InputError, NiftError
from harness.core.records import Record, sha256_bytes

DEFAULT_HOME = "nift-runs"
RECORD_FILE = "record.json"
R = TypeVar("R", bound=Record)
T = TypeVar("T")


def runs_home(home: str | os.PathLike | None = None) -> Path:
    return Path(home or os.environ.get("NIFT_HOME") or DEFAULT_HOME)


def _fsync_dir(path: Path) -> None:
    """fsync a folder's entries. A file system that cannot open or fsync a folder (EINVAL, ENOTSUP on some network
    mounts) is let through; any other failure, an I/O error, raises."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    """fsync every file under ``folder``, then every folder, deepest first (a folder's entries name its files)."""
    folders = [folder]
    for path in sorted(folder.rglob("*")):
        if path.is_dir() and not path.is_symlink():
            folders.append(path)
        elif path.is_file() and not path.is_symlink():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    for path in reversed(folders):
        _fsync_dir(path)


def leftovers(path: str | os.PathLike) -> list[Path]:
    """The folders :func:`atomic_dir` leaves beside ``path`` when its process is killed: its temp folder
    (``.<name>.<8 random>.tmp``) and the old folder renamed aside (``.old``). Only ``path``'s own: the pattern
    is exact, so a sibling named ``<name>.x`` or another stage's leftovers never match."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.(tmp|old)")
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.iterdir()
                  if pattern.fullmatch(p.name) and p.is_dir() and not p.is_symlink())


def remove_leftovers(path: str | os.PathLike) -> list[Path]:
    """Delete :func:`leftovers` of ``path``. Call it only where no live process can be writing them: under the
    lock every writer of ``path`` holds (the stage runner's commit lock)."""
    found = leftovers(path)
    for leftover in found:
        shutil.rmtree(leftover, ignore_errors=True)
    return found


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` via a temp file in the same folder and ``os.replace``.

    Readers see the old file or the new one, never a torn one, even after ``kill -9``.
    """
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """``atomic_write_text`` for bytes (Parquet exports and the like)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> Path:
    return atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def atomic_write_json(path: str | os.PathLike, value: Any) -> Path:
    return atomic_write_text(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp folder beside ``path``; on success it takes the place of ``path``. An existing ``path`` is
    renamed aside first and deleted only after the new folder is in place: a process killed at any point leaves
    either the old folder whole, the new one whole, or neither (then the stage runs again), never an old folder
    half deleted under its own record. Dot-named leftovers are no stage output (:meth:`RunStore.finished`);
    :func:`remove_leftovers` deletes them where no live process can own them.

    Every file and folder written into the temp folder is fsynced before the rename that publishes it, and
    the parent after it: after a power loss the folder is the old one or the new one with all its bytes, never
    a record naming files whose data never reached the disk."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old = None
    try:
        yield tmp
        _fsync_tree(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old)  # onto the empty folder just made: a rename, nothing deleted yet
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        for leftover in (tmp, old):
            if leftover is not None and leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)


def decode_utf8(data: bytes, path: str | os.PathLike, error: type[NiftError] = InputError,
                reads: str = "text") -> str:
    """``data`` (the bytes of ``path``) as text; a byte that is not UTF-8 raises ``error`` naming its line. A
    compressed or Parquet file (an HF export, a ``.jsonl.gz``) is named as one instead, with what the caller
    ``reads``: "not UTF-8; re-encode the file" would send its user the wrong way. A leading byte-order mark
    (Notepad and Excel write one) is not content and is dropped: json.loads refuses it, and in prose it would reach
    the teacher's prompt as an invisible character."""
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        # sniffed only once decoding failed: a text file that starts like one ("BZh...") is still text
        for magic, kind, undo in ((b"\x1f\x8b", "gzip", "gunzip"), (b"BZh", "bzip2", "bunzip2"),
                                  (b"\xfd7zXZ\x00", "xz", "unxz"), (b"\x28\xb5\x2f\xfd", "zstd", "unzstd")):
            if data.startswith(magic):
                raise error(f"{path}: this is a {kind} file, not {reads}; decompress it first ({undo})") from None
        if data.startswith(b"PAR1") and data.endswith(b"PAR1"):
            raise error(f"{path}: this is a Parquet file, not {reads}; convert it first (pandas.read_parquet, or "
                        "datasets' Dataset.from_parquet(...).to_json(...) for JSON Lines)") from None
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        raise error(f"{path}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x} at column {column}); "
                    "re-encode the file as UTF-8") from None


def read_bytes(path: str | os.PathLike, what: str = "file", error: type[NiftError] = InputError) -> bytes:
    """The bytes of ``path``; a missing file, a folder or an unreadable file raises ``error`` naming it."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, not a {what}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read this {what} ({exc.strerror or exc})") from None


def read_utf8(path: str | os.PathLike, what: str = "file", error: type[NiftError] = InputError) -> str:
    """A text file as UTF-8, with :func:`read_bytes`' and :func:`decode_utf8`'s errors."""
    return decode_utf8(read_bytes(path, what, error), path, error)


#: A JSON escape of half a surrogate pair (U+D800..U+DFFF) without its other half. JSON allows one alone; Python
#: decodes it to a str that cannot be written as UTF-8, so a row holding one would fail only when a stage writes
#: it, after its work. (Escaped pairs are common: json.dumps writes every emoji as one.) A match is confirmed on
#: the decoded value, since an escaped backslash can precede the letters.
_LONE_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
                                    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}")


def _holds_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= char <= "\udfff" for char in value)
    if isinstance(value, dict):
        return any(_holds_lone_surrogate(k) or _holds_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_lone_surrogate(v) for v in value)
    return False


def _decoded(decode: Callable[[], T], where: str) -> T:
    """``decode()``, the json module parsing one row, with what it raises besides JSONDecodeError as an InputError
    naming ``where`` (``file:line``): a number of more digits than Python converts, nesting deeper than its recursion limit."""
    try:
        return decode()
    except RecursionError:
        raise InputError(f"{where}: not valid JSON here (nested too deeply to read)") from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # int(): "Exceeds the limit (4300 digits) for integer string conversion"
        if "digits" not in str(exc):
            raise
        raise InputError(f"{where}: a number of more than {sys.get_int_max_str_digits()} digits") from None


def _refuse_lone_surrogate(text: str, value: Any, where: str) -> None:
    """Refuse ``value``, decoded from ``text``, if a string of it holds a lone surrogate."""
    if _LONE_SURROGATE_ESCAPE.search(text) and _holds_lone_surrogate(value):
        raise InputError(f"{where}: a string holds half of a UTF-16 surrogate pair (a \\uD800-\\uDFFF escape "
                         "without its other half), which is not text")


def numbered_jsonl(data: bytes, path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) of JSON Lines bytes (read from ``path``), blank lines skipped, naming file and line of
    the first row that is not UTF-8, JSON or an object, or that repeats a key in one of its objects."""

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        # json.loads keeps a repeated key's last value without a word: a label could flip, a field vanish
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise InputError(f"{path}:{number}: key {key!r} is repeated in one object; JSON keeps only its "
                                 "last value")
            seen.add(key)
        return dict(pairs)

    text, first = decode_utf8(data, path, reads="JSON Lines"), True
    # Only "\n" ends a row: str.splitlines() would also split at U+2028 and friends, which JSON strings hold raw.
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = _decoded(lambda: json.loads(line, object_pairs_hook=unique_keys), where)
        except json.JSONDecodeError as exc:
            if first and (document := _one_json_document(text)):
                raise InputError(f"{path}:{number}: this file is one {document} written across lines, not JSON "
                                 "Lines (one JSON object per line); write one row per line (jq -c '.[]' for an "
                                 "array)") from None
            raise InputError(f"{path}:{number}: not valid JSON ({exc.msg}, column {exc.colno})") from None
        first = False
        _refuse_lone_surrogate(line, row, where)
        if not isinstance(row, dict):
            raise InputError(f"{path}:{number}: expected a JSON object per line, got {type(row).__name__}")
        yield number, row


def _one_json_document(text: str) -> str | None:
    """"JSON array" or "JSON object" when ``text`` as a whole is one (pretty-printed JSON where JSON Lines was
    expected), else None. Called only once the first line failed to parse."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return {list: "JSON array", dict: "JSON object"}.get(type(value))


_SPACE = re.compile(r"\s*")


def numbered_rows(data: bytes, path: str | os.PathLike, reads: str = "JSON Lines or a JSON array"
                  ) -> tuple[list[tuple[int, Any]], bool]:
    """(line, row) of JSON Lines bytes or of a JSON array (AlpacaEval and Alpaca publish arrays), the line an
    array item starts on, and whether it was an array. Errors name file and line: of a row that is not UTF-8 or
    JSON, of an object that repeats a key, of a comma before the closing ``]`` and of anything after it
    (json.loads refuses both, and read row by row they would drop what follows); an array item's, as
    ``file:line (item n)``. Array items may be of any
    JSON type: the caller says what a row must be. ``reads``: what a binary file is said not to be."""
    text = decode_utf8(data, path, reads=reads)
    if not text.lstrip("\ufeff \t\r\n").startswith("["):
        return list(numbered_jsonl(data, path)), False

    def line_of(at: int) -> int:  # errors only: the loop counts lines as it goes, in one pass over the text
        return text.count("\n", 0, at) + 1

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        if len(set(keys)) < len(keys):
            repeated = next(key for i, key in enumerate(keys) if key in keys[:i])
            raise InputError(f"{where}: key {repeated!r} is repeated in one object; JSON keeps only its "
                             "last value")
        return dict(pairs)

    decoder, rows, line, counted = json.JSONDecoder(object_pairs_hook=unique_keys), [], 1, 0
    at = _SPACE.match(text, text.index("[") + 1).end()
    while not text.startswith("]", at):
        line, counted = line + text.count("\n", counted, at), at
        start, where = at, f"{path}:{line} (item {len(rows) + 1})"  # the line the item starts on
        try:
            row, at = _decoded(lambda: decoder.raw_decode(text, start), where)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{exc.lineno} (item {len(rows) + 1}): not valid JSON ({exc.msg})") from None
        _refuse_lone_surrogate(text[start:at], row, where)
        rows.append((line, row))
        at = _SPACE.match(text, at).end()
        if text.startswith(",", at):
            comma, at = at, _SPACE.match(text, at + 1).end()
            if text.startswith("]", at):
                raise InputError(f"{path}:{line_of(comma)}: not valid JSON (a comma before the closing ']')")
        elif not text.startswith("]", at):
            raise InputError(f"{path}:{line_of(at)}: not valid JSON (expected ',' or ']')")
    after = _SPACE.match(text, at + 1).end()
    if after < len(text):
        raise InputError(f"{path}:{line_of(after)}: not valid JSON (data after the array's closing ']')")
    return rows, True


#: What :func:`row_field` returns for a field a row does not have (None is a JSON null, which a row can hold).
MISSING: Any = object()


def row_field(row: dict[str, Any], name: str) -> Any:
    """The value of field ``name`` of a JSON row, :data:`MISSING` when it has none. ``name`` is a key of the
    row, else a dotted path through nested objects and lists, as ``datasets`` names nested columns: ARC's
    ``question.stem``, RealToxicityPrompts' ``prompt.text``, ``turns.0`` for the first of a list."""
    if name in row:
        return row[name]
    value: Any = row
    for part in name.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isascii() and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return value


def stated_row_id(row: dict[str, Any], where: str, default: str, fields: tuple[str, ...] = ("question_id", "id"),
                  what: str = "row") -> str:
    """The first of ``fields`` a row has (MT-Bench's ``question_id``, nift-gate's ``id``, ...), as text, else
    ``default``. An id is a non-blank string or a whole number: str() of anything else (true, [1], {"a": 1}) is
    text no one wrote, and 1.0 would be another item than 1. A null counts as absent (pandas and datasets write
    null for a missing value; str(None) would name every such row "None"). A row whose ``question_id`` and ``id``
    differ is refused (``what``: the row's noun in that error): which one results are keyed by would be a guess,
    and the other id would be dropped unseen; 1 and "1" are one id."""
    ids = {}
    for key in fields:
        value = row.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
            raise InputError(f"{where}: field {key!r} must be a non-blank string or a whole number, got "
                             f"{json.dumps(value)[:60]}")
        ids[key] = str(value)
    if "question_id" in ids and "id" in ids and ids["question_id"] != ids["id"]:
        raise InputError(f"{where}: fields 'question_id' ({ids['question_id']!r}) and 'id' ({ids['id']!r}) name the "
                         f"{what} differently; keep one")
    return next(iter(ids.values()), default)


def unique_row_id(path: str | os.PathLike, line: int, row: dict[str, Any], default: str,
                  seen: dict[str, int]) -> str:
    """The row's ``id`` as text, else ``default``; an id seen on an earlier line (``seen``: id -> line, updated
    here) is refused naming both lines: suites whose results are keyed by id would count a repeated id's items
    once. Null is no id: JSON exporters (pandas, datasets) write null for a missing value, and str(None) would
    give every such row the same id "None"."""
    row_id = row.get("id")
    if row_id is None:
        row_id = default
    elif isinstance(row_id, bool) or not isinstance(row_id, str | int):
        raise InputError(f"{path}:{line}: field 'id' must be a string or a whole number")
    row_id = str(row_id)
    if row_id in seen:
        raise InputError(f"{path}:{line}: id {row_id!r} is used again (first on line {seen[row_id]})")
    seen[row_id] = line
    return row_id


def parse_jsonl(data: bytes, path: str | os.PathLike) -> list[dict[str, Any]]:
    """JSON Lines bytes (read from ``path``) as rows; errors as :func:`numbered_jsonl`'s."""
    return [row for _, row in numbered_jsonl(data, path)]


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read JSON Lines, naming file and line of the first row that is not UTF-8, JSON or an object."""
    return parse_jsonl(read_bytes(path), path)


def write_record(stage_dir: str | os.PathLike, record: Record) -> Path:
    return atomic_write_text(Path(stage_dir) / RECORD_FILE, record.model_dump_json(indent=2) + "\n")


def read_record(path: str | os.PathLike, cls: type[R]) -> R:
    """Load a record file (or a stage folder's ``record.json``) as ``cls``."""
    path = Path(path)
    if path.is_dir():
        path = path / RECORD_FILE
    if not path.exists():
        raise InputError(f"{path}: no such record")
    return parse_record(read_bytes(path, "record"), path, cls)


def parse_record(data: bytes, path: str | os.PathLike, cls: type[R]) -> R:
    """The bytes of a record file (read from ``path``) as ``cls``; errors name the file (and line)."""
    try:
        return cls.model_validate_json(decode_utf8(data, path))
    except ValidationError as exc:
        raise InputError(f"{path}: not a valid {cls.__name__}: {exc}") from None


def read_output(stage_dir: str | os.PathLike, record: Record, relative: str) -> bytes:
    """The bytes of a file a stage wrote beside ``record`` (``relative`` to its folder), refused unless they
    are the ones the record pins in ``outputs``: per-item outputs edited after the record was written, or a
    file the record never wrote, would show numbers and answers no decision rests on."""
    path = Path(stage_dir) / relative
    pinned = record.outputs.get(relative)
    if pinned is None:
        raise InputError(f"{path}: not one of the files {Path(stage_dir) / RECORD_FILE} pins (written by older "
                         f"code, or put there since): rerun the stage with --force")
    data = read_bytes(path, "stage output")
    if sha256_bytes(data) != pinned:
        raise InputError(f"{path}: changed after {Path(stage_dir) / RECORD_FILE} was written (its sha256 is not "
                         f"the one the record pins): rerun the stage with --force")
    return data


def completed_record(stage_dir: str | os.PathLike, cls: type[R], fingerprint: str) -> R | None:
    """The stage's record if it finished with the same inputs and config, else None."""
    path = Path(stage_dir) / RECORD_FILE
    if not path.exists():
        return None
    try:
        record = read_record(path, cls)
    except InputError:
        return None
    return record if record.fingerprint == fingerprint else None


#: Unicode categories that print as no character, or as a line break: controls (newline, tab, NUL), format
#: characters (bidi overrides, zero-width), line and paragraph separators (U+2028/2029), lone surrogates.
UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def first_unprintable(text: str) -> int | None:
    """The index of the first character of ``text`` that cannot be shown on one line as itself, None if none: a
    name holding one could forge a line of what is printed (``a\nREJECT: fake``) or hide what it says."""
    return next((at for at, char in enumerate(text) if unicodedata.category(char) in UNPRINTABLE_CATEGORIES), None)


def unprintable_at(text: str, allowed: str = "") -> str | None:
    """Where the first character of ``text`` that cannot be shown on one line as itself is, as errors name it
    (``U+000A at character 3``), None if none; the characters in ``allowed`` (a description's line breaks) pass."""
    at = first_unprintable(text.translate({ord(char): " " for char in allowed}) if allowed else text)
    return None if at is None else f"U+{ord(text[at]):04X} at character {at + 1}"


def folder_name_problem(name: Any) -> str | None:
    """Why ``name`` cannot be a folder of the run store (a run, a stage entry, a candidate or baseline), None if it
    can: a name with a slash, or ``..``, would reach another stage's files (``gate/../bench``); a leading dot is
    how the store hides work in progress; a control character (a newline) would forge lines in what is printed."""
    if not isinstance(name, str) or not name.strip():
        return "must be a non-empty folder name"
    if "/" in name or "\\" in name or name.startswith("."):
        return "must be a plain folder name (no slash, no leading dot)"
    if first_unprintable(name) is not None:
        return "must be a plain folder name (no control characters)"
    if len(name.encode("utf-8", "surrogatepass")) > 200:
        return "must be a folder name of at most 200 bytes"
    return None


def check_folder_name(name: Any, what: str) -> str:
    """``name`` if :func:`folder_name_problem` finds nothing, else InputError naming ``what`` (``run name``)."""
    if problem := folder_name_problem(name):
        raise InputError(f"{what} {name!r} {problem}")
    return name


class RunStore:
    """One run's folder. Stages ask it for their folder; it does not know what they write."""

    def __init__(self, run: str, home: str | os.PathLike | None = None):
        self.run_id = check_folder_name(run, "run name")
        self.home = runs_home(home)
        self.root = self.home / run

    def stage_dir(self, stage: str, name: str) -> Path:
        """The folder of entry ``name`` of ``stage`` (``""``: of a stage with one entry, its own folder, as review's);
        a name that would leave it (``../bench``) is refused."""
        return self.root / stage / check_folder_name(name, f"{stage} name") if name else self.root / stage

    def finished(self, stage: str) -> list[Path]:
        """Folders of ``stage`` holding a finished record, by name. Resume state (``_work``) and the temporary
        folder of a commit that was killed (``.<name>.<random>.tmp``, which may hold a record.json) are not
        finished stages."""
        root = self.root / stage
        if not root.is_dir():
            return []
        return sorted(p for p in root.iterdir()
                      if p.is_dir() and not p.name.startswith(("_", ".")) and (p / RECORD_FILE).exists())

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"
