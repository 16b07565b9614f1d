import re

from harness.data.config import CutConfig
from harness.data.cut import cut_document

TEXT = ("The ferry left the harbour at dawn. Gulls followed it past the breakwater. The captain, a quiet woman "
        "from the northern islands, kept to the marked channel. Fog lay over the sound until nine. By noon the "
        "sea had turned green and calm. Passengers came up from the lower deck to watch the cliffs. A boy "
        "counted the lighthouses aloud. The crossing took four hours in all. Nobody on board seemed to mind.")


def test_cut_lands_on_a_sentence_end_near_the_ratio_and_loses_nothing():
    cut = cut_document("doc-1", TEXT, CutConfig(ratio=0.5, jitter=0.0, min_part_words=5), seed=0)
    assert cut.snapped_to == "sentence"
    assert re.search(r"[.!?]$", cut.prompt)
    assert cut.reference[0].isupper()
    assert f"{cut.prompt} {cut.reference}" == TEXT
    assert 0.35 <= cut.actual_ratio <= 0.65


def test_word_snap_cuts_exactly_at_the_ratio():
    words = " ".join(f"w{i}" for i in range(100))
    cut = cut_document("d", words, CutConfig(ratio=0.3, jitter=0.0, snap="word", min_part_words=5), seed=0)
    assert cut.prompt.split()[-1] == "w29" and cut.reference.split()[0] == "w30"


def test_jitter_is_seeded_per_document_not_by_order():
    config = CutConfig(ratio=0.5, jitter=0.3, snap="word", min_part_words=5)
    text = " ".join(f"w{i}" for i in range(200))
    first = [cut_document(f"d{i}", text, config, seed=7).cut_char for i in range(20)]
    again = [cut_document(f"d{i}", text, config, seed=7).cut_char for i in reversed(range(20))][::-1]
    assert first == again
    assert len(set(first)) > 5  # jitter actually moves cuts
    other_seed = [cut_document(f"d{i}", text, config, seed=8).cut_char for i in range(20)]
    assert other_seed != first
    ratios = [cut_document(f"d{i}", text, config, seed=7).actual_ratio for i in range(20)]
    assert all(0.2 <= r <= 0.8 for r in ratios) and max(ratios) - min(ratios) > 0.2


def test_documents_too_short_for_two_parts_are_refused():
    assert cut_document("d", "one two three four five six", CutConfig(min_part_words=4), seed=0) is None
