"""Statistics of pairwise preferences: AlpacaEval's win rate and its length-controlled variant, and Arena
(Bradley-Terry) ratings across models.

- :func:`win_rate`: the mean preference of a model's answers over a reference's, per instruction a number in
  [0, 1] (1: the model's answer preferred, 0.5: a tie). AlpacaEval 2 reports it in percent; here, as everywhere
  in nift-gate, it is a fraction.
- :func:`length_controlled_win_rate`: AlpacaEval 2's length-controlled win rate (Dubois, Galambosi, Liang and
  Hashimoto, "Length-Controlled AlpacaEval: A Simple Way to Debias Automatic Evaluators", 2024). A judge that
  likes long answers inflates the raw win rate of a verbose model; a logistic GLM of the preference on the model's
  identity, the standardized length difference and the instruction's difficulty separates the length effect, and
  the win rate predicted with the length term at zero is what the judge would say of answers of equal length.
- :func:`bradley_terry`: Chatbot Arena / Arena-Hard ratings from (model_a, model_b, winner) verdicts: a
  Bradley-Terry model fitted by logistic regression, on the Elo scale, with percentile-bootstrap CIs over battles.

Every fit is scikit-learn's ``LogisticRegression`` (L2, lbfgs). Soft labels (a preference of 0.7, a tie) enter
as two weighted rows, one labelled a win with weight p and one a loss with weight 1 - p, which is the
likelihood of a Bernoulli with probability p; Arena-Hard's "a tie is half a win for each side" is the case
p = 0.5.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from harness.core.errors import InputError
from harness.core.stats import BOOTSTRAP_PERCENTILE, MIN_BOOTSTRAP_ITEMS, mean_interval

#: Elo scale of arena ratings: a gap of ``ELO_SCALE`` points means odds of ``ELO_BASE`` to 1.
ELO_BASE = 10.0
ELO_SCALE = 400.0
ELO_INITIAL = 1000.0

#: What a winner field means as a preference for model_a (Arena-Hard counts a tie as half a win each).
WINNER_PREFERENCE = {"a": 1.0, "b": 0.0, "tie": 0.5}


class WinRate(BaseModel):
    """A model's win rate against a reference over instructions, as AlpacaEval reports it."""

    model: str | None = Field(None, description="The model judged (None when the caller did not name it).")
    reference: str | None = Field(None, description="The model whose answers it was compared with.")
    n: int = Field(ge=1, description="Instructions with a preference.")
    win_rate: float = Field(ge=0, le=1, description="Mean preference: (wins + ties/2) / n for discrete verdicts. "
                                                    "A fraction in [0, 1], not AlpacaEval's percent.")
    ci_low: float | None = Field(description="Lower CI bound of win_rate (None when non-binary preferences "
                                             "give no bootstrap interval: fewer than 10, or all alike).")
    ci_high: float | None
    confidence: float
    interval: str | None = Field(description="How the CI was made: 'wilson'/'clopper-pearson' when every "
                                             "preference is 0 or 1 (a proportion), 'bootstrap-bca' over "
                                             "instructions otherwise (ties or soft preferences); None without one "
                                             "(fewer than 10 such instructions, or preferences that do not "
                                             "vary).")
    method: Literal["mean-preference"] = Field("mean-preference", description="The estimator: the plain mean "
                                                                               "of the per-instruction preferences.")
    wins: int = Field(description="Instructions with preference > 0.5.")
    ties: int = Field(description="Instructions with preference == 0.5.")
    losses: int = Field(description="Instructions with preference < 0.5.")


