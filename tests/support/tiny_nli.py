"""A tiny random DeBERTa-v2 sequence classifier with a SentencePiece vocabulary, built offline: the real
SelfCheckGPT NLI code path (two labels: entailment, contradiction) with meaningless scores."""

from __future__ import annotations

from pathlib import Path


def build_tiny_nli(folder: Path, texts: list[str]) -> Path:
    import sentencepiece as spm
    import torch
    from transformers import (
        DebertaV2Config,
        DebertaV2ForSequenceClassification,
        DebertaV2Tokenizer,
    )

    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(texts), encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(folder / "spm"), vocab_size=400,
                                   pad_id=0, unk_id=1, bos_id=2, eos_id=3, user_defined_symbols=["[CLS]", "[SEP]",
                                                                                                 "[MASK]"])
    tokenizer = DebertaV2Tokenizer(vocab_file=str(folder / "spm.model"), model_max_length=128)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    model = DebertaV2ForSequenceClassification(DebertaV2Config(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=128, num_labels=2, type_vocab_size=2, pad_token_id=tokenizer.pad_token_id))
    model.save_pretrained(folder)
    return folder
