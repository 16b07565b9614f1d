import pytest
from tiny import edit_in_place as _edit_bytes_in_place


@pytest.fixture
def edit_in_place():
    """``edit_in_place(path, old, new)``: same size, same inode, same mtime, other content."""
    def edit(path, old: str, new: str) -> None:
        before = path.stat()
        _edit_bytes_in_place(path, old.encode(), new.encode())
        after = path.stat()
        assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)

    return edit
