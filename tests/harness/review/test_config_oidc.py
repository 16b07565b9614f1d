"""With ``review.oidc`` the app signs an identity in as the first reviewer with its e-mail: a config in which some
reviewer could never sign in that way (no e-mail, another's e-mail) is refused when it loads, naming the field."""

from __future__ import annotations

import pytest
import yaml

from harness.core.errors import ConfigError
from harness.review.config import load_review_section


def _write(tmp_path, reviewers, oidc=True):
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"run": "r1", "review": {"oidc": oidc, "reviewers": reviewers,
                                                            "adjudicators": ["cy"]}}))
    return path


ANN, BOB = {"name": "ann", "email": "ann@example.org"}, {"name": "bob", "email": "bob@example.org"}


@pytest.mark.parametrize(("cy", "problem"), [
    ({"name": "cy"}, "review.reviewers.2.email: reviewer 'cy' has no e-mail; with review.oidc every reviewer "
                     "signs in by e-mail"),
    ({"name": "cy", "email": " "}, "review.reviewers.2.email: reviewer 'cy' has no e-mail"),
    ({"name": "cy", "email": "cy@example.org "}, "review.reviewers.2.email: 'cy@example.org ' has spaces around it"),
    ({"name": "cy", "email": "ann@example.org"}, "review.reviewers.2.email: reviewer 'cy' has the e-mail of 'ann' "
                                                 "('ann@example.org', ignoring case); with review.oidc that e-mail "
                                                 "always signs in as 'ann'"),
    ({"name": "cy", "email": "Ann@Example.ORG"}, "review.reviewers.2.email: reviewer 'cy' has the e-mail of 'ann'"),
    # the release manager and the adjudicator sign in through the same login
    ({"name": "cy", "role": "release_manager", "token": "t"}, "review.reviewers.2.email: reviewer 'cy' has no "
                                                               "e-mail"),
])
def test_a_reviewer_who_could_never_sign_in_is_refused(tmp_path, cy, problem):
    with pytest.raises(ConfigError) as raised:
        load_review_section(_write(tmp_path, [ANN, BOB, cy]))
    message = str(raised.value)
    assert f"pipeline.yaml: invalid config: review: Value error, {problem}" in message
    assert "\n" not in message


def test_without_oidc_e_mails_are_not_needed(tmp_path):
    _, config = load_review_section(_write(tmp_path, [ANN, {"name": "bob", "email": "ANN@example.org"},
                                                      {"name": "cy"}], oidc=False))
    assert [r.name for r in config.reviewers] == ["ann", "bob", "cy"]
    _, config = load_review_section(_write(tmp_path, [ANN, BOB, {"name": "cy", "email": "cy@example.org"}]))
    assert config.oidc and config.may_adjudicate("cy")


def test_turning_oidc_on_from_the_command_line_is_checked_too(tmp_path, capsys):
    from harness.app.cli import main

    path = _write(tmp_path, [ANN, {"name": "bob", "email": "ann@example.org"}, {"name": "cy"}], oidc=False)
    home = ["--config", str(path), "--home", str(tmp_path / "runs"), "--set", "review.oidc=true"]
    assert main(["review", "enqueue", *home]) == 2
    err = capsys.readouterr().err
    assert "review.reviewers.1.email: reviewer 'bob' has the e-mail of 'ann'" in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()  # nothing queued, no label store made
