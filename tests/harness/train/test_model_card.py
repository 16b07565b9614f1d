"""The model card a training run writes names its base model as a reader can find it again."""

import pytest
from hub_cache import FIRST, HUB_ID, cache_snapshot, offline_hub_cache

from harness.core.models import resolve_model
from harness.core.records import InputRef
from harness.train.train import _model_card


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    return offline_hub_cache(tmp_path, monkeypatch)


def test_a_model_card_names_a_hub_base_by_its_id_and_commit(hub_cache, tiny_model):
    cache_snapshot(hub_cache, tiny_model, FIRST)
    base = resolve_model(f"{HUB_ID}@main")
    data = InputRef(kind="dataset", id="data:pairs", sha256="d" * 64)
    card = _model_card({"name": "cand", "recipe": "nift", "method": "full", "rows": 3, "steps": 1, "tokens_seen": 9},
                       base, data, "transformers")
    assert f"base_model: {HUB_ID}\n" in card  # the hub's name, without the @revision
    assert f"hub commit `{FIRST}`" in card