class LengthControlledWinRate(BaseModel):
    """AlpacaEval 2's length-controlled win rate of one model against a reference."""

    model: str
    reference: str | None = Field(None, description="The reference model (every judgement's reference).")
    n: int = Field(ge=1, description="Instructions the model was judged on.")
    win_rate: float = Field(ge=0, le=1, description="The raw win rate (mean preference), for comparison.")
    length_controlled_win_rate: float = Field(
        ge=0, le=1, description="mean over instructions of logistic(theta + psi * difficulty): the GLM's "
                                "predicted win rate with the length term set to zero. A fraction in [0, 1]; "
                                "AlpacaEval's leaderboard shows 100 times this.")
    ci_low: float | None = Field(description="Percentile-bootstrap CI of length_controlled_win_rate, resampling "
                                             "instructions and refitting the GLM (None with one instruction).")
    ci_high: float | None
    confidence: float
    interval: str | None = Field(description="'bootstrap-percentile', or None without an interval.")
    iterations: int = Field(description="Bootstrap resamples (0: no interval was asked for or possible).")
    method: Literal["alpacaeval-lc-glm"] = Field("alpacaeval-lc-glm", description="Dubois et al. (2024), eq. 1-2.")
    scale: Literal["fraction"] = Field("fraction", description="Win rates are in [0, 1], not percent.")
    model_coefficient: float = Field(description="theta: the model-vs-reference identity term (log-odds).")
    length_coefficient: float = Field(description="phi: the weight of tanh(length difference / its std); > 0 "
                                                  "when the judge preferred the longer answer.")
    difficulty_coefficient: float | None = Field(description="psi: the weight of the instruction difficulty; None "
                                                             "when difficulty was omitted.")
    difficulty: str = Field(description="How instruction difficulty entered: 'per-instruction, estimated across K "
                                        "models' or 'omitted: one model' (the GLM then has the identity and "
                                        "length terms only).")
    length_difference_std: float = Field(description="std of (model length - reference length) over the model's "
                                                     "instructions, the unit of the length term (0: no length term).")
    mean_length_difference: float = Field(description="Mean of model length - reference length, in the unit "
                                                      "the lengths were given in (AlpacaEval: characters).")
    inverse_regularization: float = Field(description="scikit-learn's C of the L2 penalty on the length and "
                                                      "difficulty weights (the identity term is not penalised).")


class PreferenceJudgement(BaseModel):
    """A judge's preference between one model's answer and the reference's on one instruction."""

    instruction: str = Field(description="The instruction's id; the same id across models means the same "
                                         "instruction (it carries the difficulty term).")
    model: str = Field(description="The model whose answer was judged against the reference's.")
    reference: str | None = Field(None, description="The reference model; the same for every judgement of a fit.")
    preference: float = Field(description="1: the model's answer preferred, 0: the reference's, 0.5: a tie; a "
                                          "judge's probability in between.")
    model_length: float = Field(ge=0, description="Length of the model's answer (AlpacaEval: characters).")
    reference_length: float = Field(ge=0, description="Length of the reference's answer, in the same unit.")


class Battle(BaseModel):
    """One pairwise verdict between two models' answers to the same question."""

    model_a: str
    model_b: str
    winner: Literal["a", "b", "tie"] = Field(description="Whose answer the judge preferred; 'tie' counts as half "
                                                         "a win for each.")
    question: str | None = Field(None, description="The question both answered: the unit resampled when ratings "
                                                   "are bootstrapped by question.")


class ArenaRating(BaseModel):
    """One model's Bradley-Terry rating on the Elo scale."""

    model: str
    rating: float = Field(description="Elo-scale rating: base 10, scale 400; the anchor (or the mean) at 1000.")
    ci_low: float | None = Field(description="Percentile-bootstrap CI of the rating over battles (None when no "
                                             "resample could rate the model).")
    ci_high: float | None
    win_rate_vs_anchor: float = Field(description="Predicted probability of beating the anchor (or a model rated "
                                                  "1000 when ratings are centred on the mean): "
                                                  "1 / (1 + 10 ** ((1000 - rating) / 400)).")
    win_rate_ci_low: float | None = Field(description="win_rate_vs_anchor at ci_low (the map is monotone).")
    win_rate_ci_high: float | None
    battles: int = Field(description="Battles the model took part in.")
    wins: int
    ties: int
    losses: int


class RatingDifference(BaseModel):
    """The rating gap between two models, with a CI from the same resamples as the ratings'."""

    model: str
    opponent: str
    difference: float = Field(description="rating(model) - rating(opponent), Elo points (anchor-free).")
    ci_low: float | None = Field(description="Percentile of the gap over the resamples that rated both.")
    ci_high: float | None
    questions: int = Field(description="Questions (or battles, when resampled by battle) on which the two met.")


