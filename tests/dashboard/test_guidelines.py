"""The guidelines: read and versioned by the review config, neutralised before the app shows them."""

from __future__ import annotations

import hashlib

import pytest
import yaml
from markdown_it import MarkdownIt

from dashboard.guidelines import BLOCKED, link_scheme, safe_markdown
from harness.core.errors import ConfigError
from harness.review.config import ReviewConfig, load_review_section


def _render(text: str) -> str:
    """CommonMark HTML from a renderer that keeps raw HTML and every link: what a careless viewer would do."""
    md = MarkdownIt("commonmark", {"html": True})
    md.validateLink = lambda url: True
    return md.render(text)


@pytest.mark.parametrize("link", [
    "[x](javascript:alert(1))", "[x](JaVaScRiPt:alert(1))", "[x]( javascript\\:alert(1))", "[x](vbscript:msgbox)",
    "[x](data:text/html;base64,PHNjcmlwdD4=)", "![x](data:image/svg+xml,<svg onload=alert(1)>)",
    "[x](file:///etc/passwd)", "[x]\n\n[x]: javascript:alert(1)", "[x]\n\n[x]:\n  data:text/html,hi",
    "<javascript:alert(1)>", "[x](jav&#97;script:alert(1))", "[x](<javascript:alert(1)>)",
    "[x](\njavascript:alert(1))",
])
def test_no_link_or_image_that_runs_or_embeds_something_survives(link):
    html = _render(safe_markdown(f"See {link}\n"))
    targets = [t for attr in ("href", "src") for t in html.split(f'{attr}="')[1:]]
    assert all(link_scheme(t.split('"')[0].replace("&amp;", "&")) in (None, "http", "https", "mailto")
               for t in targets), html
    assert "<svg" not in html


@pytest.mark.parametrize("markdown", [
    "> [x]: javascript:alert(1)", ">[x]: javascript:alert(1)", "   > [x]: javascript:alert(1)",
    "- [x]: javascript:alert(1)", "-\t[x]: javascript:alert(1)", "1. [x]: javascript:alert(1)",
    "> - [x]: javascript:alert(1)", "- > [y]\n  >\n  > [x]: javascript:alert(1)",
    "> [x]:\n> javascript:alert(1)", "> [x]:\njavascript:alert(1)", "- [x]:\n  data:text/html,hi",
    "[x\ny]: javascript:alert(1)", "> [x\n> y]: javascript:alert(1)", "[x]:\r\njavascript:alert(1)",
    "[x]:\rjavascript:alert(1)",
], ids=lambda m: m.replace("\n", "|").replace("\r", "<CR>"))
def test_a_reference_definition_inside_a_container_or_over_lines_is_neutralised_too(markdown):
    """A definition counts inside a block quote or a list item, and a label or the space before the destination
    may span lines: each was a way past a check that read definitions at a line's start only."""
    html = _render(safe_markdown(f"[x] [x y]\n\n{markdown}\n"))
    assert "<a " in _render(f"[x] [x y]\n\n{markdown}\n")  # it is a link before
    assert "javascript:" not in html and "data:" not in html, html
    assert BLOCKED in html


def test_an_inline_link_inside_a_block_quote_over_two_lines_is_neutralised():
    html = _render(safe_markdown("> [k](\n> javascript:alert(9))\n"))
    assert "javascript:" not in html and f'href="{BLOCKED}"' in html, html


@pytest.mark.parametrize("html", ["<script>alert(1)</script>", '<img src=x onerror="alert(1)">',
                                  '<a href="javascript:alert(1)">x</a>', "<!-- hidden -->", "<iframe src=x>"])
def test_raw_html_is_shown_as_text(html):
    rendered = _render(safe_markdown(html))
    assert "<script" not in rendered and "<img" not in rendered and "<a " not in rendered
    assert "<iframe" not in rendered and "<!--" not in rendered
    assert html.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;") in rendered


def test_ordinary_markdown_keeps_working():
    text = "# Title\n\n- **bold** and *em*\n- [docs](https://example.org/a?b=1&c=2) [mail](mailto:x@example.org)\n" \
           "- [anchor](#verdict) [relative](guide.html)\n"
    assert _render(safe_markdown(text)) == _render(text)


def test_a_blocked_link_says_so():
    assert safe_markdown("[x](javascript:alert(1))") == f"[x]({BLOCKED}))"  # the rest of the call is plain text


def test_the_shipped_guidelines_are_the_default_and_versioned_by_their_bytes():
    doc = ReviewConfig().guidelines_document()
    assert doc.path.name == "guidelines.md" and doc.path.parent.name == "review"
    assert doc.sha256 == hashlib.sha256(doc.path.read_bytes()).hexdigest()
    assert doc.text.startswith("# Labelling guidelines")
    assert safe_markdown(doc.text) == doc.text  # nothing in them needs neutralising


def test_a_relative_guidelines_path_is_read_beside_the_yaml(tmp_path, monkeypatch):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "rules.md").write_text("# Ours\n")
    path = tmp_path / "conf" / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"review": {"guidelines": "rules.md"}}))
    monkeypatch.chdir(tmp_path)  # not where the YAML is
    _, config = load_review_section(path)
    assert config.guidelines_document().text == "# Ours\n"


def test_a_missing_guidelines_file_is_refused_naming_the_field_and_file(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"review": {"guidelines": str(tmp_path / "gone.md")}}))
    with pytest.raises(ConfigError, match=r"review\.guidelines: .*gone\.md: guidelines file not found"):
        load_review_section(path)


def test_adjudicators_must_be_configured_reviewers():
    reviewers = [{"name": "ann"}, {"name": "meg", "role": "release_manager"}]
    config = ReviewConfig(reviewers=reviewers, adjudicators=["ann"])
    assert config.may_adjudicate("ann") and config.may_adjudicate("meg") and not config.may_adjudicate("zed")
    assert not ReviewConfig(reviewers=reviewers).may_adjudicate("ann")
    with pytest.raises(ValueError, match=r"review\.adjudicators: \['zed'\] are not in review\.reviewers"):
        ReviewConfig(reviewers=reviewers, adjudicators=["zed"])
