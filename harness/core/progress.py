"""Per-model progress of an audit, so a crashed audit resumes at the next model instead of starting over.

Each model's finished outputs are written atomically to ``<run>/audit/_work/<audit>-<fingerprint>/``; the
folder is removed once the audit's record is written. A different config or input (another fingerprint)
never reads them.
"""

from __future__ import annotations

import json
import re
import shutil
from typing import Any

from harness.core.store import RunStore, atomic_write_json


class ModelProgress:
    def __init__(self, store: RunStore, audit: str, fingerprint: str):
        self.folder = store.stage_dir("audit", "_work") / f"{audit}-{fingerprint[:16]}"

    def _path(self, model: str):
        return self.folder / f"{re.sub(r'[^A-Za-z0-9._-]', '_', model)}.json"

    def load(self, model: str) -> dict[str, Any] | None:
        path = self._path(model)
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def save(self, model: str, payload: dict[str, Any]) -> None:
        atomic_write_json(self._path(model), payload)

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