class ArenaRatings(BaseModel):
    """Bradley-Terry ratings of every model in a set of battles, best first."""

    ratings: list[ArenaRating]
    anchor: str | None = Field(description="The model fixed at 1000; None: the ratings' mean is 1000.")
    n: int = Field(description="Battles fitted.")
    confidence: float
    interval: str = Field(BOOTSTRAP_PERCENTILE, description="How the CIs were made: resampling (battles or "
                                                            "questions, see resampled) with replacement and "
                                                            "refitting.")
    resampled: Literal["battles", "questions"] = Field(
        "battles", description="The bootstrap's unit: single battles, or questions with all their battles (the "
                               "verdicts on one question are not independent: one hard question is hard for all).")
    questions: int | None = Field(None, description="Distinct questions, when resampled by question.")
    differences: list[RatingDifference] = Field(default_factory=list, description="rating(versus) - rating(m) for "
                                                                                  "every other model m.")
    iterations: int = Field(description="Bootstrap resamples asked for (0: no CIs).")
    resamples_used: int = Field(description="Resamples that contained the anchor (the others cannot be anchored "
                                            "and are left out); a model missing from a resample is left out of "
                                            "that resample only.")
    method: Literal["bradley-terry-logistic"] = Field("bradley-terry-logistic", description="Logistic regression on "
                                                      "+-ln(10) model indicators, ties as half a win each "
                                                      "(Arena-Hard), rating = 400 * coefficient.")
    base: float = ELO_BASE
    scale: float = ELO_SCALE
    inverse_regularization: float | None = Field(description="scikit-learn's C of the L2 penalty on the "
                                                             "coefficients: it keeps a model that won (or lost) "
                                                             "every battle finite; None: unpenalised, as "
                                                             "Arena-Hard fits.")


def _fit(features: np.ndarray | sparse.csr_matrix, preference: np.ndarray, weight: np.ndarray, *,
         inverse_regularization: float | None, fit_intercept: bool) -> LogisticRegression:
    """Logistic regression on soft labels: each row twice, a win with weight w*p and a loss with weight w*(1-p)."""
    rows = len(preference)
    # Newton steps with a Cholesky solve: exact and fast for the few dense columns of most fits; lbfgs for the
    # sparse one-column-per-instruction difficulty fit, and without a penalty, where the Bradley-Terry Hessian
    # is singular (ratings are shift-invariant)
    dense = not sparse.issparse(features)
    model = LogisticRegression(C=np.inf if inverse_regularization is None else inverse_regularization,
                               fit_intercept=fit_intercept, max_iter=1000 if not dense else 200, tol=1e-8,
                               solver="newton-cholesky" if dense and inverse_regularization is not None else "lbfgs")
    with warnings.catch_warnings():
        # a model that won everything drives the identity term to infinity; the solver stops at a large finite
        # value, which predicts a win rate of 1 to many digits, and that is the right answer
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(np.vstack([features, features]) if dense else sparse.vstack([features, features]).tocsr(),
                  np.r_[np.ones(rows), np.zeros(rows)],
                  sample_weight=np.r_[weight * preference, weight * (1.0 - preference)])
    return model


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    low, high = np.nanpercentile(values, [50 * (1 - confidence), 50 * (1 + confidence)])
    return float(low), float(high)


def _checked_preference(value: float, where: str) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise InputError(f"{where}: preference must be in [0, 1] (1: the model preferred, 0.5: a tie), got {value!r}")
    return value


def win_rate(preferences: Mapping[str, float] | Sequence[float], *, model: str | None = None,
             reference: str | None = None, confidence: float = 0.95, iterations: int = 2000, seed: int = 0,
             proportion_method: str = "wilson") -> WinRate:
    """AlpacaEval's win rate: the mean per-instruction preference of ``model``'s answers over ``reference``'s.

    ``preferences`` maps instruction ids to a preference in [0, 1] (or is a list of them). When every
    preference is 0 or 1 the CI is a proportion interval (``proportion_method``: 'wilson' or
    'clopper-pearson'), which does not collapse at 0 or n wins; with ties or soft preferences it is the
    BCa bootstrap over instructions, and there is none (None, None) below 10 instructions or when the
    preferences do not vary. Raises InputError for no preferences or one outside [0, 1].
    """
    keyed = preferences.items() if isinstance(preferences, Mapping) else enumerate(preferences)
    values = [_checked_preference(v, f"instruction {k!r}" if isinstance(preferences, Mapping) else f"preference {k}")
              for k, v in keyed]
    if not values:
        raise InputError("win rate: no preferences (every instruction was unparseable or none were judged)")
    interval = mean_interval(values, iterations=iterations, confidence=confidence, seed=seed,
                             proportion_method=proportion_method)
    data = np.asarray(values)
    return WinRate(model=model, reference=reference, n=len(values), win_rate=float(data.mean()),
                   ci_low=interval.low, ci_high=interval.high, confidence=confidence, interval=interval.method,
                   wins=int((data > 0.5).sum()), ties=int((data == 0.5).sum()), losses=int((data < 0.5).sum()))


