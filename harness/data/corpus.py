"""Reading a corpus into clean documents, with errors that name the file and line.

Files and hub datasets are read through ``datasets`` (JSON Lines, JSON, Parquet, plain text; hub
datasets by streaming). When ``datasets`` rejects a local file, the file is re-read line by line to
name the exact problem, because pyarrow's messages do not say where it is.
"""

from __future__ import annotations

import json
import re
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.assets import assets_dir, resolve_asset
from harness.core.errors import InputError
from harness.core.records import InputRef, sha256_bytes
from harness.core.store import decode_utf8, numbered_jsonl
from harness.data.config import CorpusConfig

if TYPE_CHECKING:
    from harness.core.runner import StageRun

SUFFIX_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".txt": "text", ".raw": "text",
                  ".text": "text", ".md": "text"}


@dataclass(frozen=True)
class Document:
    doc_id: str
    text: str


def embedded_corpus_dir() -> Path:
    return assets_dir() / "corpus"


_SPACES = re.compile(r"[^\S\n]+")
_BREAKS = re.compile(r"\s*\n\s*\n\s*")


def normalise(text: str) -> str:
    """NFC, one space between words, paragraphs kept as a single blank line."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    paragraphs = [_SPACES.sub(" ", " ".join(p.split("\n"))).strip() for p in _BREAKS.split(text)]
    return "\n\n".join(p for p in paragraphs if p)


def corpus_root(config: CorpusConfig) -> Path:
    """The corpus file or folder the config names (the embedded corpus when it names none)."""
    return resolve_asset(config.path) if config.path else embedded_corpus_dir()


def corpus_files(config: CorpusConfig, root: Path | None = None) -> list[Path]:
    """The corpus files under ``root`` (default: :func:`corpus_root`), in sorted order."""
    root = root or corpus_root(config)
    if not root.exists():
        raise InputError(f"{root}: corpus path does not exist")
    files = sorted(p for p in root.rglob("*") if p.suffix in SUFFIX_FORMATS) if root.is_dir() else [root]
    if not files:
        raise InputError(f"{root}: no corpus files ({', '.join(SUFFIX_FORMATS)}) in this folder")
    return files


def unread_files(root: Path | None) -> list[str]:
    """Files in a corpus folder that are not read, because their type (suffix) is not a corpus format, as
    paths under the folder; the data card lists them so that a skipped ``.csv`` is not a silent loss."""
    if root is None or not root.is_dir():
        return []
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
                  and p.suffix not in SUFFIX_FORMATS)


def source_names(files: list[Path], root: Path) -> dict[Path, str]:
    """How each corpus file is named in the ids of its documents (``<name>:<row>``): its path under the corpus
    folder without the suffix (``part-a``, ``news/part-a``), so equal file names in two folders stay apart;
    with the suffix where two files would share a name (``x.jsonl``, ``x.txt``). A corpus file: its stem."""
    base = root if root.is_dir() else root.parent
    names = {p: p.relative_to(base).with_suffix("").as_posix() for p in files}
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
    return SUFFIX_FORMATS.get(path.suffix, "text")


def _diagnose(path: Path, raw: bytes, fmt: str, text_field: str) -> None:
    """Re-read a file's bytes the slow way and raise InputError naming the first bad line, if there is one."""
    text = decode_utf8(raw, path)
    if fmt == "json" and path.suffix == ".json":
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        return
    if fmt != "json":
        return
    for number, row in numbered_jsonl(raw, path):
        if text_field not in row:
            raise InputError(f"{path}:{number}: no field {text_field!r} (fields: {', '.join(row)}); "
                             "set --text-field")


