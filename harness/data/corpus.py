"""Reading a corpus into clean documents, with errors that name the file and line.

Files and hub datasets are read through ``datasets`` (JSON Lines, JSON, Parquet, plain text, each
optionally gzip, bzip2 or xz compressed; hub datasets by streaming). When ``datasets`` rejects a local
file, the file is re-read line by line to name the exact problem, because pyarrow's messages do not say
where it is.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import json
import logging
import lzma
import re
import tempfile
import unicodedata
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.assets import assets_dir, resolve_asset
from harness.core.errors import InputError
from harness.core.log import get_logger
from harness.core.records import InputRef, sha256_bytes
from harness.core.store import MISSING, decode_utf8, numbered_rows, row_field
from harness.data.config import CorpusConfig

if TYPE_CHECKING:
    from harness.core.runner import StageRun

log = get_logger("data")

#: The format of each file suffix ``format: auto`` reads, matched in any case (``.JSONL``); another suffix is
#: refused, not read as plain text (a ``.csv`` or ``.ndjson`` read as text becomes one document of raw syntax).
SUFFIX_FORMATS = {".jsonl": "json", ".ndjson": "json", ".json": "json", ".parquet": "parquet", ".txt": "text",
                  ".raw": "text", ".text": "text", ".md": "text"}

#: Compression suffixes ``datasets`` undoes by itself when it reads ``data_files`` (``c4-….json.gz`` is
#: JSON Lines); the standard library undoes them again only to name a bad line.
COMPRESSIONS: dict[str, Callable[[bytes], bytes]] = {".gz": gzip.decompress, ".bz2": bz2.decompress,
                                                     ".xz": lzma.decompress}
#: Compressions ``datasets`` reads only with packages nift-gate does not install.
UNREAD_COMPRESSIONS = (".zst", ".zstd", ".lz4")


@dataclass(frozen=True)
class Document:
    doc_id: str
    text: str


@dataclass(frozen=True)
class Corpus:
    """The documents of a corpus in corpus order, and how many of its rows held no text once normalised (an
    empty or whitespace-only field): they are no documents, and the data card counts them so that a corpus
    that is mostly empty rows is not a silent loss. Blank lines of a plain-text file separate documents and
    are not counted."""
    documents: list[Document]
    empty_rows: int = 0


def embedded_corpus_dir() -> Path:
    return assets_dir() / "corpus"


_SPACES = re.compile(r"[^\S\n]+")
_BREAKS = re.compile(r"\s*\n\s*\n\s*")


def normalise(text: str) -> str:
    """NFC, one space between words, paragraphs kept as a single blank line."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    paragraphs = [_SPACES.sub(" ", " ".join(p.split("\n"))).strip() for p in _BREAKS.split(text)]
    return "\n\n".join(p for p in paragraphs if p)


def _suffix(path: Path) -> str:
    """``path``'s last suffix in lower case: ``C4.JSONL`` is JSON Lines too."""
    return path.suffix.lower()


def _format_suffix(path: Path) -> str:
    """The suffix that names the format: the one before a compression suffix (``.json`` of ``x.json.gz``)."""
    return _suffix(Path(path.stem)) if _suffix(path) in COMPRESSIONS else _suffix(path)


def _is_corpus_file(path: Path) -> bool:
    return _format_suffix(path) in SUFFIX_FORMATS


def corpus_root(config: CorpusConfig) -> Path:
    """The corpus file or folder the config names (the embedded corpus when it names none)."""
    return resolve_asset(config.path) if config.path else embedded_corpus_dir()


def corpus_files(config: CorpusConfig, root: Path | None = None) -> list[Path]:
    """The corpus files under ``root`` (default: :func:`corpus_root`), in sorted order."""
    root = root or corpus_root(config)
    if not root.exists():
        raise InputError(f"{root}: corpus path does not exist")
    readable = f"{', '.join(SUFFIX_FORMATS)}, each also as {'/'.join(COMPRESSIONS)}"
    if not root.is_dir():
        if config.format == "auto" and not _is_corpus_file(root) and _suffix(root) not in UNREAD_COMPRESSIONS:
            raise InputError(f"{root}: unknown corpus file type {_format_suffix(root) or '(no suffix)'}; format "
                             f"auto reads {readable}; rename the file or set data.corpus.format")
        return [root]
    files = sorted(p for p in root.rglob("*") if _is_corpus_file(p))
    if not files:
        raise InputError(f"{root}: no corpus files ({readable}) in this folder")
    return files


