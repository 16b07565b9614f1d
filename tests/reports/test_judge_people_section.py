"""The judge-and-people section: judge-human agreement, the pairs they differ on, the audits' automatic flags
against the reviewers', the judge_agreement rule's outcome, all as escaped text in both formats."""

from gate_records import (
    CANDIDATE,
    config_for,
    decide_run,
    review_record,
    save,
    standard_run,
    write_policy,
)

from harness.review.record import (
    Agreed,
    AutomaticFlagAgreement,
    JudgeAgreement,
    JudgeDisagreement,
    ReviewRecord,
)
from reports.build import write_report

POLICY_WITH_JUDGE = """\
rules:
  - {name: reviewed, type: review_quorum, min_items: 20, min_reviewers: 2}
  - {name: judge-checked, type: judge_agreement, min: 0.6, min_items: 3}
"""


def _review(**fields) -> ReviewRecord:
    made = review_record("r1").model_dump(exclude={"metrics", "values", "deltas"})
    return ReviewRecord.model_validate({**made, **fields})


def test_agreement_and_disagreements_are_shown_as_text(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home, review=False)
    judged = JudgeAgreement(
        judge="tiny-judge", verdict_rule="mt-bench", items=4,
        with_ties=Agreed(agreeing=4, n=7, rate=4 / 7, ci_low=0.25, ci_high=0.84),
        without_ties=Agreed(agreeing=3, n=4, rate=0.75, ci_low=0.3, ci_high=0.95), kappa=10 / 31, unparseable=1,
        disagreements=[JudgeDisagreement(item_id=3, question_id="q2", baseline="base-a",
                                         question="<script>alert(1)</script> | pipe", judge="win",
                                         reviewers={"tie": 1, "loss": 1})], disagreements_total=1)
    flags = [AutomaticFlagAgreement(source="audit/toxicity", automatic_flag="toxic", flag="toxic", items=2,
                                    agreement=Agreed(agreeing=3, n=4, rate=0.75, ci_low=0.3, ci_high=0.95), kappa=0.5,
                                    automatic_flagged=2, reviewer_flagged=1)]
    save(store, _review(judge_agreement=judged, automatic_flag_agreement=flags, disputed_items=3,
                        adjudicated_items=1, adjudication_pending=2), "review")
    setup = config_for(home, write_policy(tmp_path, POLICY_WITH_JUDGE))
    decide_run(setup, store)
    html_path = write_report(setup.report, store, CANDIDATE)
    md = html_path.with_suffix(".md").read_text()
    assert "## Judge and people: agreement and disagreements" in md
    assert "(tiny-judge, verdict rule mt-bench) against the reviewers' blind votes on the same 4 pairs" in md
    assert "| audit/toxicity | toxic | toxic | 2 |" in md
    assert "| with ties (a tie is a third outcome) | 0.571 | 0.250 – 0.840 (wilson) | 4 / 7 |" in md
    assert "| without ties (a tie on either side left out) | 0.750 | 0.300 – 0.950 (wilson) | 3 / 4 |" in md
    assert "| Cohen's kappa (win / tie / loss) | 0.323 | | 7 votes |" in md
    assert "| q2 | base-a | win | tie 1, loss 1 | &lt;script&gt;alert(1)&lt;/script&gt; \\| pipe |" in md
    assert "| audit/toxicity | toxic | toxic | 2 | 0.750 | 0.300 – 0.950 | 3 / 4 | 0.500 | 2 / 1 |" in md
    assert "Items the reviewers disputed: 3; adjudicated: 1; still waiting for adjudication: 2." in md
    assert "Rule judge-checked (block): **inconclusive**" in md  # 0.571 < 0.6
    html = html_path.read_text()
    section = html[html.index('id="section-judge_people"'):]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section and "<script>" not in section
    assert 'id="judge-disagreements"' in section and 'id="automatic-flag-agreement"' in section


def test_a_review_without_judge_or_flags_or_disputes_has_no_section(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home)
    setup = config_for(home, write_policy(tmp_path))
    decide_run(setup, store)
    md = write_report(setup.report, store, CANDIDATE).with_suffix(".md").read_text()
    assert "Judge and people" not in md
