"""The throwaway PostgreSQL cluster the review store's tests run against, started beside other pytest workers."""

import socket
import sys
from pathlib import Path

import pytest
import sqlalchemy

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import pg_cluster  # noqa: E402


def test_a_port_taken_between_choosing_and_binding_it_is_replaced_by_another(monkeypatch):
    """Two workers may be handed the same free port; the one whose server cannot bind it tries another."""
    try:  # a cluster that cannot start at all is a skip; one that cannot start beside a taken port is a failure
        with pg_cluster.pg_cluster():
            pass
    except pg_cluster.PostgresUnavailable as exc:
        pytest.skip(f"{exc} (make test installs Debian's postgresql package)")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        ports = iter([busy])
        free = pg_cluster._free_port
        monkeypatch.setattr(pg_cluster, "_free_port", lambda: next(ports, None) or free())
        with pg_cluster.pg_cluster() as url:
            assert f":{busy}/" not in url
            with sqlalchemy.create_engine(url).connect() as connection:
                assert connection.execute(sqlalchemy.text("select 1")).scalar() == 1
