"""Hand-made records pin the files beside them as the stage runner's commit does (``Record.outputs``), so that
readers, which refuse unpinned or edited outputs, read what a fixture wrote."""

from __future__ import annotations

import json
from pathlib import Path

from harness.core.records import Record, sha256_file
from harness.core.store import RECORD_FILE, atomic_write_text, write_record


def _outputs(folder: Path) -> dict[str, str]:
    return {path.relative_to(folder).as_posix(): sha256_file(path) for path in sorted(folder.rglob("*"))
            if path.is_file() and path != folder / RECORD_FILE}


def write_pinned_record(folder: Path, record: Record) -> Path:
    """``record`` written into ``folder``, pinning every file already there."""
    record.outputs = _outputs(folder) if folder.is_dir() else {}
    return write_record(folder, record)


def pin_outputs(folder: Path) -> None:
    """Re-pin every file beside ``folder``'s record (after a fixture or a test wrote one); no record, nothing."""
    path = folder / RECORD_FILE
    if path.exists():
        data = json.loads(path.read_text())
        data["outputs"] = _outputs(folder)
        atomic_write_text(path, json.dumps(data, indent=2) + "\n")
