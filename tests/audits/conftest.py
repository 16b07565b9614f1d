import os

import pytest


def _edit_in_place(path, old: str, new: str) -> None:
    """Change the file's bytes keeping its size and its mtime, as a careless copy or a sync tool might."""
    assert len(old) == len(new)
    before = path.stat()
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


@pytest.fixture
def edit_in_place():
    """``edit_in_place(path, old, new)``: same size, same mtime, other content."""
    return _edit_in_place