def _length_term(rows: list[PreferenceJudgement]) -> tuple[np.ndarray, float]:
    """tanh((len_model - len_ref) / std(len_model - len_ref)) per row, and that std (0: a zero term)."""
    difference = np.array([r.model_length - r.reference_length for r in rows], dtype=float)
    spread = float(difference.std())
    return (np.tanh(difference / spread) if spread > 0 else np.zeros_like(difference)), spread


def _instruction_difficulty(judgements: list[PreferenceJudgement], inverse_regularization: float
                            ) -> dict[str, float]:
    """Per-instruction difficulty shared by all models: gamma_x of a joint GLM
    logit = theta_m + phi_m * length_m + gamma_x over every (model, instruction), with L2 shrinking the
    instruction terms of instructions few models answered towards 0."""
    models = sorted({j.model for j in judgements})
    instructions = sorted({j.instruction for j in judgements})
    model_index = {m: i for i, m in enumerate(models)}
    instruction_index = {x: i for i, x in enumerate(instructions)}
    features = sparse.lil_matrix((len(judgements), 2 * len(models) + len(instructions)))
    for m in models:  # each model's length term in its own units, as the per-model fit uses it
        positions = [i for i, j in enumerate(judgements) if j.model == m]
        term, _ = _length_term([judgements[i] for i in positions])
        for i, value in zip(positions, term):
            features[i, len(models) + model_index[m]] = value
    for i, j in enumerate(judgements):
        features[i, model_index[j.model]] = 1.0
        features[i, 2 * len(models) + instruction_index[j.instruction]] = 1.0
    preference = np.array([j.preference for j in judgements])
    fit = _fit(features.tocsr(), preference, np.ones(len(judgements)),
               inverse_regularization=inverse_regularization, fit_intercept=False)
    gamma = fit.coef_[0, 2 * len(models):]
    gamma = gamma - gamma.mean()  # only differences between instructions are identified
    return {x: float(gamma[instruction_index[x]]) for x in instructions}


def length_controlled_win_rate(judgements: Sequence[PreferenceJudgement], model: str, *, confidence: float = 0.95,
                               iterations: int = 1000, seed: int = 0, inverse_regularization: float = 1.0
                               ) -> LengthControlledWinRate:
    """AlpacaEval 2's length-controlled win rate of ``model`` against the reference (Dubois et al. 2024).

    The GLM (their eq. 1), fitted to ``model``'s judgements::

        P(model preferred on x) = logistic(theta + phi * tanh(dlen_x / std(dlen)) + psi * gamma_x)

    with dlen_x = len(model's answer) - len(reference's answer). gamma_x, the instruction's difficulty, is
    estimated across models when ``judgements`` holds several models against the same reference (a joint fit
    of every model's identity and length terms and one term per instruction); with one model it is omitted, and
    the result says so. The length-controlled win rate (their eq. 2) is the mean over instructions of
    logistic(theta + psi * gamma_x): the length term set to zero. The identity term is unpenalised; phi and psi
    take scikit-learn's L2 penalty with ``inverse_regularization`` as C. Its CI resamples ``model``'s
    instructions with replacement and refits (the difficulties and the length unit stay those of the full data);
    there is none below :data:`~harness.core.stats.MIN_BOOTSTRAP_ITEMS` instructions.

    Raises InputError when ``model`` has no judgements, an instruction is judged twice for one model, the
    judgements name more than one reference, or a preference lies outside [0, 1].
    """
    rows, references = _checked_judgements(judgements)
    own = [j for j in rows if j.model == model]
    if not own:
        raise InputError(f"length-controlled win rate: no judgements of model {model!r}")
    models = {j.model for j in rows}
    difficulty_of = _instruction_difficulty(rows, inverse_regularization) if len(models) > 1 else None
    how = f"per-instruction, estimated across {len(models)} models" if difficulty_of else "omitted: one model"
    glm = _LengthControlledGlm(own, difficulty_of, inverse_regularization)
    n = len(own)
    estimate, fit = glm.estimate(np.ones(n))
    low = high = None
    if n >= MIN_BOOTSTRAP_ITEMS and iterations > 0:  # no interval from fewer, as for every bootstrap
        rng = np.random.default_rng(seed)
        # resampling instructions with replacement = refitting with multinomial counts as row weights
        replicates = np.array([glm.estimate(rng.multinomial(n, np.full(n, 1.0 / n)).astype(float))[0]
                               for _ in range(iterations)])
        low, high = _percentiles(replicates, confidence)
    differences = np.array([j.model_length - j.reference_length for j in own])
    return LengthControlledWinRate(
        model=model, reference=next(iter(references), None), n=n, win_rate=float(glm.preference.mean()),
        length_controlled_win_rate=estimate, ci_low=low, ci_high=high, confidence=confidence,
        interval=None if low is None else BOOTSTRAP_PERCENTILE, iterations=iterations if low is not None else 0,
        model_coefficient=float(fit.intercept_[0]), length_coefficient=float(fit.coef_[0, 0]),
        difficulty_coefficient=None if difficulty_of is None else float(fit.coef_[0, 1]), difficulty=how,
        length_difference_std=glm.spread, mean_length_difference=float(differences.mean()),
        inverse_regularization=inverse_regularization)


