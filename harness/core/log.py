"""Logging: the library reports through ``logging``; the CLI decides how much of it a user sees.

Every logger is a child of ``nift_gate`` (``nift_gate.data``, ``nift_gate.audit.toxicity``, ...). Library
code never configures handlers; :func:`configure` is called once by the command line with the verbosity
from ``--quiet`` / ``--verbose``. Progress bars (tqdm) are separate and go to stderr as before.
"""

from __future__ import annotations

import logging
import sys

ROOT = "nift_gate"


def get_logger(name: str) -> logging.Logger:
    """The logger of one stage or component, e.g. ``get_logger("audit.toxicity")``."""
    return logging.getLogger(f"{ROOT}.{name}")


class _StageFormatter(logging.Formatter):
    """``audit.toxicity: up to date (...)``; warnings and errors say so."""

    def format(self, record: logging.LogRecord) -> str:
        name = record.name[len(ROOT) + 1:] if record.name.startswith(ROOT + ".") else record.name
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return f"{name}: {level}{record.getMessage()}"


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at the time of the message (pytest and callers may swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout  # not setStream(): that flushes the old stream, which may be closed by now
        super().emit(record)


def configure(verbosity: int = 0) -> None:
    """-1 = quiet (warnings and errors only), 0 = progress messages, 1 = debug detail.

    Messages go to stdout, where the CLI's own results go, so one stream reads as the run's story.
    """
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    root = logging.getLogger(ROOT)
    for handler in list(root.handlers):
        if getattr(handler, "_nift_gate", False):
            root.removeHandler(handler)
    handler = _StdoutHandler(sys.stdout)
    handler._nift_gate = True  # type: ignore[attr-defined]
    handler.setFormatter(_StageFormatter())
    root.addHandler(handler)
    root.setLevel(level)
