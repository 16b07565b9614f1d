"""Review tests: a hand-made run (bench record with per-item rows and pairwise answers, audit samples),
a reviewer config, and a throwaway PostgreSQL cluster when the machine has PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from review_support import config, postgres_cluster, run_store  # noqa: F401  (fixtures)


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh PostgreSQL cluster in a temp folder for the whole session (skipped only where PostgreSQL
    cannot be found: `make test` installs it from Debian's packages)."""
    with postgres_cluster() as url:
        yield url


@pytest.fixture
def pg_database(postgres_url):
    """An empty database of its own on the session cluster."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))