def _checked_judgements(judgements: Sequence[PreferenceJudgement]) -> tuple[list[PreferenceJudgement], set[str]]:
    """The judgements, refused when they name several references, judge a model twice on one instruction or hold
    a preference outside [0, 1]; and the reference named."""
    rows = list(judgements)
    references = {j.reference for j in rows if j.reference is not None}
    if len(references) > 1:
        raise InputError(f"length-controlled win rate: judgements against several references "
                         f"({', '.join(sorted(references))}); fit one reference at a time")
    seen: set[tuple[str, str]] = set()
    for j in rows:
        _checked_preference(j.preference, f"model {j.model!r}, instruction {j.instruction!r}")
        if (j.model, j.instruction) in seen:
            raise InputError(f"length-controlled win rate: model {j.model!r} is judged twice on instruction "
                             f"{j.instruction!r}")
        seen.add((j.model, j.instruction))
    return rows, references


class _LengthControlledGlm:
    """One model's GLM against the reference (eq. 1), refitted under any instruction weights (eq. 2 for each)."""

    def __init__(self, own: list[PreferenceJudgement], difficulty_of: dict[str, float] | None,
                 inverse_regularization: float):
        self.difficulty = None if difficulty_of is None else np.array([difficulty_of[j.instruction] for j in own])
        length, self.spread = _length_term(own)
        self.features = np.column_stack([length] if self.difficulty is None else [length, self.difficulty])
        self.preference = np.array([j.preference for j in own])
        self.inverse_regularization = inverse_regularization

    def estimate(self, counts: np.ndarray) -> tuple[float, LogisticRegression]:
        """The length-controlled win rate with instruction i counted counts[i] times, and the fit."""
        fit = _fit(self.features, self.preference, counts, inverse_regularization=self.inverse_regularization,
                   fit_intercept=True)
        logit = fit.intercept_[0] + (0.0 if self.difficulty is None else fit.coef_[0, 1] * self.difficulty)
        predicted = 1.0 / (1.0 + np.exp(-logit)) * np.ones(len(self.preference))
        return float(np.average(predicted, weights=counts)), fit


class LengthControlledDifference(BaseModel):
    """Two models' length-controlled win rates against one reference, compared on the instructions both have."""

    model: str
    baseline: str
    reference: str | None = None
    n: int = Field(ge=1, description="Instructions judged for both models (the paired unit resampled).")
    model_lc_win_rate: float = Field(description="The model's length-controlled win rate on those instructions.")
    baseline_lc_win_rate: float
    difference: float = Field(description="model - baseline, a difference of fractions.")
    ci_low: float | None = Field(description="Paired percentile bootstrap: the same instructions resampled for "
                                             "both models, both GLMs refitted (None with one instruction).")
    ci_high: float | None
    confidence: float
    interval: str | None = Field(description="'bootstrap-percentile', or None without an interval.")
    iterations: int


