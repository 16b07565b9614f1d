"""`nift-gate review serve`: the flags it hands `streamlit run` (the app itself is not started here)."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from harness.app.cli import main


@pytest.fixture
def started(tmp_path, monkeypatch):
    """Runs `review serve ARGS` and returns the streamlit command line it would have started."""
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(yaml.safe_dump({"run": "r1", "review": {"reviewers": [{"name": "ann", "token": "t"}]}}))
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda argv, **kwargs: calls.append(argv) or 0)

    def serve(*args: str) -> list[str] | int:
        code = main(["review", "serve", "--config", str(cfg), "--home", str(tmp_path / "runs"), *args])
        return calls.pop() if code == 0 else code

    return serve


def _flag(argv: list[str], name: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == name]


def test_serve_listens_on_this_machine_only_and_shows_no_error_details_by_default(started):
    argv = started()
    assert _flag(argv, "--server.address") == ["127.0.0.1"]
    assert _flag(argv, "--client.showErrorDetails") == ["none"]  # not even the type or a traceback


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
