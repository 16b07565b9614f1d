"""The labelling guidelines as Markdown the app can show: no HTML, no links that run or embed something.

The guidelines file is the team's, but it travels through version control and pull requests like any input, so
it is shown defensively, in two layers:

1. ``st.markdown`` without ``unsafe_allow_html``, so Streamlit itself renders no raw HTML;
2. :func:`safe_markdown` before that: every ``&`` and ``<`` becomes an entity, so no tag, comment, autolink
   (``<javascript:...>``) or character reference (``jav&#97;script:``) survives as markup; and every link or
   image destination (inline ``[x](...)`` and reference definitions ``[x]: ...``) whose scheme is not
   http, https or mailto is replaced by the anchor ``#unsafe-link-removed`` (``javascript:``, ``data:``,
   ``vbscript:``, ``file:``, including backslash-escaped and mixed-case spellings).

Entities show as written inside code spans (``&lt;`` for ``<``): the price of not trusting a code-span parser
that could disagree with the browser's renderer.

Headings, lists, emphasis, code and ordinary links work as written.
"""

from __future__ import annotations

import re

SAFE_SCHEMES = ("http", "https", "mailto")
BLOCKED = "#unsafe-link-removed"  # an anchor: inert, and says why the link went

# An inline link or image destination: "](" then optional whitespace (one line break allowed), then the
# destination up to whitespace or ")" (a destination in <...> cannot occur: "<" is escaped first).
_INLINE = re.compile(r"(\]\(\s*)([^\s)]*)")
# A link reference definition: up to 3 spaces, [label]:, whitespace (a line break allowed), destination.
_REFERENCE = re.compile(r"(^ {0,3}\[(?:[^\]\\\n]|\\.)+\]:[ \t]*\n?[ \t]*)(\S*)", re.MULTILINE)
_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):")
_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")  # CommonMark backslash escapes: ASCII punctuation


def link_scheme(destination: str) -> str | None:
    """The scheme a browser would read from a Markdown destination (escapes undone, control characters and
    spaces dropped, lower case), or None for a relative link or an anchor."""
    url = _ESCAPED.sub(r"\1", destination)
    url = "".join(ch for ch in url if ch > " " and ch != "\x7f").lower()
    match = _SCHEME.match(url)
    return match.group(1) if match else None


def _neutralise(match: re.Match) -> str:
    scheme = link_scheme(match.group(2))
    return match.group(1) + (match.group(2) if scheme is None or scheme in SAFE_SCHEMES else BLOCKED)


def safe_markdown(text: str) -> str:
    """``text`` with HTML and character references turned into visible text and unsafe link targets removed."""
    text = text.replace("&", "&amp;").replace("<", "&lt;")
    text = _REFERENCE.sub(_neutralise, text)
    return _INLINE.sub(_neutralise, text)
