"""Files shipped inside the package: the embedded corpus, suites, instruction set and configs.

Config values may name them as ``embedded:<relative path>``; users' own files are plain paths.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from harness.core.errors import InputError

EMBEDDED_PREFIX = "embedded:"


def assets_dir() -> Path:
    return Path(str(resources.files("harness") / "assets"))


def resolve_asset(path: str) -> Path:
    """``embedded:suites/x.jsonl`` -> the shipped file; any other string -> that path, ``~`` expanded.

    An ``embedded:`` name that leads out of the shipped assets (``embedded:../../etc``, an absolute path) is
    refused: it names a user's file, which is written as a plain path."""
    if not path.startswith(EMBEDDED_PREFIX):
        return Path(path).expanduser()
    root = assets_dir()
    asset = root / path[len(EMBEDDED_PREFIX):]
    if not asset.resolve().is_relative_to(root.resolve()):
        raise InputError(f"{path}: not a file shipped with nift-gate (it leads out of {root}); "
                         "name your own files by their plain path")
    return asset
