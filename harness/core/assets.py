"""Files shipped inside the package: the embedded corpus, suites, instruction set and configs.

Config values may name them as ``embedded:<relative path>``; users' own files are plain paths.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

EMBEDDED_PREFIX = "embedded:"


def assets_dir() -> Path:
    return Path(str(resources.files("harness") / "assets"))


def resolve_asset(path: str) -> Path:
    """``embedded:suites/x.jsonl`` -> the shipped file; any other string -> that path, ``~`` expanded."""
    if path.startswith(EMBEDDED_PREFIX):
        return assets_dir() / path[len(EMBEDDED_PREFIX):]
    return Path(path).expanduser()
