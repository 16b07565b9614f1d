"""Reading a corpus into clean documents, with errors that name the file and line.

Files and hub datasets are read through ``datasets`` (JSON Lines, JSON, Parquet, plain text; hub
datasets by streaming). When ``datasets`` rejects a local file, the file is re-read line by line to
name the exact problem, because pyarrow's messages do not say where it is.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.assets import assets_dir, resolve_asset
from harness.core.errors import InputError
from harness.core.records import InputRef, sha256_bytes
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


def open_corpus(config: CorpusConfig, run: StageRun) -> Path | None:
    """Make the corpus an input of ``run`` (a file by its content, a folder by every file's content, a hub
    dataset by its name and split) and return the file or folder to read (None for a hub dataset)."""
    if config.hub_dataset:
        run.add(InputRef(kind="corpus", id=f"hub:{config.hub_dataset}/{config.hub_config or ''}:{config.split}",
                         sha256=sha256_bytes(f"{config.hub_dataset}:{config.hub_config}:{config.split}".encode())))
        return None
    root = corpus_root(config)
    corpus_files(config, root)  # a missing or empty corpus is named before anything is hashed
    name = str(config.path or "embedded")
    return run.tree(root, kind="corpus", id=name) if root.is_dir() else run.file(root, kind="corpus", id=name)


def _file_format(config: CorpusConfig, path: Path) -> str:
    if config.format != "auto":
        return config.format
    return SUFFIX_FORMATS.get(path.suffix, "text")


def _diagnose(path: Path, fmt: str, text_field: str) -> None:
    """Re-read a file the slow way and raise InputError naming the first bad line, if there is one."""
    with open(path, "rb") as handle:
        raw = handle.read()
    if fmt == "json" and path.suffix == ".json":
        try:
            json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise InputError(f"{path}:{line}: not UTF-8 (byte 0x{raw[exc.start]:02x})") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        return
    for number, line in enumerate(raw.split(b"\n"), 1):
        try:
            decoded = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}:{number}: not UTF-8 (byte 0x{line[exc.start]:02x} at column "
                             f"{exc.start + 1}); re-encode the file as UTF-8") from None
        if fmt != "json" or not decoded.strip():
            continue
        try:
            row = json.loads(decoded)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number}: not valid JSON ({exc.msg}, column {exc.colno})") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}:{number}: expected a JSON object per line, got {type(row).__name__}")
        if text_field not in row:
            raise InputError(f"{path}:{number}: no field {text_field!r} (fields: {', '.join(row)}); "
                             "set --text-field")


def _read_file(config: CorpusConfig, path: Path) -> tuple[list, list | None]:
    """Texts (and ids, if configured) of one file, read through ``datasets``."""
    import datasets

    datasets.disable_progress_bars()  # nift-gate draws its own bars; these would interleave with them
    fmt = _file_format(config, path)
    field = "text" if fmt == "text" else config.text_field
    kwargs = {"sample_by": config.text_mode, "encoding_errors": "strict"} if fmt == "text" else {}
    try:
        # datasets keys its cache of a local file by path and mtime: an edit that keeps the mtime would be
        # read back stale, so the file is always converted afresh (only when a variant must be built).
        dataset = datasets.load_dataset(fmt, data_files=str(path), split="train",
                                        download_mode=datasets.DownloadMode.FORCE_REDOWNLOAD, **kwargs)
        if field not in dataset.column_names:
            raise InputError(f"{path}: no field {field!r} (fields: {', '.join(dataset.column_names)}); "
                             "set --text-field")
        texts = list(dataset[field])  # pyarrow decodes strings here: bad bytes surface now, not at load time
        ids = list(dataset[config.id_field]) if config.id_field in dataset.column_names else None
    except InputError:
        raise
    except Exception as exc:  # datasets wraps pyarrow errors in several types; diagnose, else re-raise
        _diagnose(path, fmt, config.text_field)
        raise InputError(f"{path}: could not read as {fmt}: {exc}") from exc
    return texts, ids


def _rows(config: CorpusConfig, root: Path | None):
    """Yield (source, row number, text, id) for every row of the corpus."""
    if config.hub_dataset:
        import datasets

        from harness.core.models import hub_unreachable_reason

        if reason := hub_unreachable_reason():
            raise InputError(f"hub dataset {config.hub_dataset!r} cannot be streamed: {reason}. Download it on a "
                             "machine with network and pass corpus.path (a local JSONL/Parquet/text file) instead.")
        try:
            stream = datasets.load_dataset(config.hub_dataset, config.hub_config, split=config.split, streaming=True)
            for number, row in enumerate(stream, 1):
                yield config.hub_dataset, number, row.get(config.text_field), row.get(config.id_field or "")
        except Exception as exc:
            raise InputError(f"hub dataset {config.hub_dataset!r} could not be read ({type(exc).__name__}: "
                             f"{exc}). Offline (HF_HUB_OFFLINE), download it elsewhere and pass corpus.path.") from exc
        return
    for path in corpus_files(config, root):
        texts, ids = _read_file(config, path)
        for number, text in enumerate(texts, 1):
            yield str(path), number, text, ids[number - 1] if ids else None


def load_corpus(config: CorpusConfig, root: Path | None = None) -> list[Document]:
    """Every document of the corpus, normalised, in corpus order. Raises InputError on bad input.

    ``root`` is the file or folder :func:`open_corpus` returned (default: the one the config names)."""
    documents = []
    for source, number, text, doc_id in _rows(config, root):
        if text is None:
            raise InputError(f"{source}:{number}: field {config.text_field!r} is missing or null")
        if not isinstance(text, str):
            raise InputError(f"{source}:{number}: field {config.text_field!r} is {type(text).__name__}, not text")
        text = normalise(text)
        if text:
            documents.append(Document(doc_id=str(doc_id) if doc_id is not None else
                                      f"{Path(source).stem}:{number}", text=text))
    if not documents:
        raise InputError(f"corpus {config.path or config.hub_dataset or 'embedded'} has no documents with text")
    return documents

