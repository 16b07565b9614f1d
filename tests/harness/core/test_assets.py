"""``embedded:`` names a file shipped with nift-gate, and nothing outside the shipped assets."""

import pytest

from harness.core.assets import assets_dir, resolve_asset
from harness.core.errors import InputError


def test_an_embedded_name_is_a_shipped_file_and_a_plain_path_is_the_users():
    assert resolve_asset("embedded:suites/closed_book_qa.jsonl") == assets_dir() / "suites" / "closed_book_qa.jsonl"
    assert resolve_asset("embedded:suites/closed_book_qa.jsonl").is_file()
    assert str(resolve_asset("~/corpus.jsonl")).endswith("/corpus.jsonl") and "~" not in str(resolve_asset("~/x"))


@pytest.mark.parametrize("name", ["embedded:../../..", "embedded:../core/errors.py", "embedded:/etc/passwd",
                                  "embedded:suites/../../assets/../data/build.py"])
def test_an_embedded_name_leading_out_of_the_assets_is_refused(name):
    with pytest.raises(InputError, match=rf"{name}: not a file shipped with nift-gate"):
        resolve_asset(name)


def test_a_dotted_name_that_stays_inside_the_assets_is_allowed():
    assert resolve_asset("embedded:corpus/../suites/closed_book_qa.jsonl").resolve() == \
        (assets_dir() / "suites" / "closed_book_qa.jsonl").resolve()
