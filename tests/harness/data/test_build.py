import json

import datasets
import pytest
from fake_openai import FakeOpenAI
from tiny import edit_in_place

from harness.core.errors import InputError, TeacherError
from harness.core.store import RunStore
from harness.data.build import build_pairs
from harness.data.config import DataConfig, VariantConfig, resolve_variants
from harness.data.record import load_dataset_record


def _config(corpus_file, teacher, **kwargs) -> DataConfig:
    return DataConfig.model_validate({"corpus": {"path": str(corpus_file)}, "teacher": teacher, "shard_size": 4,
                                      **kwargs})


def test_distilled_and_raw_variants_from_one_corpus(corpus_file, tiny_teacher, capsys):
    config = _config(corpus_file, tiny_teacher, variants=[{"name": "nift"}, {"name": "raw", "distill": False}])
    store = RunStore("r")
    nift, raw = build_pairs(config, store)
    assert nift.rows == raw.rows == 12 and nift.failed_rows == 0
    folder = store.stage_dir("data", "nift")
    rows = [json.loads(line) for line in (folder / "pairs.jsonl").read_text().splitlines()]
    assert [m["role"] for m in rows[0]["messages"]] == ["user", "assistant"]
    for row in rows:
        assert row["source"]["doc_id"] and row["teacher"]["model"] == tiny_teacher["model"]
        assert row["generation"]["completion_tokens"] <= row["generation"]["row_token_budget"] <= 24
        assert row["generation"]["seed"] == 0 and row["generation"]["temperature"] == 0.7
    raw_rows = [json.loads(line) for line in (store.stage_dir("data", "raw") / "pairs.jsonl").read_text().splitlines()]
    # the no-distillation variant answers with the real second half, the same cut as the distilled one
    assert [r["messages"][0] for r in raw_rows] == [r["messages"][0] for r in rows]
    assert all(r["messages"][1]["content"] == r["reference"] for r in raw_rows)
    assert raw.teacher is None and raw.generation["requests"] == 0
    # a datasets copy, the card and the record
    dataset = datasets.load_from_disk(str(folder / "dataset"))
    assert dataset.num_rows == 12 and dataset[0]["messages"] == rows[0]["messages"]
    card = (folder / "card.md").read_text()
    assert "| **pairs** | **12** |" in card and "completion tokens" in card and "estimated cost" in card
    record = load_dataset_record(folder)
    assert record.counts["documents_read"] == 12 and record.generation["completion_tokens"] > 0
    assert record.teacher["threads"] == 1  # the count; timings vary run to run and stay out of rows
    assert {i.kind for i in record.inputs} == {"corpus", "prompt_set", "model"}


def test_unchanged_build_is_skipped_and_force_rebuilds(corpus_file, tiny_teacher, caplog):
    config = _config(corpus_file, tiny_teacher, limit=4)
    store = RunStore("r")
    first = build_pairs(config, store)[0]
    caplog.clear()
    caplog.set_level("INFO", logger="nift_gate")
    again = build_pairs(config, store)[0]
    assert "up to date" in caplog.text and again.record_id == first.record_id
    forced = build_pairs(config, store, force=True)[0]
    assert forced.record_id != first.record_id
    # --force asks the teacher again: no shard of the first build is taken back
    assert forced.generation["shards"] > 0 and forced.generation["resumed_shards"] == 0


def test_a_different_config_does_not_silently_replace_a_dataset(corpus_file, tiny_teacher):
    store = RunStore("r")
    build_pairs(_config(corpus_file, tiny_teacher, limit=4), store)
    before = (store.stage_dir("data", "nift") / "pairs.jsonl").read_text()
    with pytest.raises(InputError, match="--force"):
        build_pairs(_config(corpus_file, tiny_teacher, limit=4, cut={"ratio": 0.3}), store)
    assert (store.stage_dir("data", "nift") / "pairs.jsonl").read_text() == before


def test_a_corpus_edited_in_place_is_another_input(corpus_file, embedded_texts, caplog):
    config = _config(corpus_file, {}, variants=[{"name": "raw", "distill": False}])
    store = RunStore("r")
    first = build_pairs(config, store)[0]
    opening = embedded_texts[0][:9]  # "Residents"
    edit_in_place(corpus_file, opening.encode(), opening.upper().encode())
    caplog.set_level("INFO", logger="nift_gate")
    with pytest.raises(InputError, match="other inputs.*--force"):
        build_pairs(config, store)
    assert "up to date" not in caplog.text
    rebuilt = build_pairs(config, store, force=True)[0]
    assert rebuilt.record_id != first.record_id and rebuilt.fingerprint != first.fingerprint
    first_pair = json.loads((store.stage_dir("data", "raw") / "pairs.jsonl").read_text().splitlines()[0])
    assert first_pair["messages"][0]["content"].startswith(opening.upper())


