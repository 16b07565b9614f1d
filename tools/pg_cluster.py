"""A throwaway PostgreSQL cluster for tests and benchmarks: initdb + pg_ctl in a temp folder on 127.0.0.1.

    with pg_cluster() as url:      # postgresql+psycopg://postgres@127.0.0.1:<port>/postgres
        ...

Runs the server as the ``postgres`` user when started as root (PostgreSQL refuses to run as root), in its
own /tmp folder (pytest's temp folders are private to root). Trust authentication, loopback only; stopped
and removed on exit. ``PostgresUnavailable`` says why when there is no server to start.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    pass


def server_binaries() -> Path | None:
    for found in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        return Path(found).parent
    which = shutil.which("initdb")
    return Path(which).parent if which else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(as_user: list[str], binaries: Path, folder: Path, attempts: int = 3) -> int:
    """Start the cluster in ``folder`` on a free port, and return the port. The port is free when chosen, but
    another process (a second pytest worker starting its own cluster) may take it before the server binds it:
    then the server cannot start, and another port is tried."""
    attempt = 1
    while True:
        port = _free_port()
        options = f"-p {port} -c listen_addresses=127.0.0.1 -k {folder} -c max_connections=100"
        try:
            subprocess.run([*as_user, str(binaries / "pg_ctl"), "-D", str(folder / "data"), "-o", options, "-l",
                            str(folder / "log"), "-w", "-t", "60", "start"], check=True, capture_output=True)
            return port
        except subprocess.CalledProcessError:
            log = (folder / "log").read_text(errors="replace") if (folder / "log").exists() else ""
            if attempt == attempts or "could not bind" not in log:
                raise
            (folder / "log").unlink()
            attempt += 1


@contextlib.contextmanager
def pg_cluster() -> Iterator[str]:
    binaries = server_binaries()
    if binaries is None:
        raise PostgresUnavailable("PostgreSQL server binaries not found (Debian: apt-get install -y postgresql)")
    as_user: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser is None or subprocess.run(["id", "postgres"], capture_output=True).returncode != 0:
            raise PostgresUnavailable("running as root and there is no 'postgres' user to run PostgreSQL as")
        as_user = [runuser, "-u", "postgres", "--"]
    folder = Path(tempfile.mkdtemp(prefix="nift-pg-"))
    if as_user:
        shutil.chown(folder, "postgres")
    data = folder / "data"
    try:
        subprocess.run([*as_user, str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                        "--no-sync"], check=True, capture_output=True)
        port = _start(as_user, binaries, folder)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise PostgresUnavailable(f"{exc.cmd[len(as_user)]} failed: {exc.stderr.decode(errors='replace')[-500:]}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