def _read_file(config: CorpusConfig, path: Path, raw: bytes) -> tuple[list, list | None]:
    """Texts (and ids, if configured) of one file, whose bytes are ``raw``, read through ``datasets``."""
    import datasets

    datasets.disable_progress_bars()  # nift-gate draws its own bars; these would interleave with them
    fmt = _file_format(config, path)
    field = "text" if fmt == "text" else config.text_field
    kwargs = {"sample_by": config.text_mode, "encoding_errors": "strict"} if fmt == "text" else {}
    try:
        # datasets reads files by path: it reads a private copy of the bytes that were hashed, so an edit to
        # the corpus during the build cannot slip in. It is converted afresh each time (only when a variant
        # must be built): datasets' cache, keyed by path and mtime, is never the right one.
        with tempfile.TemporaryDirectory(prefix="nift-corpus-") as tmp:
            copy = Path(tmp) / path.name
            copy.write_bytes(raw)
            dataset = datasets.load_dataset(fmt, data_files=str(copy), split="train",
                                            download_mode=datasets.DownloadMode.FORCE_REDOWNLOAD, **kwargs)
        if field not in dataset.column_names:
            raise InputError(f"{path}: no field {field!r} (fields: {', '.join(dataset.column_names)}); "
                             "set --text-field")
        texts = list(dataset[field])  # pyarrow decodes strings here: bad bytes surface now, not at load time
        ids = list(dataset[config.id_field]) if config.id_field in dataset.column_names else None
    except InputError:
        raise
    except Exception as exc:  # datasets wraps pyarrow errors in several types; diagnose, else re-raise
        _diagnose(path, raw, fmt, config.text_field)
        raise InputError(f"{path}: could not read as {fmt}: {exc}") from exc
    return texts, ids


def _rows(config: CorpusConfig, root: Path | None, read: Callable[[Path], bytes]):
    """Yield (file or dataset, name in document ids, row number, text, id) for every row of the corpus."""
    if config.hub_dataset:
        import datasets

        from harness.core.models import hub_unreachable_reason

        if reason := hub_unreachable_reason():
            raise InputError(f"hub dataset {config.hub_dataset!r} cannot be streamed: {reason}. Download it on a "
                             "machine with network and pass corpus.path (a local JSONL/Parquet/text file) instead.")
        try:
            stream = datasets.load_dataset(config.hub_dataset, config.hub_config, split=config.split, streaming=True)
            for number, row in enumerate(stream, 1):
                yield (config.hub_dataset, Path(config.hub_dataset).stem, number, row.get(config.text_field),
                       row.get(config.id_field or ""))
        except Exception as exc:
            raise InputError(f"hub dataset {config.hub_dataset!r} could not be read ({type(exc).__name__}: "
                             f"{exc}). Offline (HF_HUB_OFFLINE), download it elsewhere and pass corpus.path.") from exc
        return
    root = root or corpus_root(config)
    files = corpus_files(config, root)
    for path, name in source_names(files, root).items():
        texts, ids = _read_file(config, path, read(path))
        for number, text in enumerate(texts, 1):
            yield str(path), name, number, text, ids[number - 1] if ids else None


def load_corpus(config: CorpusConfig, root: Path | None = None,
                read: Callable[[Path], bytes] = Path.read_bytes) -> list[Document]:
    """Every document of the corpus, normalised, in corpus order. Raises InputError on bad input.

    ``root`` is the file or folder :func:`open_corpus` returned (default: the one the config names); ``read``
    gives a file's bytes (a stage passes :meth:`StageRun.read`: the bytes it hashed)."""
    documents = []
    first_seen: dict[str, str] = {}
    for source, name, number, text, doc_id in _rows(config, root, read):
        if text is None:
            raise InputError(f"{source}:{number}: field {config.text_field!r} is missing or null")
        if not isinstance(text, str):
            raise InputError(f"{source}:{number}: field {config.text_field!r} is {type(text).__name__}, not text")
        text = normalise(text)
        if not text:
            continue
        doc_id = str(doc_id) if doc_id is not None else f"{name}:{number}"
        if doc_id in first_seen:  # cuts, pairs and filters are keyed by id: a repeat would replace a document
            field = f" (corpus.id_field {config.id_field!r})" if config.id_field else ""
            raise InputError(f"{source}:{number}: document id {doc_id!r}{field} repeats the one at "
                             f"{first_seen[doc_id]}; ids must be unique")
        first_seen[doc_id] = f"{source}:{number}"
        documents.append(Document(doc_id=doc_id, text=text))
    if not documents:
        raise InputError(f"corpus {config.path or config.hub_dataset or 'embedded'} has no documents with text")
    return documents
