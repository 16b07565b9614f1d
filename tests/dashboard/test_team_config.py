"""configs/review-team.yaml, the team example: PostgreSQL, OIDC, a release manager with a token, an adjudicator."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from harness.app.config import load_pipeline_config
from harness.review.config import load_review_section

ROOT = Path(__file__).resolve().parents[2]
TEAM = ROOT / "configs" / "review-team.yaml"
APP = ROOT / "dashboard" / "app.py"


def test_the_team_config_loads_with_postgresql_and_oidc():
    run, review = load_review_section(TEAM)
    assert run == "team-review" and review.oidc and review.database.startswith("postgresql://")
    assert ":" not in review.database.split("://")[1].split("@")[0]  # no password in the file
    assert all(r.email for r in review.reviewers)
    assert [r.name for r in review.reviewers if r.role == "release_manager" and r.token_env] == ["rosa"]
    assert review.may_adjudicate("cai") and not review.may_adjudicate("ana")
    assert review.guidelines_document().sha256
    assert load_pipeline_config(TEAM).review == review  # the pipeline reads the same section


def test_an_oidc_identity_signs_in_as_the_reviewer_with_that_email(tmp_path, monkeypatch):
    """The app with the team config (its store moved to SQLite here): the identity provider's e-mail picks the
    reviewer and their pages; an identity that is no reviewer is refused."""
    monkeypatch.setenv("NIFT_REVIEW_CONFIG", str(TEAM))
    monkeypatch.setenv("NIFT_REVIEW_SET", json.dumps([f"review.database=sqlite:///{tmp_path / 'review.db'}"]))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.user = {"is_logged_in": True, "email": "rosa@example.org"}
    at.run()
    assert "Signed in: rosa (release manager)" in [t.value for t in at.sidebar.text]
    assert at.sidebar.radio(key="page").options == ["Queue", "Corrections", "Adjudication", "Agreement", "Export"]
    stranger = AppTest.from_file(str(APP), default_timeout=60)
    stranger.user = {"is_logged_in": True, "email": "mallory@example.org"}
    stranger.run()
    assert [e.value for e in stranger.error] == ["This login is not a configured reviewer."]
    assert "reviewer" not in stranger.session_state and not stranger.sidebar.text
