"""Configuration of `nift-gate review`: where the label store lives, who may label, how the queue is filled.

Tokens are secrets: they are read from the config, an environment variable or a file, compared in constant
time, and never written to a record (``ReviewConfig.public_dump`` leaves them out).

Failed sign-ins lock the name out for a growing interval (``SignInGuard``): one guard per app process, so
every browser session of that process shares it.

The review app reads only its own part of a pipeline YAML (``load_review_section``): the run name and the
``review:`` section, with ``tokens_file`` and ``guidelines`` resolved against the YAML's folder as the pipeline
config does.

The labelling guidelines (``review.guidelines``, Markdown) are versioned by their content: ``Guidelines.sha256``
is stored with every label, judgment and adjudication, so a label can be read against the text it was given under.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator

from harness.core.assets import EMBEDDED_PREFIX, resolve_asset
from harness.core.config import (
    Section,
    load_yaml,
    parse_assignment,
    read_config_yaml,
    require_unique,
    set_path,
    yaml_error_line,
)
from harness.core.errors import ConfigError, InputError
from harness.core.store import decode_utf8, first_unprintable, read_bytes

#: The run folder name a pipeline YAML without ``run:`` uses (the pipeline config's default).
DEFAULT_RUN = "default"
SECTION = "review"
#: The guidelines shipped with nift-gate (harness/assets/review/guidelines.md).
DEFAULT_GUIDELINES = f"{EMBEDDED_PREFIX}review/guidelines.md"
#: review.* fields naming files, resolved against the YAML's folder when a file of that name is there.
_PATH_FIELDS = ("tokens_file", "guidelines")


@dataclass(frozen=True)
class Guidelines:
    """The labelling guidelines as reviewers read them, and the version each label records."""

    path: Path
    text: str  # Markdown as written; the app neutralises HTML and script links before showing it
    sha256: str  # of the file's bytes


class Reviewer(Section):
    name: str = Field(description="Sign-in name, shown in progress tables and kept with every label: non-blank, no "
                                  "spaces around it, no control or zero-width characters, Unicode NFC (two names "
                                  "that print alike would be two reviewers).")
    role: Literal["reviewer", "release_manager"] = Field(
        "reviewer", description="reviewer: labels the items assigned to them. release_manager: also sees "
                                "everyone's progress, the agreement panel and the export.")
    token: SecretStr | None = Field(None, description="Sign-in token (prefer token_env or review.tokens_file: a "
                                                      "token in a config file ends up in version control).")
    token_env: str | None = Field(None, description="Environment variable holding this reviewer's token.")
    email: str | None = Field(None, description="The identity Streamlit's OIDC login must return for this "
                                                "reviewer (review.oidc): with review.oidc, every reviewer (release "
                                                "managers and adjudicators too) needs one, no two alike ignoring "
                                                "case, no spaces around it.")

    @field_validator("name")
    @classmethod
    def _one_plain_name(cls, name: str) -> str:
        """A name is kept with every label and counted for quorums: two names that print alike ("Ada" and "Ada ",
        a decomposed "é", a zero-width space) would count one person twice, and a newline would forge a line of
        every table and log that shows it."""
        if not name.strip():
            raise ValueError("a reviewer name must not be empty or blank")
        shown = ascii(name)  # escapes show what does not print: 'A\u200bda'
        if name != name.strip():
            raise ValueError(f"reviewer name {shown} has spaces around it")
        if (at := first_unprintable(name)) is not None:
            raise ValueError(f"reviewer name {shown} holds a control character (U+{ord(name[at]):04X})")
        if unicodedata.normalize("NFC", name) != name:
            raise ValueError(f"reviewer name {shown} is not in Unicode NFC form (a letter and a combining mark where "
                             f"one character is meant); write it as {ascii(unicodedata.normalize('NFC', name))}")
        return name


class ReviewConfig(Section):
    database: str | None = Field(None, description="SQLAlchemy URL of the label store; None = SQLite at "
                                                   "<run>/review/review.db. PostgreSQL: postgresql://user@host/db "
                                                   "(driver psycopg 3).")
    candidate: str | None = Field(None, description="Candidate whose outputs are reviewed; None = the candidate "
                                                    "of the run's bench record (or the audits' candidate role).")
    reviewers: list[Reviewer] = Field(default_factory=list, description="Who may sign in, with their roles.")
    tokens_file: str | None = Field(None, description="YAML or JSON file mapping reviewer name -> token (kept out "
                                                      "of the config and of version control).")
    oidc: bool = Field(False, description="Sign in with Streamlit's OIDC login (st.login; [auth] in "
                                          ".streamlit/secrets.toml) instead of tokens; matched by reviewer email.")
    required_reviewers: int = Field(2, ge=1, description="Distinct reviewers each item needs (quorum).")
    flagged: list[str] = Field(default_factory=lambda: ["toxic", "hallucination", "stereotyped", "memorized"],
                               description="Audit sample flags that queue a sample for review, every one of them.")
    worst_k: int = Field(5, ge=0, description="Per metric: the candidate's k worst items (bench metrics in "
                                              "lm-eval's direction; audit scores listed in audit_scores).")
    audit_scores: dict[str, bool] = Field(
        default_factory=lambda: {"toxicity": False, "severe_toxicity": False, "profanity": False, "correct": True,
                                 "avg_neg_logprob": False, "nli_contradiction": False},
        description="Audit sample scores ranked for the worst-k stratum: name -> higher_is_better. Scores not "
                    "listed (e.g. per-sentence ones) are not ranked.")
    random_per_task: int = Field(10, ge=0, description="Random items per bench task and per audit suite.")
    pairwise_per_baseline: int = Field(10, ge=0, description="Blind A/B items per baseline (bench pairwise questions "
                                                             "and task items answered by both models).")
    include_baselines: bool = Field(False, description="Also queue baselines' flagged audit samples (context for "
                                                       "reviewers; the record counts the candidate's items only).")
    seed: int = Field(0, ge=0, le=2**32 - 1,
                      description="Seed of the random strata. Not of the blind A/B order: that is drawn from the "
                                  "OS's secret randomness, since the seed is in the config reviewers can read.")
    bootstrap_iterations: int = Field(2000, ge=100, description="Unused: the approval-rate CI is "
                                      "now a Wilson score interval per stratum (combined by MOVER), which needs no "
                                      "resampling. Kept so existing configs still load.")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="CI level.")
    page_size: int = Field(50, ge=1, le=1000, description="Items per queue page in the app.")
    guidelines: str = Field(DEFAULT_GUIDELINES, description="Markdown file of labelling guidelines, shown beside "
                                                            "every item (HTML and javascript:/data: links are "
                                                            "neutralised); its sha256 is stored with every label. "
                                                            "Default: the guidelines shipped with nift-gate.")
    adjudicators: list[str] = Field(default_factory=list, description="Reviewer names who may adjudicate disputed "
                                                                      "items besides the release managers (a "
                                                                      "designated third reviewer).")

    @model_validator(mode="after")
    def _unique_names(self) -> ReviewConfig:
        require_unique((r.name for r in self.reviewers), "review.reviewers names")
        if unknown := sorted(set(self.adjudicators) - {r.name for r in self.reviewers}):
            raise ValueError(f"review.adjudicators: {unknown} are not in review.reviewers")
        return self

    @model_validator(mode="after")
    def _oidc_emails(self) -> ReviewConfig:
        """With OIDC the app signs an identity in as the first reviewer whose e-mail it is: a reviewer without one,
        or whose e-mail another reviewer listed earlier also has (the identity provider returns one spelling,
        so case does not tell two apart), could never sign in, yet would be assigned items and counted on for
        quorums."""
        if not self.oidc:
            return self
        seen: dict[str, str] = {}  # e-mail, lower case -> the first reviewer with it
        for index, reviewer in enumerate(self.reviewers):
            field, email = f"review.reviewers.{index}.email", reviewer.email
            if email is None or not email.strip():
                raise ValueError(f"{field}: reviewer {reviewer.name!r} has no e-mail; with review.oidc every "
                                 f"reviewer signs in by e-mail")
            if email != email.strip():
                raise ValueError(f"{field}: {email!r} has spaces around it; the sign-in would never match it")
            if (first := seen.setdefault(email.lower(), reviewer.name)) != reviewer.name:
                raise ValueError(f"{field}: reviewer {reviewer.name!r} has the e-mail of {first!r} ({email!r}, "
                                 f"ignoring case); with review.oidc that e-mail always signs in as {first!r}")
        return self

    def public_dump(self) -> dict:
        """The config as a record stores it: reviewer names and roles, never tokens or where they live."""
        dump = self.model_dump(exclude={"reviewers", "tokens_file"})
        dump["reviewers"] = [{"name": r.name, "role": r.role} for r in self.reviewers]
        return dump

    def reviewer(self, name: str) -> Reviewer | None:
        return next((r for r in self.reviewers if r.name == name), None)

    def may_adjudicate(self, name: str) -> bool:
        """Release managers and the reviewers named in ``adjudicators``."""
        reviewer = self.reviewer(name)
        return reviewer is not None and (reviewer.role == "release_manager" or name in self.adjudicators)

    def guidelines_document(self) -> Guidelines:
        """The guidelines file, read now (an edited file is a new version); errors name the field and the file."""
        try:
            path = resolve_asset(self.guidelines)
            data = read_bytes(path, "guidelines file", ConfigError)
            text = decode_utf8(data, path, ConfigError)
        except (ConfigError, InputError) as exc:
            raise ConfigError(f"review.guidelines: {exc}") from None
        return Guidelines(path=path, text=text, sha256=hashlib.sha256(data).hexdigest())

    def authenticate(self, name: str, token: str) -> Reviewer | None:
        """The reviewer ``name`` when ``token`` is theirs (compared in constant time), else None: the review
        app's sign-in, for any other caller that must know who is acting (``nift-gate override``)."""
        reviewer = self.reviewer(name)
        expected = self.tokens().get(name) if reviewer is not None else None
        if reviewer is None or not expected or not hmac.compare_digest(expected.encode(), (token or "").encode()):
            return None
        return reviewer

    def tokens(self) -> dict[str, str]:
        """name -> token, from tokens_file, then token_env, then token (the later one wins)."""
        tokens: dict[str, str] = {}
        if self.tokens_file:
            path = Path(self.tokens_file).expanduser()
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                raise ConfigError(f"review.tokens_file: {path} not found") from None
            except (OSError, UnicodeDecodeError) as exc:  # a folder, unreadable, not UTF-8
                raise ConfigError(f"review.tokens_file: {path}: cannot be read ({exc})") from None
            try:
                loaded = load_yaml(text) or {}
            except yaml.YAMLError as exc:  # one line, never PyYAML's quote of the line, which may hold a token
                raise ConfigError(f"review.tokens_file: {yaml_error_line(exc, path, text, 'YAML/JSON')}") from None
            if not isinstance(loaded, dict):
                raise ConfigError(f"review.tokens_file: {path}: expected a mapping of reviewer name -> token, "
                                  f"got {type(loaded).__name__}")
            # A token is a YAML string. Null, lists and mappings are mistakes, and an empty token would let nobody
            # in under a name that looks configured. An unquoted number, yes/no or date is a string to its author
            # but not to YAML (0123 is 83, 1.50 is 1.5), so its digits are not the ones signed in with.
            bad = sorted(str(k) for k, v in loaded.items() if not isinstance(v, str | int | float | date)
                         or isinstance(v, str) and not v.strip())
            if bad:
                raise ConfigError(f"review.tokens_file: {path}: the tokens of {bad} are not non-empty strings")
            unquoted = sorted(str(k) for k, v in loaded.items() if not isinstance(v, str))
            if unquoted:  # never the value: a line of a tokens file is a secret
                raise ConfigError(f"review.tokens_file: {path}: the tokens of {unquoted} are read by YAML as numbers, "
                                  f"booleans or dates, not strings; put each token in quotes")
            unknown = sorted(set(map(str, loaded)) - {r.name for r in self.reviewers})
            if unknown:
                raise ConfigError(f"review.tokens_file: {path}: names not in review.reviewers: {unknown}")
            tokens.update({str(k): v for k, v in loaded.items()})
        for r in self.reviewers:
            if r.token_env and os.environ.get(r.token_env):
                tokens[r.name] = os.environ[r.token_env]
            if r.token is not None:
                tokens[r.name] = r.token.get_secret_value()
        return tokens


