"""Category pretraining: corpus -> TextCNN topic classifier -> prompt-table checkpoint (Pretrained / Encoder IPT),
then Encoder IPT's encoders as topic classifiers on that table -> prompt-encoder artefacts (``method.encoder_init``).

The corpus itself (manifest, sources, :class:`~ipt_ray.data.Corpus`) is the data stage's:
:mod:`ipt_ray.data.categories`.
"""

from ipt_ray.pretrain.checkpoint import save_prompt_encoder, save_prompt_table
from ipt_ray.pretrain.classifier import (
    CategoryClassifier,
    confusion_matrix,
    tokenize_corpus,
    train_classifier,
)
from ipt_ray.pretrain.encoders import EncoderClassifier, train_encoder
from ipt_ray.pretrain.labels import sentence_embeddings, suggest_label_mapping
from ipt_ray.pretrain.pipeline import PreparedCorpus, PretrainResult, prepare_corpus, run_pretrain
from ipt_ray.pretrain.tracker import PretrainTracker, confusion_csv, pretrain_params

__all__ = [
    "save_prompt_encoder", "save_prompt_table", "EncoderClassifier", "train_encoder",
    "CategoryClassifier", "confusion_matrix", "tokenize_corpus", "train_classifier",
    "sentence_embeddings", "suggest_label_mapping",
    "PreparedCorpus", "PretrainResult", "prepare_corpus", "run_pretrain",
    "PretrainTracker", "confusion_csv", "pretrain_params",
]