def unread_files(root: Path | None) -> list[str]:
    """Files in a corpus folder that are not read, because their type (suffix) is not a corpus format, as
    paths under the folder; the data card lists them so that a skipped ``.csv`` is not a silent loss."""
    if root is None or not root.is_dir():
        return []
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
                  and not _is_corpus_file(p))


def source_names(files: list[Path], root: Path) -> dict[Path, str]:
    """How each corpus file is named in the ids of its documents (``<name>:<row>``): its path under the corpus
    folder without the suffix (``part-a``, ``news/part-a``; ``c4-train.00000-of-01024`` of its ``.json.gz``), so
    equal file names in two folders stay apart; with the suffixes where two files would share a name
    (``x.jsonl``, ``x.txt``). A corpus file: its name without the suffixes."""
    base = root if root.is_dir() else root.parent

    def bare(path: Path) -> Path:
        path = path.with_suffix("") if _suffix(path) in COMPRESSIONS else path
        return path.with_suffix("")

    names = {p: bare(p.relative_to(base)).as_posix() for p in files}
    taken = Counter(names.values())
    return {p: p.relative_to(base).as_posix() if taken[name] > 1 else name for p, name in names.items()}


#: Recorded as an input of a corpus with files in subfolders: their document ids name the folder since
#: the ids were made unique, so a dataset built from the same files with the former ids is not reused.
NESTED_IDS = InputRef(kind="corpus_doc_ids", id="path-under-corpus-folder",
                      sha256=sha256_bytes(b"path-under-corpus-folder"))


def open_corpus(config: CorpusConfig, run: StageRun) -> Path | None:
    """Make the corpus an input of ``run`` (a file by its content, a folder by every file's content, a hub
    dataset by its name and split) and return the file or folder to read (None for a hub dataset)."""
    if config.hub_dataset:
        run.add(InputRef(kind="corpus", id=f"hub:{config.hub_dataset}/{config.hub_config or ''}:{config.split}",
                         sha256=sha256_bytes(f"{config.hub_dataset}:{config.hub_config}:{config.split}".encode())))
        return None
    root = corpus_root(config)
    files = corpus_files(config, root)  # a missing or empty corpus is named before anything is hashed
    name = str(config.path or "embedded")
    if not root.is_dir():
        return run.file(root, kind="corpus", id=name)
    run.tree(root, kind="corpus", id=name)
    if any(len(p.relative_to(root).parts) > 1 for p in files):
        run.add(NESTED_IDS)
    return root


def _file_format(config: CorpusConfig, path: Path) -> str:
    if config.format != "auto":
        return config.format
    return SUFFIX_FORMATS[_format_suffix(path)]  # corpus_files refused a file of another type


def _decompressed(path: Path, raw: bytes) -> bytes:
    """The bytes of ``path`` (``raw``) undone of its compression suffix, if it has one."""
    if decompress := COMPRESSIONS.get(_suffix(path)):
        try:
            return decompress(raw)
        except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error) as exc:
            raise InputError(f"{path}: not a valid {path.suffix} file ({exc})") from None
    return raw


#: Readers of the head of a compressed file, which need not undo all of it.
_STREAMS: dict[str, Callable[[io.BytesIO], io.BufferedIOBase]] = {
    ".gz": lambda data: gzip.GzipFile(fileobj=data), ".bz2": bz2.BZ2File, ".xz": lzma.LZMAFile}


