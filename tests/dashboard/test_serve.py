"""`nift-gate review serve`: the flags it hands `streamlit run`, and a real server that SIGTERM and Ctrl-C stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from devtools import free_port, wait_http

from harness.app.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def started(tmp_path, monkeypatch):
    """Runs `review serve ARGS` and returns the command line it would have replaced itself with."""
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(yaml.safe_dump({"run": "r1", "review": {"reviewers": [{"name": "ann", "token": "t"}]}}))
    calls = []
    monkeypatch.setattr(os, "execve", lambda path, argv, env: calls.append((path, argv, env)))

    def serve(*args: str, config: Path = cfg) -> list[str] | int:
        code = main(["review", "serve", "--config", str(config), "--home", str(tmp_path / "runs"), *args])
        if code != 0:
            return code
        path, argv, env = calls.pop()
        assert path == sys.executable and argv[:4] == [sys.executable, "-m", "streamlit", "run"]
        assert env["NIFT_REVIEW_CONFIG"] == str(config.resolve())
        return argv

    return serve


def _flag(argv: list[str], name: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == name]


def test_serve_listens_on_this_machine_only_and_shows_no_error_details_by_default(started):
    argv = started()
    assert _flag(argv, "--server.address") == ["127.0.0.1"]
    assert _flag(argv, "--client.showErrorDetails") == ["none"]  # not even the type or a traceback


def test_serve_hides_the_developer_toolbar_and_sends_no_usage_statistics(started):
    argv = started()
    assert _flag(argv, "--client.toolbarMode") == ["viewer"]  # no Deploy, no Rerun/Clear cache for visitors
    assert _flag(argv, "--browser.gatherUsageStats") == ["false"]
    assert _flag(argv, "--server.headless") == ["true"]  # no browser opened, no e-mail prompt on a server


def test_serve_binds_where_told(started):
    assert _flag(started("--host", "0.0.0.0"), "--server.address") == ["0.0.0.0"]
    argv = started("--", "--server.address", "10.0.0.7", "--server.port", "8600")
    assert _flag(argv, "--server.address") == ["10.0.0.7"] and _flag(argv, "--server.port") == ["8600"]
    # flags after -- come last, so streamlit takes them over the defaults
    argv = started("--", "--client.showErrorDetails", "full")
    assert _flag(argv, "--client.showErrorDetails") == ["none", "full"]


def test_serve_refuses_two_addresses(started, capsys):
    assert started("--host", "0.0.0.0", "--", "--server.address", "10.0.0.7") == 2
    assert "give the address once" in capsys.readouterr().err


def test_serve_refuses_a_missing_guidelines_file_before_starting(started, tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({"run": "r1", "review": {"reviewers": [{"name": "ann", "token": "t"}],
                                                           "guidelines": "no-such-guidelines.md"}}))
    assert started(config=cfg) == 2
    err = capsys.readouterr().err
    assert "review.guidelines" in err and "no-such-guidelines.md" in err and "not found" in err


# ---- a real server -----------------------------------------------------------------------------------------


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_to_review_serve_stops_the_server_and_frees_its_port(tmp_path, stop):
    """The process `review serve` started as is the server: the signal sent to that PID stops it, nothing of its
    session is left running, and the port is free for the next start. /_stcore/health is the health check."""
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(yaml.safe_dump({"run": "r1", "review": {
        "database": f"sqlite:///{tmp_path / 'review.db'}", "reviewers": [{"name": "ann", "token": "t"}]}}))
    port = free_port()
    with open(tmp_path / "serve.log", "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "harness.app.cli", "review", "serve", "--config", str(cfg), "--home",
             str(tmp_path / "runs"), "--", "--server.port", str(port)],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path, start_new_session=True,
            stdout=out, stderr=subprocess.STDOUT)
    try:
        try:  # a generous wait: eight test sessions may share two cores
            health = wait_http(f"http://127.0.0.1:{port}/_stcore/health", 120)
        except OSError as exc:
            pytest.fail(f"no answer from /_stcore/health ({exc}); server log:\n{(tmp_path / 'serve.log').read_text()}")
        assert health == "ok"
        server.send_signal(stop)  # to the PID we started, not its group: no child to forward it to
        code = server.wait(timeout=20)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
    log = (tmp_path / "serve.log").read_text()
    assert code == 0, log
    with pytest.raises(ProcessLookupError):
        os.killpg(server.pid, 0)  # the whole session is gone: no orphaned Streamlit
    assert not _listening(port)
    with socket.socket() as s:  # a new server can bind it (SO_REUSEADDR, as Tornado binds)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
