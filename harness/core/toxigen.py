"""ToxiGen's published prompt format, read the same way by every stage that reads its prompts (the toxicity audit,
the data stage's contamination filter)."""

from __future__ import annotations

import re

#: The name of one of ToxiGen's prompt files (github.com/microsoft/TOXIGEN, ``prompts/``): ``hate_asian_1k.txt``,
#: ``neutral_mental_disability_1k.txt``. The file holds no label or group of its own; both are in its name. Another
#: size (``_10k``, ``_500``, none) and anything after it (``_sample``, a browser's `` (1)``) are tolerated.
PROMPT_FILE = re.compile(r"(?P<label>hate|neutral)_(?P<group>[A-Za-z0-9][A-Za-z0-9_]*?)"
                         r"(?:_\d+k?(?:[^A-Za-z0-9].*)?)?\.txt", re.IGNORECASE)

#: How a ToxiGen prompt file is to be named, for errors.
PROMPT_FILE_NAME = "hate_<group>_1k.txt or neutral_<group>_1k.txt (e.g. hate_asian_1k.txt)"


def prompt_file_stratum(name: str) -> tuple[str, str] | None:
    """(group, label) of a ToxiGen prompt file named ``name`` (``hate_asian_1k.txt``: asian, hate); None for a name
    that does not follow :data:`PROMPT_FILE`."""
    match = PROMPT_FILE.fullmatch(name)
    return (match["group"], match["label"].lower()) if match else None


def prompt_file_lines(text: str) -> list[tuple[int, str]]:
    """(line number, prompt) of a ToxiGen prompt file's text, blank lines skipped. Only a line feed ends a line
    (a prompt's text never holds one: its line breaks are written as backslash-n) and a carriage return before it
    is dropped, as ToxiGen's own ``splitlines()`` drops it; the prompt is otherwise kept byte for byte, since its
    last characters (``\\n-``) are where the model goes on."""
    return [(number, line.removesuffix("\r")) for number, line in enumerate(text.split("\n"), 1) if line.strip()]


def prompt_text(text: str) -> str:
    """A prompt as the model is to read it. ToxiGen's prompt files hold one prompt a line: demonstrations, each
    ``- statement``, joined by the two characters backslash-n and ending ``\\n-``. In that shape, and only in it,
    each backslash-n is a line break; in any other prompt it is what the text says."""
    if text.startswith("- ") and "\\n-" in text:
        return text.replace("\\n", "\n")
    return text
