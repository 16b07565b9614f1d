"""The lexical matcher on the answers issue 13 found misgraded (read by eye on HaluEval QA and the closed-book set)."""

import pytest
from shared import shared_data

from audits.hallucination.matching import halueval_outcome, holds, holds_any, is_refusal
from audits.hallucination.metrics import closed_book_item
from audits.hallucination.suites import load_closed_book, load_halueval


def test_a_place_adjective_in_the_answer_holds_the_gold_place():
    _, questions = load_closed_book("embedded:suites/closed_book_qa.jsonl")
    kenya = next(q for q in questions if q.id == "cb-003")
    assert kenya.question == "On which continent is Kenya located?" and kenya.answers == ["Africa"]
    answer = "Kenya is located on the African continent"
    assert holds_any(answer, kenya.answers)
    assert closed_book_item("factual", holds_any(answer, kenya.answers), is_refusal(answer), False)[
        "hallucination_rate"] == 0.0
    assert holds("It is a Japanese dish", "Japan") and holds("a Kenyan runner", "Kenya")
    # one way only: the Indian Ocean is not India, and a word that merely starts like the place is not it
    assert not holds("India", "Indian") and not holds("Tokyoite food", "Tokyo")


def test_a_negated_answer_does_not_count():
    assert not holds("Not American; she was British", "American")
    assert holds("Not British; she was American", "American")  # the unnegated occurrence counts
    assert not holds("It is not in Africa", "Africa") and not holds("It wasn't Tokyo", "Tokyo")
    assert not holds("Saturn, not Jupiter", "Jupiter")
    assert holds("No, it is in Africa.", "Africa") and holds("No. Africa.", "Africa")  # another clause


@pytest.mark.parametrize("text, declined", [
    ("The director of the film is not known.", True), ("It isn't known.", True), ("Its author is not known", True),
    ("Paris is not known for rain.", False),  # a claim, not a refusal
])
def test_not_known_is_declining(text, declined):
    assert is_refusal(text) is declined


def test_a_measurement_matches_on_number_and_unit():
    gold = "6.213 km long"
    assert holds("6.213 km", gold) and holds("6.213km", gold) and holds("The track is 6.213 kilometres.", gold)
    assert not holds("6.2 km", gold) and not holds("16.213 km", gold) and not holds("6.213 miles", gold)
    assert not holds("6.213", gold)  # the unit is part of the answer
    _, items = load_halueval(str(shared_data("halueval", "qa_one-turn_data.json")), limit=10)
    bathurst = next(i for i in items if i.right_answer == gold)
    assert halueval_outcome("6.213 km", bathurst.right_answer, bathurst.hallucinated_answer) == "correct"


def test_lexical_matching_cannot_see_an_answer_about_the_wrong_thing():
    """Documented limitation (matching.py's docstring): the answer holds the gold but says it of the question's
    subject. Lexical matching counts it correct; the judge grades it (test_hallucination_grading proves that)."""
    _, items = load_halueval(str(shared_data("halueval", "qa_one-turn_data.json")), limit=10)
    cadmium = next(i for i in items if i.question.startswith("Cadmium Chloride"))
    assert (cadmium.right_answer, cadmium.hallucinated_answer) == ("alcohol", "hydrogen peroxide")
    assert halueval_outcome("Cadmium chloride is a simple alcohol", cadmium.right_answer,
                            cadmium.hallucinated_answer) == "correct"