def length_controlled_difference(judgements: Sequence[PreferenceJudgement], model: str, baseline: str, *,
                                 confidence: float = 0.95, iterations: int = 1000, seed: int = 0,
                                 inverse_regularization: float = 1.0) -> LengthControlledDifference:
    """``model``'s length-controlled win rate minus ``baseline``'s, both against the same reference, over the
    instructions both were judged on: each model's GLM as in :func:`length_controlled_win_rate` (difficulty
    estimated across every model of ``judgements``), its CI from resampling those instructions for both at once
    (none below :data:`~harness.core.stats.MIN_BOOTSTRAP_ITEMS` shared instructions).
    Raises InputError for the inputs :func:`length_controlled_win_rate` refuses, or no shared instruction."""
    rows, references = _checked_judgements(judgements)
    mine = {j.instruction: j for j in rows if j.model == model}
    theirs = {j.instruction: j for j in rows if j.model == baseline}
    shared = sorted(set(mine) & set(theirs))
    if not shared:
        raise InputError(f"length-controlled difference: {model!r} and {baseline!r} share no judged instruction")
    difficulty_of = _instruction_difficulty(rows, inverse_regularization)
    glms = [_LengthControlledGlm([side[x] for x in shared], difficulty_of, inverse_regularization)
            for side in (mine, theirs)]

    def gap(counts: np.ndarray) -> tuple[float, float]:
        return glms[0].estimate(counts)[0], glms[1].estimate(counts)[0]

    n = len(shared)
    ours, other = gap(np.ones(n))
    low = high = None
    if n >= MIN_BOOTSTRAP_ITEMS and iterations > 0:  # no interval from fewer, as for every bootstrap
        rng = np.random.default_rng(seed)
        replicates = np.array([np.subtract(*gap(rng.multinomial(n, np.full(n, 1.0 / n)).astype(float)))
                               for _ in range(iterations)])
        low, high = _percentiles(replicates, confidence)
    return LengthControlledDifference(
        model=model, baseline=baseline, reference=next(iter(references), None), n=n, model_lc_win_rate=ours,
        baseline_lc_win_rate=other, difference=ours - other, ci_low=low, ci_high=high, confidence=confidence,
        interval=None if low is None else BOOTSTRAP_PERCENTILE, iterations=iterations if low is not None else 0)


def predicted_win_rate(rating: float, opponent: float = ELO_INITIAL) -> float:
    """Bradley-Terry probability that a model rated ``rating`` beats one rated ``opponent`` (Elo scale)."""
    return 1.0 / (1.0 + ELO_BASE ** ((opponent - rating) / ELO_SCALE))


