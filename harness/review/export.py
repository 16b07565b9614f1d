"""Export every label and judgment (superseded ones flagged, pairwise de-blinded) to CSV or Parquet via pandas.

A CSV opened in a spreadsheet runs any cell that starts like a formula, and a reviewer's comment or a model's
output can start like one: such cells get a leading ``'`` (OWASP's rule for CSV injection). Parquet keeps
every value as it is. An export never overwrites the label store, and overwrites no file already inside the
run folder unless forced; a path that names neither format, or whose folder is a file, writes nothing. The CLI
opens the store for an export with ``create=False``: a run without one is refused, not given an empty store.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from harness.core.errors import InputError
from harness.core.store import atomic_write_bytes
from harness.review.store import LABEL_FLAGS, ReviewStore

FORMATS = ("csv", "parquet")
#: What a spreadsheet reads as the start of a formula (OWASP, "CSV Injection"): = + - @, tab, carriage return.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: Files SQLite keeps beside a database: the store is all of them.
_SQLITE_FILES = ("", "-wal", "-shm", "-journal", ".write-lock")


def labels_frame(review: ReviewStore):
    """The label history with stable dtypes (nullable ints and booleans), so CSV and Parquet agree."""
    frame = review.history_frame()
    for column in ("helpfulness", "supersedes"):
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    for column in (*LABEL_FLAGS, "superseded"):
        if column in frame:
            frame[column] = frame[column].astype("boolean")
    return frame


def neutralise_formula(value):
    """A text cell a spreadsheet would evaluate, prefixed with ``'`` so it is shown as text; others unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_safe(frame):
    """The frame with every text cell that starts like a formula neutralised (numbers and booleans stay)."""
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or str(safe[column].dtype).startswith(("string", "str")):
            safe[column] = safe[column].map(neutralise_formula)
    return safe


def export_format(path: str | Path, fmt: str | None = None) -> str:
    """The export format: ``fmt``, else the file suffix; refused (before anything is opened) if neither names one."""
    fmt = fmt or Path(path).suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise InputError(f"{path}: format: {fmt!r} is not one of {list(FORMATS)} (name a .csv or .parquet file, "
                         f"or pass --format)")
    return fmt


def export_bytes(review: ReviewStore, fmt: str) -> bytes:
    """The label history as CSV (formulas neutralised) or Parquet bytes."""
    if fmt not in FORMATS:
        raise InputError(f"format: {fmt!r} is not one of {list(FORMATS)}")
    frame = labels_frame(review)
    if fmt == "csv":
        # RFC 4180 line ends: the writer then quotes a cell holding a bare CR too, which with "\n" it leaves
        # bare, splitting the row for every reader.
        return csv_safe(frame).to_csv(index=False, lineterminator="\r\n").encode("utf-8")
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def sqlite_files(url) -> list[Path]:
    """The files of the SQLite label store at SQLAlchemy ``url`` (a URL object or text; none for a server
    database or a URL that is not one)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(url)
    except ArgumentError:
        return []
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return []
    return [Path(f"{url.database}{suffix}").resolve() for suffix in _SQLITE_FILES]


def check_export_folder(path: str | Path) -> None:
    """Refuse ``path`` unless its folder is one, or can be made one: the nearest folder above it that exists
    must be a folder this process may write in, not a file (checked before the label store is opened)."""
    target = Path(path).expanduser().absolute()
    for parent in target.parents:
        if not parent.exists():
            continue
        if not parent.is_dir():
            raise InputError(f"{path}: {parent} is a file, not a folder; name an export file in a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise InputError(f"{path}: cannot write in the folder {parent}")
        return


def check_export_target(review: ReviewStore, path: str | Path, run_folder: Path | None = None,
                        force: bool = False) -> Path:
    """``path`` resolved, if the export may write it: in a folder (see :func:`check_export_folder`); never a
    file of the label store (a CSV in place of the database loses every label); an existing file inside
    ``run_folder`` (a record, a sample file, a report) only when ``force``."""
    check_export_folder(path)
    target = Path(path).expanduser().resolve()
    if target in sqlite_files(review.engine.url):
        raise InputError(f"{path}: is the label store ({review.engine.url.database}); the export would replace every "
                         f"label with a copy of them. Write the export somewhere else")
    if target.is_dir():
        raise InputError(f"{path}: is a folder; name the export file")
    if run_folder is not None and target.exists() and not force and target.is_relative_to(run_folder.resolve()):
        raise InputError(f"{path}: exists inside the run folder {run_folder}; pass --force to overwrite it, or write "
                         f"the export somewhere else")
    return target


def export_labels(review: ReviewStore, path: str | Path, fmt: str | None = None, *, run_folder: Path | None = None,
                  force: bool = False) -> Path:
    """Write the label history to ``path`` atomically (format from ``fmt``, else the file suffix); refused, with
    nothing written, for a path of no known format, the label store, or (unless ``force``) an existing file in
    ``run_folder``."""
    fmt = export_format(path, fmt)
    target = check_export_target(review, path, run_folder, force)
    atomic_write_bytes(target, export_bytes(review, fmt))
    return Path(path)
