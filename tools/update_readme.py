"""Regenerate the config reference block in README.md from the config models (`make readme`)."""

import re
from pathlib import Path

from harness.app.config import reference_markdown

readme = Path(__file__).resolve().parents[1] / "README.md"
text = readme.read_text()
block = "<!-- config-reference:start -->\n" + reference_markdown() + "<!-- config-reference:end -->"
readme.write_text(re.sub(r"<!-- config-reference:start -->.*<!-- config-reference:end -->", lambda _: block, text,
                         flags=re.S))