def _is_json_array(path: Path, raw: bytes) -> bool:
    """Whether the JSON file ``path`` (bytes ``raw``) is one array rather than JSON Lines, from its first bytes."""
    try:
        if stream := _STREAMS.get(_suffix(path)):
            with stream(io.BytesIO(raw)) as opened:
                head = opened.read(65536)
        else:
            head = raw[:65536]
    except (OSError, EOFError, lzma.LZMAError, zlib.error):
        return False  # not valid compressed data: the read through datasets names the file
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[")


def _array_lines(path: Path, raw: bytes) -> list[int]:
    """The line each item of the JSON array in ``path`` starts on. Refuses, naming the line, an item that is not
    an object and an object that repeats a key: ``datasets`` reads an array with ``json.load``, which keeps a
    repeated key's last value without a word, and it fails on a non-object item with a message naming no row."""
    rows, _ = numbered_rows(_decompressed(path, raw), path, reads="JSON")
    for item, (line, row) in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise InputError(f"{path}:{line} (item {item}): expected a JSON object per array item, got "
                             f"{type(row).__name__}")
    return [line for line, _ in rows]


def _jsonl_lines(path: Path, raw: bytes) -> list[int]:
    """The line of each row ``datasets`` reads from the JSON Lines file ``path``: it skips blank lines, so the
    n-th row is the n-th line with something on it."""
    text = decode_utf8(_decompressed(path, raw), path)
    return [number for number, line in enumerate(text.split("\n"), 1) if line.strip()]


def _locator(path: Path, raw: bytes, fmt: str, text_mode: str, array_lines: list[int] | None
             ) -> Callable[[int], str]:
    """Where row ``n`` (1-based, in ``datasets``' order) of ``path`` is, as errors name it: ``file:line`` for
    JSON Lines and plain text by line, ``file:line (item n)`` for a JSON array, ``file row n`` for Parquet and
    ``file (paragraph n)`` for plain text by paragraph. JSON Lines lines are found only when an error asks."""
    if array_lines is not None:
        return lambda n: f"{path}:{array_lines[n - 1]} (item {n})"
    if fmt == "parquet":
        return lambda n: f"{path} row {n}"
    if fmt == "text":
        return (lambda n: f"{path}:{n}") if text_mode == "line" else (lambda n: f"{path} (paragraph {n})")
    lines: list[int] = []

    def locate(n: int) -> str:
        if not lines:
            lines.extend(_jsonl_lines(path, raw))
        return f"{path}:{lines[n - 1]}" if n <= len(lines) else f"{path} row {n}"

    return locate


def _json_type(value: object) -> str:
    """How JSON names the type of ``value`` (a number is one type, as for pyarrow, which widens int to float)."""
    return ("true/false" if isinstance(value, bool) else "a number" if isinstance(value, int | float) else
            "a string" if isinstance(value, str) else "an object" if isinstance(value, dict) else
            "a list" if isinstance(value, list) else type(value).__name__)


def _diagnose(path: Path, raw: bytes, fmt: str, fields: Iterable[str]) -> None:
    """Re-read a file's bytes the slow way and raise InputError naming the first bad line, if there is one: bad
    JSON, a row that is not an object or repeats a key, a row without the text field (the first of ``fields``),
    a text that is not a string, or a field whose type differs from its type on an earlier line (pyarrow reads a
    column of one type, and says only that its type changed, not where)."""
    raw = _decompressed(path, raw)
    text = decode_utf8(raw, path)
    if not text.strip():
        raise InputError(f"{path}: no {'text' if fmt == 'text' else 'rows'} "
                         f"(the file is {'only whitespace' if text else 'empty'})")
    if fmt != "json":
        return
    if _format_suffix(path) == ".json" and not text.lstrip(" \t\r\n").startswith("["):
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            if exc.msg != "Extra data":  # more than one value: JSON Lines named .json (as C4 ships), read below
                raise InputError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        else:
            return  # one JSON value that is not an array: no rows to name
    rows, array = numbered_rows(raw, path, reads="JSON")
    text_field, *others = fields
    first_type: dict[str, tuple[str, int]] = {}
    for item, (line, row) in enumerate(rows, 1):
        where = f"{path}:{line}" + (f" (item {item})" if array else "")
        if not isinstance(row, dict):
            raise InputError(f"{where}: expected a JSON object, got {type(row).__name__}")
        value = row_field(row, text_field)
        if value is MISSING:
            raise InputError(f"{where}: no field {text_field!r} (fields: {', '.join(row)}); set --text-field")
        if value is not None and not isinstance(value, str):
            raise InputError(f"{where}: field {text_field!r} is {_json_type(value)}, not text")
        for field in others:
            if (value := row_field(row, field)) is MISSING or value is None:
                continue
            kind, seen = first_type.setdefault(field, (_json_type(value), line))
            if kind != _json_type(value):
                raise InputError(f"{where}: field {field!r} is {_json_type(value)} here but {kind} on line {seen}; "
                                 "a field must hold one type in every row")


#: A WikiText heading line, stripped: ``= Robert Boulter =``, ``= = Career = =`` (as many '=' after the title
#: as before it).
_WIKITEXT_HEADING = re.compile(r"(=(?: =)*) [^=\s](?:.*[^=\s])? \1")


def paragraphs(lines: Iterable[str]) -> list[str]:
    """The blocks of ``lines`` between blank (whitespace-only) lines and WikiText heading lines, which belong
    to no block."""
    blocks: list[str] = []
    block: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped and not _WIKITEXT_HEADING.fullmatch(stripped):
            block.append(line)
        elif block:
            blocks.append("\n".join(block))
            block = []
    if block:
        blocks.append("\n".join(block))
    return blocks


@contextlib.contextmanager
def _datasets_silenced():
    """Keep ``datasets``' own log lines about a bad file off stderr: they name the private copy, and the
    InputError raised instead names the user's file."""
    logger = logging.getLogger("datasets")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def _column(dataset, name: str) -> list | None:
    """The values of field ``name`` of every row: a column of ``dataset``, else a dotted path into a nested one
    (``meta.title``, ``turns.0``: :func:`row_field`), None where a row lacks it; None if no column holds it."""
    if name in dataset.column_names:
        return list(dataset[name])
    head, _, rest = name.partition(".")
    if not rest or head not in dataset.column_names:
        return None
    return [None if (value := row_field({head: nested}, name)) is MISSING else value for nested in dataset[head]]


@dataclass(frozen=True)
class _FileRows:
    """The rows of one corpus file: texts, ids (if configured) and where row ``n`` is, for errors."""
    texts: list
    ids: list | None
    locate: Callable[[int], str]
    prose: bool  # plain text: a blank line separates documents, it is not a row that lost its text


def _read_file(config: CorpusConfig, path: Path, raw: bytes) -> _FileRows:
    """The rows of one file, whose bytes are ``raw``, read through ``datasets``."""
    import datasets

    datasets.disable_progress_bars()  # nift-gate draws its own bars; these would interleave with them
    if _suffix(path) in UNREAD_COMPRESSIONS:
        raise InputError(f"{path}: {path.suffix} files are not read; decompress it, or compress it as "
                         f"{'/'.join(COMPRESSIONS)}")
    fmt = _file_format(config, path)
    field = "text" if fmt == "text" else config.text_field
    if fmt == "text" and config.id_field:
        raise InputError(f"{path}: a plain-text file has no fields, so no corpus.id_field {config.id_field!r}")
    # Plain text is read by line and cut into paragraphs by paragraphs(): datasets' sample_by="paragraph" cuts
    # only at an exact "\n\n", so WikiText (blocks between " = Heading = " lines and lines holding a space)
    # would be one document.
    kwargs = {"sample_by": "line", "encoding_errors": "strict"} if fmt == "text" else {}
    array_lines = _array_lines(path, raw) if fmt == "json" and _is_json_array(path, raw) else None
    try:
        # datasets reads files by path: it reads a private copy of the bytes that were hashed, so an edit to
        # the corpus during the build cannot slip in. The copy keeps the file's name, whose suffix tells
        # datasets how to decompress it. It is converted afresh each time (only when a variant must be
        # built): datasets' cache, keyed by path and mtime, is never the right one.
        with tempfile.TemporaryDirectory(prefix="nift-corpus-") as tmp, _datasets_silenced():
            copy = Path(tmp) / path.name
            copy.write_bytes(raw)
            dataset = datasets.load_dataset(fmt, data_files=str(copy), split="train",
                                            download_mode=datasets.DownloadMode.FORCE_REDOWNLOAD, **kwargs)
        fields = ", ".join(dataset.column_names)
        texts = _column(dataset, field)  # pyarrow decodes strings here: bad bytes surface now, not at load time
        if texts is None:
            raise InputError(f"{path}: no field {field!r} (fields: {fields}); set --text-field")
        ids = _column(dataset, config.id_field) if config.id_field else None
        if config.id_field and ids is None:
            raise InputError(f"{path}: no field {config.id_field!r} for corpus.id_field (fields: {fields})")
    except InputError:
        raise
    except Exception as exc:  # datasets wraps pyarrow errors in several types; diagnose, else re-raise
        _diagnose(path, raw, fmt, [field, *([config.id_field] if config.id_field else [])])
        raise InputError(f"{path}: could not read as {fmt}: {exc}") from exc
    if fmt == "text" and texts:  # a byte-order mark (Notepad writes one) is not prose: the teacher would read it
        texts[0] = texts[0].removeprefix("\ufeff")
    if fmt == "text" and config.text_mode == "paragraph":
        texts = paragraphs(texts)
        if len(texts) == 1 and (lines := texts[0].count("\n") + 1) > 1:  # one document per line, unseparated?
            log.warning(f"{path}: {lines} lines with no blank line between them are 1 document (text_mode "
                        "paragraph); if the file holds one document per line, set data.corpus.text_mode: line")
    if fmt == "text" and not any(text.strip() for text in texts):
        headings = " and WikiText headings" if config.text_mode == "paragraph" else ""
        raise InputError(f"{path}: no text (blank lines{headings} only)")
    if not texts:
        raise InputError(f"{path}: no rows")
    return _FileRows(texts, ids, _locator(path, raw, fmt, config.text_mode, array_lines), prose=fmt == "text")


def _rows(config: CorpusConfig, root: Path | None, read: Callable[[Path], bytes]):
    """Yield (where the row is, for errors; name in document ids; row number; text; id) for every row of the
    corpus but the blank lines of a plain-text file. ``where`` is called only when an error names the row."""
    if config.hub_dataset:
        import datasets

        from harness.core.models import hub_unreachable_reason

        if reason := hub_unreachable_reason():
            raise InputError(f"hub dataset {config.hub_dataset!r} cannot be streamed: {reason}. Download it on a "
                             "machine with network and pass corpus.path (a local JSONL/Parquet/text file) instead.")
        try:
            stream = datasets.load_dataset(config.hub_dataset, config.hub_config, split=config.split, streaming=True)
            for number, row in enumerate(stream, 1):
                doc_id = row_field(row, config.id_field) if config.id_field else None
                if doc_id is MISSING:
                    raise InputError(f"hub dataset {config.hub_dataset!r} row {number}: no field "
                                     f"{config.id_field!r} for corpus.id_field (fields: {', '.join(row)})")
                text = row_field(row, config.text_field)
                yield (lambda n=number: f"hub dataset {config.hub_dataset!r} row {n}", Path(config.hub_dataset).stem,
                       number, None if text is MISSING else text, doc_id)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"hub dataset {config.hub_dataset!r} could not be read ({type(exc).__name__}: "
                             f"{exc}). Offline (HF_HUB_OFFLINE), download it elsewhere and pass corpus.path.") from exc
        return
    root = root or corpus_root(config)
    files = corpus_files(config, root)
    for path, name in source_names(files, root).items():
        rows = _read_file(config, path, read(path))
        for number, text in enumerate(rows.texts, 1):
            if rows.prose and not text.strip():
                continue
            yield (lambda n=number, locate=rows.locate: locate(n)), name, number, text, \
                rows.ids[number - 1] if rows.ids else None


