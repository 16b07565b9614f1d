"""../shared/data sits beside the project's own checkouts only; tests that read it skip elsewhere."""

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def shared_data(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: ../shared/data is only beside the project's own checkouts")
    return path
