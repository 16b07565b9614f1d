"""A detoxify-format checkpoint around a tiny random BERT, built offline: the real detoxify code path with
meaningless scores. detoxify loads a local ``torch.save({"config": {"arch": {"args": ...}}, "dataset":
{"args": {"classes": [...]}}, "state_dict": ...})`` file, so a 6-label BertForSequenceClassification with a
WordPiece tokenizer trained on a few sentences exercises its whole code path offline."""

from __future__ import annotations

from pathlib import Path

CLASSES = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]


def build_tiny_detoxify(folder: Path, texts: list[str]) -> tuple[Path, Path]:
    """Returns (checkpoint file, Hugging Face config folder)."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        BertTokenizerFast,
    )

    config_dir = folder / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(texts, trainers.WordPieceTrainer(
        vocab_size=300, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    fast = BertTokenizerFast(tokenizer_object=tokenizer, model_max_length=64)
    fast.save_pretrained(config_dir)
    torch.manual_seed(0)
    bert = BertForSequenceClassification(BertConfig(vocab_size=len(fast), hidden_size=32, num_hidden_layers=1,
                                                    num_attention_heads=2, intermediate_size=64,
                                                    max_position_embeddings=64, num_labels=len(CLASSES)))
    bert.config.save_pretrained(config_dir)
    checkpoint = folder / "tiny-detoxify.ckpt"
    torch.save({"config": {"arch": {"args": {"model_type": "bert-base-uncased",
                                             "model_name": "BertForSequenceClassification",
                                             "tokenizer_name": "BertTokenizer", "num_classes": len(CLASSES)}},
                           "dataset": {"args": {"classes": CLASSES}}},
                "state_dict": bert.state_dict()}, checkpoint)
    return checkpoint, config_dir