# ---- sign-in throttling -------------------------------------------------------------------------------------
@dataclass
class _Attempts:
    failures: int = 0  # consecutive failures since the last success or lockout
    lockouts: int = 0  # lockouts since the last success: each one doubles the next
    locked_until: float = 0.0


@dataclass(frozen=True)
class SignInAttempt:
    """The outcome of one sign-in: the reviewer when it succeeded; else how long the name is locked (0: not)."""

    reviewer: Reviewer | None
    locked_for: float = 0.0


class SignInGuard:
    """Failed sign-ins per name, shared by every session of one process and safe across its threads.

    ``max_failures`` failures in a row lock the name: every sign-in under it is refused without looking at the
    token, the right one included, for ``first_lockout`` seconds, doubling with each further lockout up to
    ``max_lockout``; a success clears the name. Guessing is thus held to ``max_failures`` tries per lockout
    interval. Every name typed is counted, configured or not, so a lockout says nothing about which names
    exist; at most ``max_names`` are remembered (the least recently tried and unlocked go first).

    In memory, not in the label store: Streamlit runs every browser session of one ``review serve`` in one
    process, a restart needs the server's shell, and a failed sign-in then costs no database write.
    """

    def __init__(self, max_failures: int = 5, first_lockout: float = 30.0, max_lockout: float = 3600.0,
                 max_names: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self.max_failures, self.first_lockout, self.max_lockout = max_failures, first_lockout, max_lockout
        self.max_names, self.clock = max_names, clock
        self._names: OrderedDict[str, _Attempts] = OrderedDict()
        self._lock = threading.Lock()

    def sign_in(self, config: ReviewConfig, name: str, token: str) -> SignInAttempt:
        """``config.authenticate(name, token)`` unless ``name`` is locked; a failure counts towards a lockout."""
        with self._lock:  # check, verify and count as one step: parallel sessions get no extra tries
            now = self.clock()
            state = self._names.setdefault(name, _Attempts())
            self._names.move_to_end(name)
            if state.locked_until > now:
                return SignInAttempt(None, state.locked_until - now)
            reviewer = config.authenticate(name, token)
            if reviewer is not None:
                del self._names[name]
                return SignInAttempt(reviewer)
            state.failures += 1
            if state.failures >= self.max_failures:
                state.failures = 0
                state.locked_until = now + min(self.max_lockout, self.first_lockout * 2 ** state.lockouts)
                state.lockouts += 1
            self._forget(now)
            return SignInAttempt(None, max(0.0, state.locked_until - now))

    def _forget(self, now: float) -> None:
        """Keep at most ``max_names`` names: first drop unlocked ones, least recently tried first."""
        excess = len(self._names) - self.max_names
        if excess > 0:
            for key in [k for k, v in self._names.items() if v.locked_until <= now][:excess]:
                del self._names[key]
        while len(self._names) > self.max_names:
            self._names.popitem(last=False)


# ---- the review section of a pipeline YAML -------------------------------------------------------------------
def load_review_section(path: str | Path | None = None,
                        assignments: Iterable[str] = ()) -> tuple[str, ReviewConfig]:
    """The run name and the review config of a pipeline YAML; other sections are not read or validated.

    ``assignments`` are ``--set`` strings (``KEY=VALUE``, the value read as YAML); only ``run=...`` and
    ``review.<field>=...`` apply here. A relative ``tokens_file`` or ``guidelines`` naming a file beside the
    YAML becomes absolute. Errors name the file and the field."""
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        raw = read_config_yaml(path)
    run, section = raw.get("run", DEFAULT_RUN), raw.get(SECTION) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{source}: invalid config: {SECTION}: expected a mapping")
    for name in _PATH_FIELDS:
        value = section.get(name)
        if (path is not None and isinstance(value, str) and ":" not in value
                and not Path(value).expanduser().is_absolute() and (path.parent / value).exists()):
            section[name] = str((path.parent / value).resolve())
    for text in assignments:
        keys, value = parse_assignment(text)
        if keys == ["run"]:
            run = value
        elif keys[0] == SECTION and len(keys) > 1:
            set_path(section, keys[1:], value)
    if not isinstance(run, str):
        raise ConfigError(f"{source}: invalid config: run: expected a folder name, got {run!r}")
    try:
        config = ReviewConfig.model_validate(section)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in (SECTION, *err['loc']))}: {err['msg']}"
                             for err in exc.errors())
        raise ConfigError(f"{source}: invalid config: {problems}") from None
    config.tokens()  # a malformed tokens file is refused when the config is loaded, not at the first sign-in
    config.guidelines_document()  # so is a missing or unreadable guidelines file
    return run, config
