"""Text from records, configs and people, shown where it could be read as something else: one terminal line, a
Markdown file (the report, a CI job summary), XML.

Whoever writes a record, a policy, a label or a model name controls these strings; shown as written, a newline
would forge a line of the gate's output, U+202E would display "\u202eTCEJER" as "REJECT", and Markdown syntax
would add links, images or headings to a summary a release manager trusts.
"""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Any

from harness.core.store import UNPRINTABLE_CATEGORIES


def one_line(text: Any, mark: str = "<U+{:04X}>") -> str:
    """``text`` as one line of a terminal or an XML document: every character that cannot be shown as itself on
    one line (control characters, the ESC of a terminal escape, newlines, U+2028/2029, format characters such
    as bidi overrides and zero-width spaces, lone surrogates) written as a visible ``mark``. XML 1.0 cannot hold
    most control characters even escaped, so a JUnit file holding one would not parse."""
    text = str(text)
    return "".join(mark.format(ord(char)) if unicodedata.category(char) in UNPRINTABLE_CATEGORIES else char
                   for char in text)


# Markdown syntax a value could start, anywhere in a line: emphasis, code, links and images, table cells,
# strikethrough, GitHub's math, a heading's closing sequence. Parentheses and braces need no escape once the
# brackets are escaped; a run of underscores between letters or digits (``prompt_level_strict_acc``) opens
# no emphasis in CommonMark, so names stay readable in the raw file.
_MD_SYNTAX = re.compile(r"_+|[\\`*\[\]#|~!$]")


def _escape_syntax(match: re.Match) -> str:
    text, source = match.group(), match.string
    if text[0] == "_":
        start, end = match.span()
        if 0 < start and end < len(source) and source[start - 1].isalnum() and source[end].isalnum():
            return text
        return "\\_" * len(text)
    return "\\" + text


# What GitHub's renderer (cmark-gfm) turns into a link in plain text: `scheme://`, `www.` and an e-mail address
# (also after `mailto:` or `xmpp:`). A backslash before the ":" or the "." opens no link and reads the same; an
# e-mail address is linked whatever is escaped in it, so a zero-width non-joiner, written as an entity that shows
# in the file, goes before its "@".
_AUTOLINKS = ((re.compile(r"(?<=[A-Za-z]):(?=//)"), r"\\:"), (re.compile(r"(www)\.", re.IGNORECASE), r"\1\\."),
              (re.compile(r"(?<=[\w.+-])@"), "&zwnj;@"))
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def show_format_characters(text: str, mark: str = "<U+{:04X}>") -> str:
    """Unicode format characters (category Cf: bidi controls such as U+202E and U+2066-2069, zero-width spaces
    and joiners, the byte order mark) written as a visible ``mark``: left invisible, they can reorder or hide what
    a reader sees ("\\u202eTCEJER" displays as "REJECT")."""
    return _NON_ASCII.sub(lambda m: mark.format(ord(m.group())) if unicodedata.category(m.group()) == "Cf"
                          else m.group(), text)


def markdown_escape(text: Any) -> str:
    """Text from a record, a policy, a config or a person made inert in Markdown, as one line: format characters
    made visible; HTML entities for &, <, >; a backslash before Markdown syntax; every run of whitespace
    (newlines included) one space, so a value can start no block (a heading, a list, a quote, a table row); and
    no GitHub autolink (:data:`_AUTOLINKS`)."""
    escaped = html.escape(" ".join(show_format_characters(str(text)).split()), quote=False)
    escaped = _MD_SYNTAX.sub(_escape_syntax, escaped)
    for pattern, replacement in _AUTOLINKS:
        escaped = pattern.sub(replacement, escaped)
    return escaped


def markdown_code(text: Any) -> str:
    """A value as an inline code span, on one line, its format characters made visible: fenced by more backticks
    than any run inside it, and ``|`` escaped so it cannot end a table cell (GFM removes that backslash inside
    tables)."""
    value = " ".join(show_format_characters(str(text)).split()).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall("`+", value)), default=0) + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"