def bradley_terry(battles: Sequence[Battle], *, anchor: str | None = None, confidence: float = 0.95,
                  iterations: int = 1000, seed: int = 0, inverse_regularization: float | None = 1.0,
                  resample: Literal["battles", "questions"] = "battles", versus: str | None = None) -> ArenaRatings:
    """Bradley-Terry ratings of every model in ``battles``, as Chatbot Arena and Arena-Hard compute them.

    Logistic regression without intercept on a row per battle with +ln(10) in model_a's column and -ln(10) in
    model_b's, labelled 1 when model_a won (a tie: half a win each); a rating is 400 times its coefficient, so a
    gap of 400 points is odds of 10 to 1. Ratings are shifted so ``anchor`` sits at 1000, or, with no anchor, so
    their mean is 1000. The default L2 penalty (C = ``inverse_regularization``) keeps a model that won every
    battle finite: 48 wins in 48 battles against one opponent put it about 800 points above it, where the
    unpenalised fit (None, Arena-Hard's choice) diverges. CIs: percentiles of the ratings refitted on battles
    resampled with replacement (``iterations`` times, seeded; none below
    :data:`~harness.core.stats.MIN_BOOTSTRAP_ITEMS` battles or questions); with ``resample="questions"`` the
    questions are resampled, each drawn question bringing all its battles (every battle must then name its
    question).
    ``versus`` adds the gap from that model to every other, with its CI from the same resamples.

    Raises InputError for no battles, a model battling itself, an unknown anchor or ``versus``, a battle without
    a question when resampling questions, or models that no chain of battles connects (their relative ratings
    would be unidentified).
    """
    battles = list(battles)
    if not battles:
        raise InputError("arena ratings: no battles")
    for i, b in enumerate(battles):
        if b.model_a == b.model_b:
            raise InputError(f"arena ratings: battle {i} pits {b.model_a!r} against itself")
    models = sorted({b.model_a for b in battles} | {b.model_b for b in battles})
    for role, name in (("anchor", anchor), ("versus", versus)):
        if name is not None and name not in models:
            raise InputError(f"arena ratings: {role} {name!r} is in no battle (models: {', '.join(models)})")
    if resample == "questions" and (missing := [i for i, b in enumerate(battles) if b.question is None]):
        raise InputError(f"arena ratings: battle {missing[0]} names no question; resampling by question needs one "
                         f"for every battle")
    index = {m: i for i, m in enumerate(models)}
    a = np.array([index[b.model_a] for b in battles])
    b_ = np.array([index[b.model_b] for b in battles])
    adjacency = np.zeros((len(models), len(models)))
    adjacency[a, b_] = 1.0
    parts, label = connected_components(adjacency, directed=False)
    if parts > 1:
        groups = [", ".join(m for m in models if label[index[m]] == k) for k in range(parts)]
        raise InputError("arena ratings: battles do not connect all models; separate groups: "
                         + "; ".join(f"[{g}]" for g in groups))
    features = np.zeros((len(battles), len(models)))
    features[np.arange(len(battles)), a] = math.log(ELO_BASE)
    features[np.arange(len(battles)), b_] = -math.log(ELO_BASE)
    preference = np.array([WINNER_PREFERENCE[b.winner] for b in battles])
    anchor_at = None if anchor is None else index[anchor]

    def ratings(counts: np.ndarray) -> np.ndarray:
        """Anchored ratings from battles weighted by ``counts``; NaN for a model in no counted battle."""
        present = np.zeros(len(models), dtype=bool)
        present[a[counts > 0]] = present[b_[counts > 0]] = True
        if anchor_at is not None and not present[anchor_at]:
            return np.full(len(models), np.nan)
        fit = _fit(features[:, present], preference, counts, inverse_regularization=inverse_regularization,
                   fit_intercept=False)
        rated = np.full(len(models), np.nan)
        rated[present] = ELO_SCALE * fit.coef_[0]
        shift = rated[anchor_at] if anchor_at is not None else np.nanmean(rated)
        return rated - shift + ELO_INITIAL

    # the resampled unit: each battle on its own, or each question with all of its battles
    units = (np.arange(len(battles)) if resample == "battles" else
             np.unique([b.question for b in battles], return_inverse=True)[1])
    count = int(units.max()) + 1
    point = ratings(np.ones(len(battles)))
    rng = np.random.default_rng(seed)
    # no interval from fewer resampled units than any bootstrap of the project is made from
    iterations = iterations if count >= MIN_BOOTSTRAP_ITEMS else 0
    replicates = np.array([ratings(rng.multinomial(count, np.full(count, 1.0 / count)).astype(float)[units])
                           for _ in range(iterations)]).reshape(iterations, len(models))
    used = int((~np.isnan(replicates).all(axis=1)).sum()) if iterations > 0 else 0
    rows = []
    for m in models:
        i = index[m]
        column = replicates[:, i]
        low, high = _percentiles(column, confidence) if (~np.isnan(column)).any() else (None, None)
        as_a, as_b = preference[a == i], 1.0 - preference[b_ == i]
        outcomes = np.r_[as_a, as_b]
        rows.append(ArenaRating(
            model=m, rating=float(point[i]), ci_low=low, ci_high=high,
            win_rate_vs_anchor=predicted_win_rate(float(point[i])),
            win_rate_ci_low=None if low is None else predicted_win_rate(low),
            win_rate_ci_high=None if high is None else predicted_win_rate(high),
            battles=len(outcomes), wins=int((outcomes == 1).sum()), ties=int((outcomes == 0.5).sum()),
            losses=int((outcomes == 0).sum())))
    rows.sort(key=lambda r: -r.rating)
    differences = []
    if versus is not None:
        v = index[versus]
        for m in models:
            if m == versus:
                continue
            gaps = replicates[:, v] - replicates[:, index[m]]
            met = (a == v) & (b_ == index[m]) | (a == index[m]) & (b_ == v)
            low, high = _percentiles(gaps, confidence) if (~np.isnan(gaps)).any() else (None, None)
            differences.append(RatingDifference(model=versus, opponent=m, difference=float(point[v] - point[index[m]]),
                                                ci_low=low, ci_high=high,
                                                questions=len(np.unique(units[met]))))
    return ArenaRatings(ratings=rows, anchor=anchor, n=len(battles), confidence=confidence, iterations=iterations,
                        resamples_used=used, inverse_regularization=inverse_regularization, resampled=resample,
                        questions=count if resample == "questions" else None, differences=differences)
