"""The labelling guidelines as Markdown the app can show: no HTML, no links that run or embed something.

The guidelines file is the team's, but it travels through version control and pull requests like any input, so
it is shown defensively, in two layers:

1. ``st.markdown`` without ``unsafe_allow_html``, so Streamlit itself renders no raw HTML;
2. :func:`safe_markdown` before that: every ``&`` and ``<`` becomes an entity, so no tag, comment, autolink
   (``<javascript:...>``) or character reference (``jav&#97;script:``) survives as markup; and every link or
   image destination (inline ``[x](...)`` and reference definitions ``[x]: ...``, also inside a block quote
   or a list item, with a label over several lines or CR line endings) whose scheme is not http, https or
   mailto is replaced by the anchor ``#unsafe-link-removed`` (``javascript:``, ``data:``, ``vbscript:``,
   ``file:``, including backslash-escaped and mixed-case spellings). The destinations are found without a
   Markdown parser, over-inclusively (after any ``](`` or ``]:``): a parser of ours that disagreed with the
   browser's renderer on what is a link would be a way past the check.

Entities show as written inside code spans (``&lt;`` for ``<``): the price of not trusting a code-span parser
that could disagree with the browser's renderer.

Headings, lists, emphasis, code and ordinary links work as written.
"""

from __future__ import annotations

import re

SAFE_SCHEMES = ("http", "https", "mailto")
BLOCKED = "#unsafe-link-removed"  # an anchor: inert, and says why the link went

# Where a link or image destination starts: after "](" (inline) or "]:" (a reference definition, its label
# left unparsed: a label may span lines), past spaces, tabs and one or more line endings, and past the ">" of a
# block quote and the indent of a list item, since a definition or a link inside a container (`> [x]: ...`,
# `- [x]:\n  ...`) is one too. Found anywhere, not only at a line's start: checking a "]:" that defines nothing
# costs nothing, and no container prefix, nesting or line ending (CR included) then hides one.
_DESTINATION = re.compile(r"\]([(:])[\s>]*")
# Where it ends: at whitespace, or at ")" for an inline one (a destination in <...> cannot occur: "<" is
# escaped first).
_END = {"(": re.compile(r"[^\s)]*"), ":": re.compile(r"\S*")}
_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):")
_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")  # CommonMark backslash escapes: ASCII punctuation


def link_scheme(destination: str) -> str | None:
    """The scheme a browser would read from a Markdown destination (escapes undone, control characters and
    spaces dropped, lower case), or None for a relative link or an anchor."""
    url = _ESCAPED.sub(r"\1", destination)
    url = "".join(ch for ch in url if ch > " " and ch != "\x7f").lower()
    match = _SCHEME.match(url)
    return match.group(1) if match else None


def _neutralise_links(text: str) -> str:
    """Every destination with a scheme not in ``SAFE_SCHEMES`` replaced by ``BLOCKED``. The anchors ("](", "]:")
    are scanned without consuming the destinations after them: a destination that holds another anchor
    (``[x]:`` then ``[y]:javascript:...`` on the next line) has that one checked too."""
    out, done = [], 0
    for anchor in _DESTINATION.finditer(text):
        start = anchor.end()
        if start < done:  # inside a destination already removed
            continue
        end = _END[anchor.group(1)].match(text, start).end()
        scheme = link_scheme(text[start:end])
        if scheme is not None and scheme not in SAFE_SCHEMES:
            out += [text[done:start], BLOCKED]
            done = end
    return "".join(out) + text[done:]


def safe_markdown(text: str) -> str:
    """``text`` with HTML and character references turned into visible text and unsafe link targets removed."""
    return _neutralise_links(text.replace("&", "&amp;").replace("<", "&lt;"))
