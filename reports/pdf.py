"""The report as PDF: the HTML report printed by headless Chromium (Debian's ``chromium`` package).

The page size and page breaks come from the report's own print CSS (A4, tables and charts kept whole); the
printing browser gets a fresh temporary profile, loads nothing but the report file (the report's CSP allows no
fetch), and is given ``timeout`` seconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from harness.core.errors import InputError, NiftError
from harness.core.log import get_logger

log = get_logger("report")

#: Chromium's flags for printing: no sandbox (containers), no GPU, nothing fetched in the background, no
#: header or footer (date, file URL) on the pages.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
         "--mute-audio", "--no-pdf-header-footer", "--run-all-compositor-stages-before-draw")


class PdfError(NiftError):
    """Chromium is missing, failed, or wrote no PDF: one line naming the cause, exit 2."""


def chromium() -> str | None:
    """The Chromium binary on PATH (Debian: ``chromium``), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def write_pdf(html_path: Path, pdf_path: Path | None = None, timeout: float = 120) -> Path:
    """Print ``html_path`` to ``pdf_path`` (default: beside it, ``.pdf``) and return the PDF's path.

    The PDF is written to a temporary file and moved into place, so a failed print leaves no partial PDF."""
    html_path = Path(html_path).resolve()
    if not html_path.is_file():
        raise InputError(f"{html_path}: no such report (write it first with `nift-gate report`)")
    pdf_path = Path(pdf_path) if pdf_path is not None else html_path.with_suffix(".pdf")
    binary = chromium()
    if binary is None:
        raise PdfError("chromium is not installed: the PDF is printed by headless Chromium "
                       "(Debian: apt-get install -y chromium; `make system-deps` installs it)")
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nift-pdf-") as scratch:
        partial = Path(scratch) / "report.pdf"
        command = [binary, *FLAGS, f"--user-data-dir={Path(scratch) / 'profile'}", f"--print-to-pdf={partial}",
                   html_path.as_uri()]
        env = {**os.environ, "HOME": scratch}  # Chromium writes caches under HOME: keep them in the scratch folder
        # Its own session, so that on a timeout the whole group (Chromium's helper processes too) is ended.
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                                   start_new_session=True)
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise PdfError(f"chromium did not print {html_path} within {timeout:g} s") from exc
        if process.returncode != 0 or not partial.exists() or partial.stat().st_size == 0:
            raise PdfError(f"chromium failed to print {html_path} (exit {process.returncode}): "
                           f"{stderr.strip()[-1500:] or 'no output'}")
        if partial.read_bytes()[:5] != b"%PDF-":
            raise PdfError(f"chromium wrote something that is not a PDF for {html_path}")
        shutil.move(str(partial), pdf_path)
    log.debug("report PDF -> %s", pdf_path)
    return pdf_path
