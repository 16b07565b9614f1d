"""Export every label and judgment (superseded ones flagged, pairwise de-blinded) to CSV or Parquet via pandas."""

from __future__ import annotations

import io
from pathlib import Path

from harness.core.errors import InputError
from harness.core.store import atomic_write_bytes
from harness.review.store import LABEL_FLAGS, ReviewStore

FORMATS = ("csv", "parquet")


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


def export_bytes(review: ReviewStore, fmt: str) -> bytes:
    if fmt not in FORMATS:
        raise InputError(f"format: {fmt!r} is not one of {list(FORMATS)}")
    frame = labels_frame(review)
    if fmt == "csv":
        return frame.to_csv(index=False).encode("utf-8")
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def export_labels(review: ReviewStore, path: str | Path, fmt: str | None = None) -> Path:
    """Write the label history to ``path`` atomically (format from ``fmt``, else the file suffix)."""
    path = Path(path)
    fmt = fmt or path.suffix.lstrip(".").lower()
    atomic_write_bytes(path, export_bytes(review, fmt))
    return path
