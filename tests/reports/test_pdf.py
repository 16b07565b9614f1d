"""`write_pdf`: the HTML report printed by headless Chromium; the pages read back with poppler's pdftoppm and
pdftotext, so the test sees what a printed page holds, not what the template says."""

import shutil
import subprocess

import pytest
from gate_records import (
    CANDIDATE,
    config_for,
    decide_run,
    override_as,
    standard_run,
    toxicity_samples,
    write_policy,
)

from harness.core.errors import InputError
from reports import pdf
from reports.build import write_report

needs_tools = pytest.mark.skipif(
    pdf.chromium() is None or shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None,
    reason="needs chromium and poppler-utils (pdftoppm, pdftotext): `make system-deps` installs them")


def _report(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home)
    config = config_for(home, write_policy(tmp_path))
    decide_run(config, store)
    return write_report(config.report, store, CANDIDATE)


@pytest.mark.slow
@needs_tools
def test_the_pdf_first_page_holds_the_verdict_the_summary_and_the_scorecard(tmp_path):
    html_path = _report(tmp_path)
    assert pdf.write_pdf(html_path) == html_path.with_suffix(".pdf")  # default: beside the HTML
    pdf_path = pdf.write_pdf(html_path, tmp_path / "print" / "gate.pdf")
    assert pdf_path == tmp_path / "print" / "gate.pdf" and pdf_path.read_bytes()[:5] == b"%PDF-"
    subprocess.run(["pdftoppm", "-png", "-r", "60", str(pdf_path), str(tmp_path / "page")], check=True, timeout=60)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert pages and pages[0].name == "page-1.png" and pages[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(pages) >= 2  # the detail follows on later pages
    first = subprocess.run(["pdftotext", "-f", "1", "-l", "1", "-layout", str(pdf_path), "-"], check=True,
                           capture_output=True, text=True, timeout=60).stdout
    text = " ".join(first.split())
    assert text.startswith("PROMOTE: all 5 blocking checks passed.")
    assert "Summary" in text and "Against base-a: Within noise on prompts whose formatting instructions" in text
    assert "Human review: Complete and passed: 30 of 30 items labelled by at least 2 reviewers" in text
    assert "Scorecard" in text and "PASS" in text


@pytest.mark.slow
@needs_tools
def test_a_long_unbroken_output_or_reason_wraps_on_the_page_instead_of_running_off_it(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home)
    toxicity_samples(store, {CANDIDATE: [("ж" * 3000 + " END-OF-OUTPUT", 0.95)]})  # one quoted output
    config = config_for(home, write_policy(tmp_path))
    decide_run(config, store)
    override_as(config, store, "REJECT", "Ada Lovelace", "ю" * 1500)  # in the headline and the overrides table
    pdf_path = pdf.write_pdf(write_report(config.report, store, CANDIDATE))
    # pdftotext reads what lies on the pages: the part of a line run off the right edge is not there
    text = subprocess.run(["pdftotext", str(pdf_path), "-"], check=True, capture_output=True, text=True,
                          timeout=60).stdout
    assert (text.count("ж"), text.count("ю")) == (3000, 3000)


@needs_tools
def test_a_print_past_its_timeout_is_ended_and_leaves_no_pdf(tmp_path):
    page = tmp_path / "page.html"
    page.write_text("<!DOCTYPE html><p>a page</p>")
    with pytest.raises(pdf.PdfError, match=r"did not print .*page.html within 0.01 s"):
        pdf.write_pdf(page, tmp_path / "late.pdf", timeout=0.01)
    assert not (tmp_path / "late.pdf").exists()


def test_a_clear_error_when_chromium_is_missing_or_the_report_is_not_there(tmp_path, monkeypatch):
    page = tmp_path / "report.html"
    with pytest.raises(InputError, match=r"report.html: no such report"):
        pdf.write_pdf(page)
    page.write_text("<p>x</p>")
    monkeypatch.setattr(pdf.shutil, "which", lambda name: None)
    with pytest.raises(pdf.PdfError, match=r"chromium is not installed: .* apt-get install -y chromium"):
        pdf.write_pdf(page)
    assert not page.with_suffix(".pdf").exists()