def load_corpus(config: CorpusConfig, root: Path | None = None,
                read: Callable[[Path], bytes] = Path.read_bytes) -> Corpus:
    """Every document of the corpus, normalised, in corpus order, and the count of rows with no text. Raises
    InputError on bad input, naming the file and line (or row, for Parquet and hub datasets).

    ``root`` is the file or folder :func:`open_corpus` returned (default: the one the config names); ``read``
    gives a file's bytes (a stage passes :meth:`StageRun.read`: the bytes it hashed)."""
    documents = []
    empty = 0
    first_seen: dict[str, Callable[[], str]] = {}
    for where, name, number, text, doc_id in _rows(config, root, read):
        if text is None:
            raise InputError(f"{where()}: field {config.text_field!r} is missing or null")
        if not isinstance(text, str):
            raise InputError(f"{where()}: field {config.text_field!r} is {_json_type(text)}, not text")
        text = normalise(text)
        if not text:
            empty += 1
            continue
        if config.id_field:
            # str() would make null "None" (or fall back to the row number unseen), 1.0 "1.0" and an object its repr
            if doc_id is None or isinstance(doc_id, bool) or not isinstance(doc_id, str | int):
                raise InputError(f"{where()}: field {config.id_field!r} (corpus.id_field) must be a string "
                                 f"or a whole number, got {'null' if doc_id is None else type(doc_id).__name__}")
        doc_id = str(doc_id) if doc_id is not None else f"{name}:{number}"
        if doc_id in first_seen:  # cuts, pairs and filters are keyed by id: a repeat would replace a document
            field = f" (corpus.id_field {config.id_field!r})" if config.id_field else ""
            raise InputError(f"{where()}: document id {doc_id!r}{field} repeats the one at "
                             f"{first_seen[doc_id]()}; ids must be unique")
        first_seen[doc_id] = where
        documents.append(Document(doc_id=doc_id, text=text))
    if not documents:
        blank = f" ({empty} rows hold only whitespace or nothing in field {config.text_field!r})" if empty else ""
        raise InputError(f"corpus {config.path or config.hub_dataset or 'embedded'} has no documents with text{blank}")
    return Corpus(documents, empty)