def test_a_corpus_folder_is_hashed_by_every_file(tmp_path, embedded_texts):
    folder = tmp_path / "corpus"
    (folder / "more").mkdir(parents=True)
    (folder / "a.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in embedded_texts[:6]))
    (folder / "more" / "b.txt").write_text(" ".join(embedded_texts[6].split()) + "\n")  # one paragraph
    config = DataConfig.model_validate({"corpus": {"path": str(folder)}, "variants": [{"name": "raw", "distill": False}]})
    store = RunStore("r")
    first = build_pairs(config, store)[0]
    assert first.counts["documents_read"] == 7
    edit_in_place(folder / "more" / "b.txt", embedded_texts[6][:4].encode(), embedded_texts[6][:4].swapcase().encode())
    with pytest.raises(InputError, match="other inputs"):
        build_pairs(config, store)
    assert build_pairs(config, store, force=True)[0].inputs[0].sha256 != first.inputs[0].sha256


def test_contaminated_pairs_are_dropped_and_listed(corpus_file, embedded_texts, tmp_path):
    suite = tmp_path / "suite.jsonl"
    leaked = " ".join(embedded_texts[3].split()[:20])  # the opening of document 4 is also an eval prompt
    suite.write_text(json.dumps({"id": "leak-1", "prompt": leaked}) + "\n")
    config = _config(corpus_file, {}, variants=[{"name": "raw", "distill": False}],
                     filters={"contamination": [{"name": "my-eval", "path": str(suite)}]})
    record = build_pairs(config, RunStore("r"))[0]
    assert record.rows == 11 and record.counts["dropped_contaminated"] == 1
    assert record.contamination == {"my-eval": {"prompts": 1, "too_short": 0, "hits": 1}}
    hits = (RunStore("r").stage_dir("data", "raw") / "contamination.jsonl").read_text()
    assert '"prompt_id": "leak-1"' in hits and "corpus:4" in hits


def test_http_teacher_retries_then_records_failed_rows(corpus_file, tmp_path):
    corpus = tmp_path / "c.jsonl"
    rows = [json.loads(line) for line in corpus_file.read_text().splitlines()]
    rows[2]["text"] = "ALWAYS-FAIL " + rows[2]["text"]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with FakeOpenAI() as server:
        teacher = {"backend": "openai", "base_url": server.base_url, "model": "served", "backoff_s": 0.01,
                   "max_retries": 2, "concurrency": 4}
        record = build_pairs(_config(corpus, teacher), RunStore("r"))[0]
        assert server.attempts.most_common(1)[0][1] == 3  # the failing row: 1 try + 2 retries
    assert record.rows == 11 and record.failed_rows == 1
    failed = (RunStore("r").stage_dir("data", "nift") / "failed.jsonl").read_text()
    assert '"doc_id": "c:3"' in failed and "HTTP 500" in failed
    assert record.generation["completion_tokens"] > 0  # from the endpoint's usage field


def test_http_teacher_stop_policy_stops_and_writes_no_dataset(corpus_file, tmp_path):
    corpus = tmp_path / "c.jsonl"
    rows = [json.loads(line) for line in corpus_file.read_text().splitlines()]
    rows[6]["text"] = "ALWAYS-FAIL " + rows[6]["text"]  # in the second shard
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    store = RunStore("r")
    with FakeOpenAI() as server:
        teacher = {"backend": "openai", "base_url": server.base_url, "model": "served", "backoff_s": 0.01,
                   "max_retries": 1, "on_failure": "stop"}
        with pytest.raises(TeacherError, match="1 finished shards are kept"):
            build_pairs(_config(corpus, teacher), store)
    assert not store.stage_dir("data", "nift").exists()
    assert len(list((store.root / "data" / "_work").rglob("shard-*.json"))) == 1


def test_judge_labels_a_sample_and_counts_unparseable_replies(corpus_file):
    replies = iter(["PROSE", "It reads as an instruction.", "Well, prose or instruction, it depends", "PROSE"] * 5)
    with FakeOpenAI(reply=lambda prompt: next(replies)) as server:
        judge = {"enabled": True, "sample_size": 4, "teacher": {"backend": "openai", "base_url": server.base_url,
                                                                 "model": "judge", "backoff_s": 0.01, "concurrency": 1}}
        config = _config(corpus_file, {}, variants=[{"name": "raw", "distill": False}], filters={"judge": judge})
        record = build_pairs(config, RunStore("r"))[0]
    assert record.judge.labelled == 4
    assert (record.judge.prose, record.judge.instruction_like, record.judge.unparseable) == (2, 1, 1)
    assert record.judge.share_instruction_like == pytest.approx(1 / 3, abs=1e-3)


def test_bad_corpus_stops_before_anything_is_written(tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "a"}\n{oops\n')
    store = RunStore("r")
    with pytest.raises(InputError, match="c.jsonl:2"):
        build_pairs(DataConfig.model_validate({"corpus": {"path": str(corpus)}}), store)
    assert not store.root.exists()


def test_unknown_teacher_model_is_a_clear_error(corpus_file):
    from harness.core.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="unknown model 'no-such-teacher'"):
        build_pairs(_config(corpus_file, {"model": "no-such-teacher"}), RunStore("r"))


def test_variant_overrides_apply_to_that_variant_only(corpus_file, tiny_teacher):
    config = _config(corpus_file, tiny_teacher, limit=3, variants=[
        {"name": "half", "distill": False}, {"name": "third", "distill": False, "overrides": {"cut": {"ratio": 0.33}}}])
    half, third = build_pairs(config, RunStore("r"))
    assert half.config["cut"]["ratio"] == 0.5 and third.config["cut"]["ratio"] == 0.33
    assert third.lengths["user_words"]["mean"] < half.lengths["user_words"]["mean"]
    with pytest.raises(ValueError, match="cannot override"):
        resolve_variants(DataConfig(variants=[VariantConfig(name="x", overrides={"bogus": 1})]))


def test_vllm_teacher_without_vllm_is_a_clear_error(corpus_file):
    import importlib.util

    from harness.core.errors import ConfigError

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here; the error path is for machines without it")
    with pytest.raises(ConfigError, match="needs vLLM"):
        build_pairs(_config(corpus_file, {"backend": "vllm"}), RunStore("r"))


def _raw(folder) -> DataConfig:
    return DataConfig.model_validate({"corpus": {"path": str(folder)}, "variants": [{"name": "raw", "distill": False}]})


def test_equal_file_names_in_two_folders_are_all_built(tmp_path, embedded_texts):
    folder = tmp_path / "corpus"
    for i, sub in enumerate(("news", "blogs")):
        (folder / sub).mkdir(parents=True)
        (folder / sub / "part.jsonl").write_text("".join(json.dumps({"text": t}) + "\n"
                                                         for t in embedded_texts[3 * i:3 * i + 3]))
    record = build_pairs(_raw(folder), RunStore("r"))[0]
    assert record.counts["documents_read"] == 6 and record.rows == 6  # not 3: no document replaces another
    ids = [json.loads(line)["id"] for line in (RunStore("r").stage_dir("data", "raw") / "pairs.jsonl").open()]
    assert sorted(ids) == [f"raw:{sub}/part:{n}" for sub in ("blogs", "news") for n in (1, 2, 3)]
    # ids of files in subfolders changed with this scheme: such a dataset is another input, not reused
    assert "corpus_doc_ids" in {i.kind for i in record.inputs}


def test_files_of_no_corpus_type_are_listed_in_a_warning_the_record_and_the_card(tmp_path, embedded_texts, caplog):
    folder = tmp_path / "corpus"
    (folder / "img").mkdir(parents=True)
    (folder / "a.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in embedded_texts[:3]))
    (folder / "notes.csv").write_text("text\nnot read\n")
    (folder / "img" / "logo.png").write_bytes(b"\x89PNG")
    caplog.set_level("WARNING", logger="nift_gate")
    record = build_pairs(_raw(folder), RunStore("r"))[0]
    assert record.unread_files == ["img/logo.png", "notes.csv"] and record.rows == 3
    assert "2 files of no corpus type" in caplog.text and "img/logo.png, notes.csv" in caplog.text
    card = (RunStore("r").stage_dir("data", "raw") / "card.md").read_text()
    assert "**2 files in the corpus folder were not read**" in card and "`notes.csv`" in card
    assert "corpus_doc_ids" not in {i.kind for i in record.inputs}  # a flat folder's ids are as they were


def test_rows_with_no_text_are_counted_in_the_record_and_the_card(tmp_path, embedded_texts):
    path = tmp_path / "c.jsonl"
    texts = [embedded_texts[0], "", " \n ", *embedded_texts[1:3]]
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    record = build_pairs(_raw(path), RunStore("r"))[0]
    assert (record.counts["dropped_empty_text"], record.counts["documents_read"], record.rows) == (2, 3, 3)
    card = (RunStore("r").stage_dir("data", "raw") / "card.md").read_text()
    assert "| rows with no text (not documents) | 2 |" in card


def test_a_build_with_no_pair_left_raises_and_writes_nothing(corpus_file):
    config = DataConfig.model_validate({"corpus": {"path": str(corpus_file), "min_words": 2, "max_words": 10},
                                        "variants": [{"name": "raw", "distill": False}]})
    store = RunStore("r")
    with pytest.raises(InputError, match=r"data \[raw\]: 0 pairs from 12 documents \(dropped_too_long 12\)"):
        build_pairs(config, store)
    assert not store.stage_dir("data", "raw").exists()


def test_a_corpus_edited_after_it_was_hashed_is_refused(corpus_file, embedded_texts, monkeypatch):
    from harness.data import build

    hashed = build.open_corpus

    def open_then_edit(config, run):
        root = hashed(config, run)
        edit_in_place(corpus_file, embedded_texts[0][:9].encode(), embedded_texts[0][:9].upper().encode())
        return root

    monkeypatch.setattr(build, "open_corpus", open_then_edit)
    store = RunStore("r")
    config = _config(corpus_file, {}, variants=[{"name": "raw", "distill": False}])
    with pytest.raises(InputError, match=r"corpus.jsonl: changed while data/raw was running"):
        build_pairs(config, store)
    assert not store.stage_dir("data", "raw").exists()
