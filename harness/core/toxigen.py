"""ToxiGen's published prompt format, read the same way by every stage that reads its prompts (the toxicity audit,
the data stage's contamination filter)."""

from __future__ import annotations


def prompt_text(text: str) -> str:
    """A prompt as the model is to read it. ToxiGen's prompt files hold one prompt a line: demonstrations, each
    ``- statement``, joined by the two characters backslash-n and ending ``\\n-``. In that shape, and only in it,
    each backslash-n is a line break; in any other prompt it is what the text says."""
    if text.startswith("- ") and "\\n-" in text:
        return text.replace("\\n", "\n")
    return text
