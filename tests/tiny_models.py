"""Tiny random BERT / RoBERTa checkpoints with tokenizers trained in-process (tests and benchmarks)."""

from __future__ import annotations

from pathlib import Path

import torch

CORPUS = [
    "the movie was great and the acting was wonderful",
    "a terrible film with a boring plot and bad acting",
    "yes no maybe the answer is true or false",
    "the premise entails the hypothesis but not always",
    "sports business world technology news today",
    "question answer passage paragraph sentence text",
] * 20


def _train_tokenizer(kind: str, directory: Path):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast, RobertaTokenizerFast

    if kind == "bert":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        tok.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=200, special_tokens=special))
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
        )
        tok.decoder = decoders.WordPiece()
        fast = BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                 sep_token="[SEP]", mask_token="[MASK]")
    else:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=300, special_tokens=special,
                                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")))
        tok.decoder = decoders.ByteLevel()
        fast = RobertaTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                    pad_token="<pad>", cls_token="<s>", sep_token="</s>", mask_token="<mask>")
    fast.save_pretrained(directory)
    return fast


def make_tiny_backbone(directory: Path, kind: str = "bert", mlm: bool = False, seed: int = 0) -> Path:
    from transformers import BertConfig, BertForMaskedLM, BertModel, RobertaConfig, RobertaForMaskedLM, RobertaModel

    directory.mkdir(parents=True, exist_ok=True)
    tok = _train_tokenizer(kind, directory)
    common = dict(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=64, max_position_embeddings=160, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    if kind == "bert":
        config = BertConfig(**common)
        model = BertForMaskedLM(config) if mlm else BertModel(config)
    else:
        config = RobertaConfig(**common, type_vocab_size=1, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
        model = RobertaForMaskedLM(config) if mlm else RobertaModel(config)
    model.save_pretrained(directory)
    return directory


def synthetic_knowledge_cat(folder, n_per_class: int = 30, seed: int = 0, max_words: int = 12):
    """A knowledge_cat folder (``dev.jsonl``) of two separable classes (ids 1 and 7) in the tiny tokenizers'
    vocabulary: ``n_per_class`` texts each, 4 to ``max_words`` words."""
    import json
    import random

    rng = random.Random(seed)
    words = {1: "the movie was great and the acting was wonderful terrible film boring plot".split(),
             7: "yes no maybe the answer is true or false question passage sentence".split()}
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "dev.jsonl", "w") as f:
        for i in range(n_per_class):
            for label, vocab in words.items():
                text = " ".join(rng.choice(vocab) for _ in range(rng.randint(4, max_words)))
                f.write(json.dumps({"text": text, "idx": i, "label": label}) + "\n")
    return folder
